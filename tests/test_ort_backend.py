"""OrtBackend (the Backend protocol over onnxruntime) against the PyTorch / transformers references.

Each tiny family is exported once per module. PaliGemma and Gemma 3 are driven with transformers'
own AutoProcessor outputs and compared with transformers' own forward and ``generate``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hf_prompts import block_ids, processor_inputs

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgevlm.errors import DeviceError, PromptError  # noqa: E402
from edgevlm.export import bare_manifest  # noqa: E402
from edgevlm.export.onnx import export_onnx_parts  # noqa: E402
from edgevlm.families import FAMILIES, TINY_NAMES, load_reference  # noqa: E402
from edgevlm.runtime.backends.onnxruntime import OrtBackend  # noqa: E402
from edgevlm.runtime.backends.ort_providers import resolve_providers  # noqa: E402

# The resampler family; MiniCPM-V 4.6 / 4.7 (patch-merging vision, hybrid text) have tests/test_minicpmv46_*.py.
MINICPMV = list(FAMILIES["minicpmv"].tiny_names)
MAX_CONTEXT = 512


def _manifest(ref, parts):
    """The sections OrtBackend reads; the rest of a real manifest is the export orchestration's job."""
    return bare_manifest(ref, "onnx", parts, MAX_CONTEXT, max_batch=8)


@pytest.fixture(scope="module")
def bundle(tiny, tmp_path_factory):
    """name -> (reference, backend, directory, parts), each exported once."""
    cache = {}

    def get(name):
        if name not in cache:
            ref = load_reference(tiny(name))
            out = tmp_path_factory.mktemp(f"ortb-{name}")
            parts = export_onnx_parts(ref, out)
            cache[name] = (ref, OrtBackend(out, _manifest(ref, parts)), out, parts)
        return cache[name]

    yield get
    for _, backend, _, _ in cache.values():
        backend.close()


def _greedy(backend, ids, features=None, blocks=None, n=24, steps=None):
    """Greedy tokens through forward(); ``steps`` (a list) collects each step's logits."""
    backend.rewind(0)
    logits = backend.forward(ids, features, blocks)
    tokens = []
    for _ in range(n):
        if steps is not None:
            steps.append(logits)
        tokens.append(int(logits.argmax()))
        logits = backend.forward(np.array([tokens[-1]]))
    return tokens


def _navit_image(seed=0):
    """An 'image' of 3 chunks: an overview and two equal slices, as the processor pads them."""
    tgt = np.array([[11, 15], [15, 11], [15, 11]], np.int32)
    n = int((tgt[:, 0] * tgt[:, 1]).max())
    rng = np.random.default_rng(seed)
    pixels = np.zeros((3, 3, 14, n * 14), np.float32)
    mask = np.zeros((3, n), bool)
    for b, (h, w) in enumerate(tgt):
        pixels[b, :, :, : h * w * 14] = rng.standard_normal((3, 14, h * w * 14))
        mask[b, : h * w] = True
    return {"pixel_values": pixels, "patch_attention_mask": mask, "tgt_sizes": tgt}


@pytest.mark.parametrize("name", MINICPMV)
def test_minicpmv_image_prompt_greedy_equals_reference(bundle, name):
    ref, backend, _, _ = bundle(name)
    image = _navit_image()
    feats = backend.encode_images(image)  # [3, Q, D]
    with torch.no_grad():
        want_feats = ref.image_features(*(torch.from_numpy(image[k]) for k in
                                          ("pixel_values", "patch_attention_mask", "tgt_sizes")))
    feat_diff = float(np.abs(feats - want_feats.numpy()).max())
    q = ref.query_num
    ids = np.concatenate([[5, 6, 7], [ref.image_token_id] * (3 * q), [8, 9, 10, 11]]).astype(np.int64)
    want = ref.greedy(torch.from_numpy(ids)[None], want_feats, 24)
    steps: list[np.ndarray] = []
    got = _greedy(backend, ids, feats.reshape(-1, feats.shape[-1]), steps=steps)
    # Every cached step's logits against the reference's full recomputation of the whole sequence.
    full_ids = torch.from_numpy(np.concatenate([ids, got[:-1]]))[None]
    with torch.no_grad():
        ref_logits = ref.logits(full_ids, want_feats)[0].numpy()[len(ids) - 1:]
    diff = float(np.abs(np.stack(steps) - ref_logits).max())
    print(f"{name}: features diff {feat_diff:.2e}, logits diff over prefill + 23 cached steps {diff:.2e}, "
          f"greedy {got[:8]}... equal={got == want}")
    assert feat_diff < 1e-4 and diff < 1e-3
    assert got == want


