"""Model families: every family has a tiny checkpoint; our loaders agree with transformers; the
MiniCPM-V resampler agrees with an independent numpy implementation of its formula."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgevlm.errors import CheckpointError
from edgevlm.families import FAMILIES, TINY_NAMES, family_for, load_reference

HF_FAMILIES = ["paligemma", "paligemma2", "gemma3"]


def test_every_family_has_a_tiny_checkpoint(tiny):
    covered = {family_for(tiny(name)).name for name in TINY_NAMES}
    assert covered == set(FAMILIES), f"families without a tiny checkpoint: {set(FAMILIES) - covered}"


def test_tiny_is_deterministic(tmp_path):
    from edgevlm.families.tiny import make_tiny

    a = make_tiny("minicpmv-2.6", tmp_path / "a", seed=3)
    b = make_tiny("minicpmv-2.6", tmp_path / "b", seed=3)
    c = make_tiny("minicpmv-2.6", tmp_path / "c", seed=4)
    blob = lambda d: (d / "model.safetensors").read_bytes()  # noqa: E731
    assert blob(a) == blob(b)
    assert blob(a) != blob(c)


@pytest.mark.parametrize("name", HF_FAMILIES)
def test_loader_matches_transformers(tiny, name):
    """transformers loading the directory on its own vs our loader: same logits on the processor's inputs."""
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    ckpt = tiny(name)
    processor = AutoProcessor.from_pretrained(ckpt)
    theirs = AutoModelForImageTextToText.from_pretrained(ckpt).eval()
    ours = load_reference(ckpt)
    image = Image.fromarray((np.random.RandomState(0).rand(180, 260, 3) * 255).astype(np.uint8))
    text = "<start_of_image> Describe this." if name == "gemma3" else "<image>caption en"
    inputs = processor(images=image, text=text, return_tensors="pt")
    inputs.pop("labels", None)
    with torch.no_grad():
        expected = theirs(**inputs).logits
    got = ours.reference_logits(**inputs)
    diff = (expected - got).abs().max().item()
    print(f"{name}: max |logits diff| = {diff:.3g}")
    assert diff < 1e-3
    # the parts the exporters use reproduce the full forward: merged embeddings -> text model
    features = ours.image_features(inputs["pixel_values"])
    assert features.shape[0] == 1 and features.shape[-1] == ours.text.hidden_size


@pytest.mark.parametrize("name", ["minicpmv-2.5", "minicpmv-2.6", "minicpmv-4.5"])
def test_minicpmv_loads_and_generates(tiny, name):
    ref = load_reference(tiny(name))
    config = json.loads((tiny(name) / "config.json").read_text())
    assert ref.query_num == config["query_num"]
    tokens = ref.greedy(torch.tensor([[5, 6, 7, 8]]), None, 8)
    assert len(tokens) == 8 and all(0 <= t < ref.text.vocab_size for t in tokens)


def _numpy_layer_norm(x, weight, bias, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _numpy_sincos(h, w, dim):
    """Written from the formula, element by element: [h*w, dim] = concat(emb(col), emb(row))."""
    quarter = dim // 4
    out = np.zeros((h * w, dim))
    for i in range(h):
        for j in range(w):
            for k in range(quarter):
                omega = 1.0 / 10000 ** (k / quarter)
                out[i * w + j, k] = np.sin(j * omega)
                out[i * w + j, quarter + k] = np.cos(j * omega)
                out[i * w + j, 2 * quarter + k] = np.sin(i * omega)
                out[i * w + j, 3 * quarter + k] = np.cos(i * omega)
    return out


def test_resampler_matches_numpy_formula(tiny):
    """One chunk through the resampler vs a float64 numpy cross-attention written from techspec §1.7."""
    ref = load_reference(tiny("minicpmv-2.6"))
    rs = ref.resampler
    p = {k: v.detach().double().numpy() for k, v in rs.state_dict().items()}
    h, w, pad = 3, 5, 4
    rng = np.random.RandomState(1)
    tokens = rng.randn(1, h * w + pad, rs.kv_proj.in_features).astype(np.float32)
    padding = np.zeros((1, h * w + pad), dtype=bool)
    padding[0, h * w:] = True
    from edgevlm.processing.vision_inputs import sincos_2d_keys

    key_pos = torch.from_numpy(sincos_2d_keys(np.array([[h, w]]), rs.embed_dim, h * w + pad))
    with torch.no_grad():
        got = rs(torch.from_numpy(tokens), key_pos, torch.from_numpy(padding))[0].numpy()

    x = _numpy_layer_norm(tokens[0, : h * w].astype(np.float64) @ p["kv_proj.weight"].T,
                          p["ln_kv.weight"], p["ln_kv.bias"])  # padding rows dropped instead of masked
    q = _numpy_layer_norm(p["query"], p["ln_q.weight"], p["ln_q.bias"])
    wq, wk, wv = np.split(p["attn.in_proj_weight"], 3)
    bq, bk, bv = np.split(p["attn.in_proj_bias"], 3)
    Q, K, V = q @ wq.T + bq, (x + _numpy_sincos(h, w, rs.embed_dim)) @ wk.T + bk, x @ wv.T + bv
    heads, d = rs.num_heads, rs.embed_dim // rs.num_heads
    out = np.zeros_like(Q)
    for head in range(heads):
        s = slice(head * d, (head + 1) * d)
        scores = Q[:, s] @ K[:, s].T / np.sqrt(d)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        out[:, s] = (weights / weights.sum(-1, keepdims=True)) @ V[:, s]
    out = out @ p["attn.out_proj.weight"].T + p["attn.out_proj.bias"]
    expected = _numpy_layer_norm(out, p["ln_post.weight"], p["ln_post.bias"]) @ p["proj"]
    diff = np.abs(expected - got).max()
    print(f"resampler max |diff| vs numpy = {diff:.3g}")
    assert diff < 1e-4


def _upstream_float_buckets(h: int, per_side: int = 70) -> torch.Tensor:
    """The upstream navit code's float32 form: bucketize(arange(0, 1-1e-6, 1/h), arange(1/70, 1, 1/70))."""
    boundaries = torch.arange(1 / per_side, 1.0, 1 / per_side)
    return torch.bucketize(torch.arange(0, 1 - 1e-6, 1 / h), boundaries, right=True)


def test_navit_positions_are_exact_and_upstream_differs_only_at_ties():
    """Ours = floor(70*i/h) (llama.cpp's form); upstream's float32 form differs only where i/h == k/70."""
    from edgevlm.processing.vision_inputs import bucketed_position_ids

    for h in range(1, 300):
        ours = torch.from_numpy(bucketed_position_ids(np.array([[h, 1]]), h, 70)[0] // 70)
        assert torch.equal(ours, torch.tensor([70 * i // h for i in range(h)]))
        upstream = _upstream_float_buckets(h)
        for i in torch.nonzero(ours != upstream).flatten().tolist():
            assert (70 * i) % h == 0, (h, i)  # an exact tie: the float rounding picked the lower bucket


def test_unknown_family_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="not a supported family"):
        family_for(tmp_path)
    with pytest.raises(CheckpointError, match="no config.json"):
        family_for(tmp_path / "missing")
