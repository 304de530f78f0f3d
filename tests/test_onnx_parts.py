"""ONNX parts (vision, embedding, decoder) against the PyTorch reference, run with plain onnxruntime.

Each tiny family is exported once per module; every test prints the figures it asserts on.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgevlm.families import FAMILIES, TINY_NAMES, load_reference  # noqa: E402
from edgevlm.export.onnx import export_onnx_parts  # noqa: E402
from edgevlm.runtime.backends.ort_masks import attention_bias  # noqa: E402
from edgevlm.processing.vision_inputs import derived_inputs  # noqa: E402

# The resampler family (fixed query count, any patch grid); MiniCPM-V 4.6 / 4.7 merge 4x4 or 2x2 patch
# windows instead (even grids only, per-chunk row counts): tests/test_minicpmv46_vision.py covers them.
MINICPMV = list(FAMILIES["minicpmv"].tiny_names)


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    """name -> (reference, parts, directory), each family exported once."""
    cache = {}

    def get(name):
        if name not in cache:
            ref = load_reference(tiny(name))
            out = tmp_path_factory.mktemp(f"onnx-{name}")
            cache[name] = (ref, export_onnx_parts(ref, out), out)
        return cache[name]

    return get


def _session(out, part):
    return ort.InferenceSession(str(out / part.file), providers=["CPUExecutionProvider"])


def _mixed_chunks(seed=0):
    """Three navit chunks of different grids, patchified and zero-padded to the longest (small grids
    keep the test fast; bucketing at real grid sizes is checked in the numpy-vs-torch test)."""
    tgt = np.array([[12, 14], [9, 17], [5, 6]], np.int32)
    n = int((tgt[:, 0] * tgt[:, 1]).max())
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randn(len(tgt), 3, 14, n * 14, generator=gen)
    mask = torch.zeros(len(tgt), n, dtype=torch.bool)
    for b, (h, w) in enumerate(tgt):
        mask[b, : h * w] = True
        pixels[b, :, :, h * w * 14:] = 0
    return pixels, mask, tgt, n


def _cosine(a, b):
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name", MINICPMV)
def test_navit_vision_matches_reference_with_padding(exported, name):
    ref, parts, out = exported(name)
    pixels, mask, tgt, n = _mixed_chunks()
    with torch.no_grad():
        want = ref.image_features(pixels, mask, torch.from_numpy(tgt)).numpy()  # [3, Q, D]
    feeds = {"pixel_values": pixels.numpy(), "patch_attention_mask": mask.numpy(),
             **derived_inputs(parts["vision"].binding["derived_inputs"], tgt, n, ref.vision_graph().record)}
    got = _session(out, parts["vision"]).run(None, feeds)[0]
    diff, cos = float(np.abs(got - want).max()), _cosine(got, want)
    print(f"{name} vision: shape {got.shape}, max abs diff {diff:.2e}, cosine {cos:.8f}")
    assert got.shape == (3, ref.query_num, ref.text.hidden_size)
    assert diff < 1e-4 and cos > 0.99999


@pytest.mark.parametrize("name", ["paligemma", "paligemma2", "gemma3"])
def test_fixed_vision_matches_reference(exported, name):
    ref, parts, out = exported(name)
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref.image_features(pixels).numpy()
    got = _session(out, parts["vision"]).run(None, {"pixel_values": pixels.numpy()})[0]
    diff, cos = float(np.abs(got - want).max()), _cosine(got, want)
    print(f"{name} vision: shape {got.shape}, max abs diff {diff:.2e}, cosine {cos:.8f}")
    assert got.shape == want.shape and diff < 1e-4 and cos > 0.99999


@pytest.mark.parametrize("name", TINY_NAMES)
def test_embedding_is_exact(exported, name):
    ref, parts, out = exported(name)
    ids = np.arange(0, ref.text.vocab_size, 7, dtype=np.int64)[None]
    got = _session(out, parts["embedding"]).run(None, {"input_ids": ids})[0]
    want = ref.embed_tokens(torch.from_numpy(ids)).detach().numpy()
    print(f"{name} embedding max abs diff {np.abs(got - want).max():.2e}")
    np.testing.assert_array_equal(got, want)


def _decoder_feeds(part, embeds, start, blocks, index, past):
    binding = part.binding
    t = embeds.shape[1]
    positions = np.arange(start, start + t)[None].astype(np.int64)  # [1, T]
    if len(part.inputs["position_ids"]["shape"]) == 3:  # M-RoPE streams: text takes one id in all three
        positions = np.broadcast_to(positions, (3, 1, t)).copy()
    feeds = {"inputs_embeds": embeds, "position_ids": positions, "logits_index": np.asarray(index, np.int64)}
    for name, window in binding["masks"].items():
        feeds[name] = attention_bias(blocks, start, t, window, binding["mask_value"])
    feeds.update({name: array for name, _, _, array in past})
    return feeds


def _run_decoder(sess, part, embeds, start, blocks, index, past):
    """One graph call; returns logits [K, vocab] and the cache after it: KV rows extended with the new rows,
    recurrent states replaced. Positions count from ``start`` (RoPE attention depends only on their
    differences, whatever the model's offset)."""
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(None, _decoder_feeds(part, embeds, start, blocks, index, past))))
    new = [(name, present, kind, np.concatenate([array, outs[present]], 1) if kind == "kv" else outs[present])
           for name, present, kind, array in past]
    return outs["logits"][0], new