@pytest.mark.parametrize("name", ["paligemma", "paligemma2", "gemma3"])
def test_prefix_lm_and_image_blocks_match_transformers(bundle, tiny, name):
    ref, backend, _, _ = bundle(name)
    inputs = processor_inputs(tiny(name), name)
    ids = inputs["input_ids"][0].numpy()
    blocks = block_ids(name, inputs["token_type_ids"])
    feats = backend.encode_images({"pixel_values": inputs["pixel_values"].numpy()})
    rows = feats.reshape(-1, feats.shape[-1])
    want = ref.reference_logits(**inputs)[0].numpy()
    backend.rewind(0)
    got = backend.forward(ids, rows, blocks, all_logits=True)
    diff = float(np.abs(got - want).max())
    backend.rewind(0)
    causal = backend.forward(ids, rows, None, all_logits=True)
    causal_diff = float(np.abs(causal - want).max())
    want_tokens = ref.reference_generate(24, **inputs)
    steps: list[np.ndarray] = []
    got_tokens = _greedy(backend, ids, rows, blocks, steps=steps)
    # Cached steps vs transformers' full forward over prompt + generated tokens (generated tokens are
    # causal: token_type 1 for PaliGemma's suffix, 0 = text for Gemma 3).
    new = torch.tensor([got_tokens[:-1]])
    extended = dict(inputs, input_ids=torch.cat([inputs["input_ids"], new], 1),
                    attention_mask=torch.ones(1, len(ids) + new.shape[1], dtype=torch.long),
                    token_type_ids=torch.cat([inputs["token_type_ids"],
                                              torch.full_like(new, 1 if name.startswith("paligemma") else 0)], 1))
    extended.pop("labels", None)
    step_diff = float(np.abs(np.stack(steps) - ref.reference_logits(**extended)[0].numpy()[len(ids) - 1:]).max())
    print(f"{name}: {len(ids)} prompt tokens, prefill logits diff vs transformers {diff:.2e} (causal-only mask: "
          f"{causal_diff:.2f}); 24 cached steps vs transformers' full forward {step_diff:.2e}; "
          f"greedy {got_tokens[:8]}... equal={got_tokens == want_tokens}")
    assert diff < 1e-3 and step_diff < 1e-3
    assert causal_diff > 1e-2  # the block mask really matters for this prompt
    assert got_tokens == want_tokens


@pytest.mark.parametrize("name", ["minicpmv-2.6", "gemma3", "paligemma2"])
def test_cached_decoding_equals_full_recomputation(bundle, name):
    _, backend, _, _ = bundle(name)
    ids = np.random.default_rng(3).integers(3, 300, 45)
    blocks = np.full(45, -1, np.int32)
    blocks[5:20] = 0  # a bidirectional block inside the prompt
    backend.rewind(0)
    full = backend.forward(ids, None, blocks, all_logits=True)
    backend.rewind(0)
    rows = [backend.forward(ids[:30], None, blocks[:30], all_logits=True)]
    rows += [backend.forward(ids[t:t + 1], None, blocks[t:t + 1], all_logits=True) for t in range(30, 45)]
    diff = float(np.abs(np.concatenate(rows) - full).max())
    print(f"{name}: cached (30 + 15 single steps) vs one 45-token pass, max abs diff {diff:.2e}")
    assert backend.n_past == 45 and diff < 1e-4


def test_sliding_layers_read_only_their_window(bundle):
    """Gemma 3's local layers are bound only the cache rows their window (32 in the tiny config) can see:
    rows before it are poisoned with NaN and the next step is unchanged; a NaN there in a global layer
    (which must see every row) does reach the logits, so the poison would show if it were read."""
    ref, backend, out, parts = bundle("gemma3")
    layer_masks = parts["decoder"].binding["layer_masks"]
    window = parts["decoder"].binding["masks"]["attention_bias_sliding"]
    local = [i for i, m in enumerate(layer_masks) if m == "attention_bias_sliding"]
    assert local and len(local) < len(layer_masks)
    ids = np.random.default_rng(4).integers(3, 300, 60)
    backend.rewind(0)
    backend.forward(ids[:59])
    clean = backend.forward(ids[59:])
    stale = slice(0, 59 - window + 1)  # rows no query at position >= 59 may see in a local layer
    saved = [(backend._keys[i][:, stale].copy(), backend._values[i][:, stale].copy()) for i in local]
    for i in local:
        backend._keys[i][:, stale] = np.nan
        backend._values[i][:, stale] = np.nan
    backend.rewind(59)
    poisoned = backend.forward(ids[59:])
    for i, (k, v) in zip(local, saved):
        backend._keys[i][:, stale], backend._values[i][:, stale] = k, v
    global_layer = next(i for i, m in enumerate(layer_masks) if m == "attention_bias")
    backend._keys[global_layer][:, 0] = np.nan
    backend.rewind(59)
    seen = backend.forward(ids[59:])
    backend._keys[global_layer][:, 0] = 0.0
    print(f"gemma3: local layers {local} of {len(layer_masks)}, window {window}: step after poisoning "
          f"{stale.stop} stale rows, max abs diff {np.abs(poisoned - clean).max():.2e}; global layer poisoned: "
          f"finite={np.isfinite(seen).all()}")
    np.testing.assert_array_equal(poisoned, clean)
    assert not np.isfinite(seen).all()
    # A bundle exported before layer_masks existed binds every layer and mask in full: same logits.
    import copy

    old_parts = copy.deepcopy(parts)
    del old_parts["decoder"].binding["layer_masks"]
    old = OrtBackend(out, _manifest(ref, old_parts))
    old.forward(ids[:59])
    np.testing.assert_allclose(old.forward(ids[59:]), clean, atol=1e-4)
    old.close()