KV_NAMES = {"past_key": "past_key.%d", "past_value": "past_value.%d", "present_key": "present_key.%d",
            "present_value": "present_value.%d"}


def _empty_past(ref, part=None):
    """Every layer's empty cache as (past input, present output, "kv" | "state", array): no KV rows, zero
    states for linear-attention layers (their names and shapes from the part's binding)."""
    t = ref.text
    binding = part.binding if part is not None else {"kv": KV_NAMES}
    past = []
    for i, kind in enumerate(t.extra.get("layer_types") or ["full_attention"] * t.num_layers):
        if kind == "linear_attention":
            past += [(s["past"] % i, s["present"] % i, "state", np.zeros(s["shape"], np.float32))
                     for s in binding["states"].values()]
        else:
            past += [(binding["kv"][f"past_{k}"] % i, binding["kv"][f"present_{k}"] % i, "kv",
                      np.zeros((1, 0, t.num_kv_heads, t.head_dim), np.float32)) for k in ("key", "value")]
    return past


def _prefill_and_steps(ref, part, out, name):
    """Causal 36-token prefill, then 4 cached single-token steps, against the reference's full forward."""
    sess = _session(out, part)
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(3, ref.text.vocab_size, (1, 40), generator=gen)
    with torch.no_grad():
        embeds = ref.embed_tokens(ids).numpy()
        want = ref.language_model(inputs_embeds=torch.from_numpy(embeds)).logits[0].numpy()  # [40, V]
    blocks = np.full(64, -1, np.int32)
    t0 = 36
    logits, past = _run_decoder(sess, part, embeds[:, :t0], 0, blocks, np.arange(t0), _empty_past(ref, part))
    prefill = float(np.abs(logits - want[:t0]).max())
    steps = []
    for t in range(t0, 40):
        step, past = _run_decoder(sess, part, embeds[:, t:t + 1], t, blocks, [0], past)
        steps.append(float(np.abs(step[0] - want[t]).max()))
    print(f"{name} {part.runtime['graph']} decoder: prefill max abs diff {prefill:.2e}; "
          f"cached steps vs full recompute {max(steps):.2e}")
    return prefill, max(steps)


@pytest.mark.parametrize("name", TINY_NAMES)
def test_decoder_prefill_and_cached_steps_match_reference(exported, name):
    """Causal prefill logits equal the reference's; then 4 cached single-token steps equal the
    reference's full recomputation over the whole sequence (covers Gemma 3's sliding window: 40 > 32)."""
    ref, parts, out = exported(name)
    prefill, steps = _prefill_and_steps(ref, parts["decoder"], out, name)
    assert prefill < 1e-3 and steps < 1e-3


def _op_counts(path):
    import collections

    import onnx

    return collections.Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


@pytest.mark.parametrize("name", ["minicpmv-2.6", "minicpmv-4.5", "paligemma2", "gemma3"])
def test_fused_graph_is_fused_and_portable_graph_agrees(exported, tmp_path, name):
    """The default graph has one Attention and two RotaryEmbedding per layer and at most ~34 nodes per layer; the
    portable graph (elementary ops only) is an independent second export that matches the reference too.
    Covers qwen2 biases, qwen3 q/k norms, gemma2 softcaps and sandwich norms, gemma3 sliding layers."""
    from edgevlm.export.onnx.decoder import export_decoder

    ref, parts, out = exported(name)
    fused, layers = _op_counts(out / parts["decoder"].file), ref.text.num_layers
    print(f"{name} fused graph: {sum(fused.values())} nodes for {layers} layers: {dict(fused)}")
    assert parts["decoder"].runtime["graph"] == "fused"
    assert fused["Attention"] == layers and fused["RotaryEmbedding"] == 2 * layers
    assert sum(fused.values()) <= 34 * layers + 16  # the traced graph has ~150 per layer
    portable = export_decoder(ref, tmp_path, graph_kind="portable")
    ops = _op_counts(tmp_path / portable.file)
    assert portable.runtime["graph"] == "portable" and not {"Attention", "RotaryEmbedding"} & set(ops)
    for side in ("inputs", "outputs"):  # same contract: names and dtypes (the tracer names some fixed dims)
        assert ({k: v["dtype"] for k, v in getattr(portable, side).items()}
                == {k: v["dtype"] for k, v in getattr(parts["decoder"], side).items()})
    prefill, steps = _prefill_and_steps(ref, portable, tmp_path, name)
    assert prefill < 1e-3 and steps < 1e-3


def test_logits_index_selects_rows(exported):
    ref, parts, out = exported("minicpmv-2.6")
    part = parts["decoder"]
    sess = _session(out, part)
    embeds = np.random.default_rng(0).standard_normal((1, 5, ref.text.hidden_size)).astype(np.float32)
    blocks = np.full(8, -1, np.int32)
    full, _ = _run_decoder(sess, part, embeds, 0, blocks, np.arange(5), _empty_past(ref))
    last, _ = _run_decoder(sess, part, embeds, 0, blocks, [4], _empty_past(ref))
    assert last.shape == (1, full.shape[1])
    np.testing.assert_allclose(last[0], full[4], atol=1e-5)


def test_fp16_export_runs_close_to_fp32(tiny, tmp_path):
    ref = load_reference(tiny("minicpmv-2.6"))
    from edgevlm.export.onnx.decoder import export_decoder

    part = export_decoder(ref, tmp_path, dtype="fp16")
    assert part.dtype == "fp16" and part.inputs["inputs_embeds"]["dtype"] == "float32"
    sess = _session(tmp_path, part)
    ids = torch.arange(3, 13)[None]
    with torch.no_grad():
        want = ref.logits(ids)[0].numpy()
    got, _ = _run_decoder(sess, part, ref.embed_tokens(ids).detach().numpy(), 0, np.full(16, -1, np.int32),
                          np.arange(10), _empty_past(ref))
    diff = float(np.abs(got - want).max())
    print(f"fp16 decoder vs fp32 reference: max abs diff {diff:.2e} (logit range {np.ptp(want):.1f})")
    assert diff < 0.05 * float(np.ptp(want))


def test_fp16_keeps_the_residual_stream_float32(tiny, tmp_path):
    """Real Gemma 3 270M's residual stream leaves fp16's range (65504) at some positions: fp16 logits were
    NaN at all 498 positions of the quantization report. The fused graph carries the residual stream
    through its RMS norms (SkipSimplifiedLayerNormalization's sum output), so the fp16 graph keeps those
    nodes float32. Here one layer's post-MLP norm weight is set to 1e5 so the stream passes 65504: the
    fp16 graph must stay finite and close to the reference (without the float32 norms it is NaN)."""
    import onnx

    from edgevlm.export.onnx.decoder import export_decoder
    from edgevlm.export.onnx.fp16 import FLOAT32_OPS

    ref = load_reference(tiny("gemma3"))
    norm = ref.language_model.model.layers[0].post_feedforward_layernorm.weight
    saved = norm.detach().clone()
    try:
        with torch.no_grad():
            norm.fill_(1e5)
            embeds = ref.embed_tokens(torch.arange(3, 13)[None]).detach()
            want = ref.language_model(inputs_embeds=embeds).logits[0].numpy()
        part = export_decoder(ref, tmp_path, dtype="fp16")
    finally:
        with torch.no_grad():
            norm.copy_(saved)
    kept = [n for n in onnx.load(str(tmp_path / part.file)).graph.node if n.op_type in FLOAT32_OPS]
    got, _ = _run_decoder(_session(tmp_path, part), part, embeds.numpy(), 0, np.full(16, -1, np.int32),
                          np.arange(10), _empty_past(ref))
    diff = float(np.abs(got - want).max())
    print(f"fp16 gemma3 decoder with a residual stream past 65504: finite={np.isfinite(got).all()}, max abs diff "
          f"{diff:.2e} (logit range {np.ptp(want):.1f}); {len(kept)} norm nodes kept float32")
    assert kept and np.isfinite(got).all() and diff < 0.05 * float(np.ptp(want))


def test_large_models_use_one_external_data_file(tiny, tmp_path, monkeypatch):
    """Over the 2 GB protobuf limit the weights go to decoder.onnx.data (threshold lowered to force it)."""
    from edgevlm.export.onnx import plumbing as onnx_plumbing
    from edgevlm.export.onnx.decoder import export_decoder

    monkeypatch.setattr(onnx_plumbing, "EXTERNAL_DATA_THRESHOLD", 0)
    ref = load_reference(tiny("minicpmv-2.6"))
    part = export_decoder(ref, tmp_path)
    assert part.data_files == ["decoder.onnx.data"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decoder.onnx", "decoder.onnx.data"]
    assert (tmp_path / "decoder.onnx").stat().st_size < 200_000 < (tmp_path / "decoder.onnx.data").stat().st_size
    ids = torch.arange(3, 9)[None]
    with torch.no_grad():
        want = ref.logits(ids)[0].numpy()
    got, _ = _run_decoder(_session(tmp_path, part), part, ref.embed_tokens(ids).detach().numpy(), 0,
                          np.full(8, -1, np.int32), np.arange(6), _empty_past(ref))
    assert np.abs(got - want).max() < 1e-4