def test_rewind_reuses_the_cache(bundle):
    _, backend, _, _ = bundle("minicpmv-2.6")
    pointers = [buf.ctypes.data for buf in backend._keys + backend._values]
    backend.rewind(0)
    first = backend.forward(np.arange(3, 23))
    backend.forward(np.arange(40, 50))
    backend.rewind(20)
    assert backend.n_past == 20
    again = backend.forward(np.array([99]))
    backend.rewind(0)
    fresh_prefix = backend.forward(np.arange(3, 23))
    fresh = backend.forward(np.array([99]))
    np.testing.assert_allclose(first, fresh_prefix, atol=1e-6)
    np.testing.assert_allclose(again, fresh, atol=1e-5)
    # The KV buffers are the ones allocated at construction: nothing was reallocated.
    assert pointers == [buf.ctypes.data for buf in backend._keys + backend._values]


def test_context_overflow_is_a_prompt_error(bundle):
    _, backend, _, _ = bundle("minicpmv-2.6")
    backend.rewind(0)
    backend.forward(np.arange(MAX_CONTEXT - 2))
    with pytest.raises(PromptError, match="do not fit"):
        backend.forward(np.arange(3))
    backend.rewind(0)


def test_batched_slices_equal_one_at_a_time(bundle):
    _, backend, _, _ = bundle("minicpmv-4.5")
    image = _navit_image(seed=1)
    batched = backend.encode_images(image)
    backend.vision_info.max_batch, saved = 1, backend.vision_info.max_batch
    try:
        single = backend.encode_images(image)
    finally:
        backend.vision_info.max_batch = saved
    diff = float(np.abs(batched - single).max())
    print(f"batched vs single-chunk encoding max abs diff {diff:.2e}")
    assert diff < 1e-5


def test_image_feature_count_mismatch_is_a_prompt_error(bundle):
    ref, backend, _, _ = bundle("minicpmv-2.6")
    backend.rewind(0)
    ids = np.array([5, ref.image_token_id, ref.image_token_id, 6])
    with pytest.raises(PromptError, match="image placeholder"):
        backend.forward(ids, np.zeros((3, ref.text.hidden_size), np.float32))


def test_unavailable_device_lists_what_the_build_offers():
    with pytest.raises(DeviceError) as info:
        resolve_providers("coreml", available=["CPUExecutionProvider"])
    assert "CPUExecutionProvider" in str(info.value) and "coreml" in str(info.value)
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_providers("tpu")
    assert resolve_providers("auto", available=["XnnpackExecutionProvider", "CPUExecutionProvider"]) == \
        ["XnnpackExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]


def test_backend_raises_device_error_for_missing_provider(bundle):
    import onnxruntime as ort

    ref, _, out, parts = bundle("minicpmv-2.6")
    missing = next(d for d, p in (("cuda", "CUDAExecutionProvider"), ("coreml", "CoreMLExecutionProvider"))
                   if p not in ort.get_available_providers())
    with pytest.raises(DeviceError, match="not available"):
        OrtBackend(out, _manifest(ref, parts), device=missing)


def test_fused_decoder_on_an_old_onnxruntime_names_the_fix(bundle, monkeypatch):
    from edgevlm.errors import BundleError
    from edgevlm.runtime.backends import onnxruntime as backend_module

    ref, _, out, parts = bundle("minicpmv-2.6")
    monkeypatch.setattr(backend_module.ort, "__version__", "1.20.1")
    with pytest.raises(BundleError, match=r"needs onnxruntime >= 1.23; this is 1.20.1.*--decoder-graph portable"):
        OrtBackend(out, _manifest(ref, parts))


def test_runtime_does_not_import_torch(bundle):
    ref, _, out, parts = bundle("gemma3")
    from edgevlm.manifest import record_files

    manifest = _manifest(ref, parts)
    manifest.files = record_files(out)
    (out / "manifest.json").write_text(json.dumps(manifest.to_dict()))
    script = f"""
import json, sys, numpy as np
from pathlib import Path
from edgevlm.manifest import Manifest
from edgevlm.runtime.backends.onnxruntime import OrtBackend
m = Manifest.from_dict(json.loads(Path({str(out)!r}, "manifest.json").read_text()))
b = OrtBackend({str(out)!r}, m)
feats = b.encode_images({{"pixel_values": np.zeros((1, 3, 224, 224), np.float32)}})
ids = np.array([2] + [b.image_token_id] * feats.shape[1] + [40, 41])
b.forward(ids, feats[0], np.array([-1] + [0] * feats.shape[1] + [-1, -1], np.int32))
assert "torch" not in sys.modules and "transformers" not in sys.modules, "torch was imported"
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=str(Path(__file__).resolve().parents[1]))
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]
