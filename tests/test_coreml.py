"""Core ML export: what can be checked without macOS, plus the macOS-only run.

Linux-possible checks (Core ML itself only runs on macOS):
1. the PyTorch modules handed to the converter reproduce the reference (stateful KV cache, prompt
   chunks padded to enumerated prefill lengths + decode steps with an explicit write position and
   masks over the whole cache, prefix-LM and bidirectional-image masks, padded navit slices, greedy
   tokens). They are driven through CoreMLBackend's own feed-building code (edgevlm.export.coreml.check:
   objects with the MLModel interface, predict / make_state, that run the very modules the converter
   traced and refuse shapes the converted functions would refuse);
2. conversion succeeds and the saved packages' specs show both decoder functions (decode, prefill)
   with their fixed / enumerated shapes and states, the declared inputs and outputs of every part;
3. quantized packages contain the compressed-weight ops and shrink as promised.
On macOS, the converted packages themselves run and must give the reference's greedy tokens.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
from hf_prompts import block_ids, processor_inputs

torch = pytest.importorskip("torch")

from edgevlm.errors import EdgeVLMError  # noqa: E402
from edgevlm.export.coreml.plumbing import (function_io_spec, function_names, io_spec, load_spec,  # noqa: E402
                                          mil_op_counts)
from edgevlm.export.coreml.check import module_backend, module_manifest  # noqa: E402
from edgevlm.export.coreml.decoder import (StatefulDecoder, declared_functions,  # noqa: E402
                                           prefill_sizes)
from edgevlm.families import FAMILIES, TINY_NAMES, load_reference  # noqa: E402
from edgevlm.runtime.backends.coreml import plan_chunks  # noqa: E402

# The resampler family; MiniCPM-V 4.6 / 4.7 (patch-merging vision, hybrid text) have tests/test_minicpmv46_*.py.
MINICPMV = list(FAMILIES["minicpmv"].tiny_names)
MAX_CONTEXT = 320  # converted packages (the export check's MiniCPM-V prompt is ~270 tokens)
TORCH_CONTEXT = 512  # the PyTorch modules (PaliGemma prompts hold 256 image tokens)
ON_MAC = platform.system() == "Darwin"


def torch_backend(ref, cache_dtype=torch.float32, max_context=TORCH_CONTEXT, sizes=None):
    """A CoreMLBackend whose three models are the converter's PyTorch modules (Part records computed
    by the exporters' own helpers, without converting; ``sizes`` = the prefill lengths)."""
    sizes = prefill_sizes(max_context, sizes) if sizes else None
    return module_backend(ref, module_manifest(ref, max_context, sizes), cache_dtype)


def _record_calls(backend):
    """Wrap the decoder functions so each call's (function, T, write position) is recorded."""
    calls = []
    for name, fn in backend._functions.items():
        def predict(feeds, state=None, _fn=fn, _name=name):
            calls.append((_name, feeds["inputs_embeds"].shape[1], int(feeds["position"][0])))
            return type(_fn).predict(_fn, feeds, state)
        fn.predict = predict
    return calls


@pytest.fixture(scope="module")
def refs(tiny):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_reference(tiny(name))
        return cache[name]

    return get


def _greedy(backend, ids, rows=None, blocks=None, n=24, eos=()):
    backend.rewind(0)
    logits = backend.forward(ids, rows, blocks)
    tokens = []
    for _ in range(n):
        tokens.append(int(logits.argmax()))
        if tokens[-1] in eos:
            break
        logits = backend.forward(np.array([tokens[-1]]))
    return tokens


# -- 1. the modules handed to the converter ------------------------------------------------------------

# MiniCPM-V 4.7's text model is 4.6's (and text-only positions are one stream): slow tier only.
@pytest.mark.parametrize("name", [n if n != "minicpmv-4.7" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in TINY_NAMES])
def test_stateful_decoder_prefill_and_cached_steps_match_reference(refs, name):
    """Prefill 36 tokens (padded to the prefill length 64, or cut into 16 + 16 + 4-padded-to-16 when
    only 16 is exported), then 4 decode steps with an explicit write position, all with masks over
    the whole cache, vs the reference's full forward over all 40 (Gemma 3's sliding window is 32 < 40).
    Also every prefill row's logits (``all_logits``). fp32 cache: the wiring alone; fp16 cache: the
    module that is converted (Core ML states are fp16)."""
    ref = refs(name)
    ids = torch.randint(3, ref.text.vocab_size, (1, 40), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = ref.language_model(inputs_embeds=ref.embed_tokens(ids)).logits[0].numpy()  # [40, V]
    diffs = {}
    for cache, sizes, plan in ((torch.float32, None, [("prefill", 64, 0)]),
                               (torch.float32, [16], [("prefill", 16, 0), ("prefill", 16, 16), ("prefill", 16, 32)]),
                               (torch.float16, None, [("prefill", 64, 0)])):
        backend = torch_backend(ref, cache, sizes=sizes)
        calls = _record_calls(backend)
        last = backend.forward(ids[0, :36].numpy())
        steps = [backend.forward(ids[0, t:t + 1].numpy()) for t in range(36, 40)]
        assert calls == plan + [("decode", 1, t) for t in range(36, 40)]
        got = np.concatenate([last[None], np.stack(steps)])
        backend.rewind(0)
        rows = backend.forward(ids[0, :36].numpy(), all_logits=True)  # [36, V]
        diffs[(cache, str(sizes))] = max(float(np.abs(got - want[35:]).max()), float(np.abs(rows - want[:36]).max()))
        assert backend.n_past == 36
    print(f"{name}: logits max abs diff vs reference, fp32 cache {diffs[(torch.float32, 'None')]:.2e} "
          f"(16-row chunks {diffs[(torch.float32, '[16]')]:.2e}), fp16 cache {diffs[(torch.float16, 'None')]:.2e} "
          f"(logit range {np.ptp(want):.1f})")
    fp32_bound = max(1e-4, 5e-6 * float(np.ptp(want)))  # rounding grows with the logits (tiny Qwen2.5-VL: range 68)
    assert diffs[(torch.float32, "None")] < fp32_bound and diffs[(torch.float32, "[16]")] < fp32_bound
    assert diffs[(torch.float16, "None")] < 0.02 * float(np.ptp(want))


def test_prompt_chunks_keep_blocks_whole_and_fit_the_cache():
    blocks = np.full(64, -1, np.int32)
    assert plan_chunks(0, 36, [16, 32], 64, blocks) == [(0, 32, 32), (32, 4, 16)]
    assert plan_chunks(40, 10, [16, 32], 64, blocks) == [(40, 10, 16)]
    # near the end of the cache no padded length fits: one decode call per token
    assert plan_chunks(60, 3, [16, 32], 64, blocks) == [(60, 1, 1), (61, 1, 1), (62, 1, 1)]
    blocks[10:20] = 0  # a bidirectional block across the 16-row boundary: the cut moves to its start
    assert plan_chunks(0, 36, [16], 64, blocks) == [(0, 10, 16), (10, 16, 16), (26, 10, 16)]
    blocks[10:30] = 0  # a block longer than every prefill length cannot be written in one call
    with pytest.raises(EdgeVLMError, match="longer than the largest prefill length"):
        plan_chunks(0, 36, [16], 64, blocks)


@pytest.mark.parametrize("name", ["paligemma", "paligemma2", "gemma3"])
def test_masks_as_inputs_match_transformers(refs, tiny, name):
    """Prefix-LM / bidirectional-image masks passed as inputs: logits equal transformers' own forward
    (which builds those masks itself from token_type_ids); greedy tokens equal transformers' generate."""
    ref = refs(name)
    inputs = processor_inputs(tiny(name), name)
    ids = inputs["input_ids"][0].numpy()
    blocks = block_ids(name, inputs["token_type_ids"])
    want = ref.reference_logits(**inputs)[0].numpy()
    want_tokens = ref.reference_generate(24, **inputs)
    for cache in (torch.float32, torch.float16):
        backend = torch_backend(ref, cache)
        rows = backend.encode_images({"pixel_values": inputs["pixel_values"].numpy()})
        rows = rows.reshape(-1, rows.shape[-1])
        got = backend.forward(ids, rows, blocks, all_logits=True)
        diff = float(np.abs(got - want).max())
        backend.rewind(0)
        causal_diff = float(np.abs(backend.forward(ids, rows, None, all_logits=True) - want).max())
        tokens = _greedy(backend, ids, rows, blocks)
        print(f"{name} ({str(cache)[6:]} cache): prefill logits diff vs transformers {diff:.2e} (causal-only mask "
              f"{causal_diff:.2f}); greedy equal={tokens == want_tokens} {tokens[:8]}...")
        assert causal_diff > 1e-2  # the block mask really matters for this prompt
        if cache is torch.float32:
            assert diff < 1e-3
        else:
            assert diff < 0.02 * float(np.ptp(want))
        assert tokens == want_tokens


def _navit_chunks(seed=0):
    """Two patchified chunks of different grids, zero-padded to the longer (as the processor packs them)."""
    tgt = np.array([[28, 37], [10, 12]], np.int32)
    n = int((tgt[:, 0] * tgt[:, 1]).max())
    pixels = torch.randn(len(tgt), 3, 14, n * 14, generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(len(tgt), n, dtype=torch.bool)
    for b, (h, w) in enumerate(tgt):
        mask[b, : h * w] = True
        pixels[b, :, :, h * w * 14:] = 0
    return pixels, mask, tgt


@pytest.mark.parametrize("name", MINICPMV)
def test_navit_vision_padded_to_enumerated_shape_matches_reference(refs, name):
    """1036 and 120 patches run padded to the enumerated 1088 and 768: features equal the reference's."""
    ref = refs(name)
    pixels, mask, tgt = _navit_chunks()
    with torch.no_grad():
        want = ref.image_features(pixels, mask, torch.from_numpy(tgt)).numpy()
    backend = torch_backend(ref)
    got = backend.encode_images({"pixel_values": pixels.numpy(), "patch_attention_mask": mask.numpy(),
                                 "tgt_sizes": tgt})
    diff = float(np.abs(got - want).max())
    print(f"{name}: slice shapes {backend.vision_binding['slice_patches']}, features max abs diff {diff:.2e}")
    assert got.shape == want.shape and diff < 1e-4


@pytest.mark.parametrize("name", [n if n == "minicpmv-2.6" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in MINICPMV])
def test_minicpmv_image_prompt_greedy_matches_reference(refs, name):
    ref = refs(name)
    pixels, mask, tgt = _navit_chunks(seed=1)
    backend = torch_backend(ref, torch.float16)
    feats = backend.encode_images({"pixel_values": pixels.numpy(), "patch_attention_mask": mask.numpy(),
                                   "tgt_sizes": tgt})  # [2, Q, D]
    q = ref.query_num
    ids = np.r_[np.arange(5, 9), np.full(q, ref.image_token_id), [11], np.full(q, ref.image_token_id), [12, 13]]
    with torch.no_grad():
        want = ref.greedy(torch.from_numpy(ids)[None], torch.from_numpy(feats), 16)
    got = _greedy(backend, ids, feats.reshape(-1, feats.shape[-1]), n=16)
    print(f"{name}: greedy (fp16 state cache) {got[:8]}... equal={got == want}")
    assert got == want


def test_too_large_chunk_names_the_fix(refs):
    backend = torch_backend(refs("minicpmv-2.6"))
    n = max(backend.vision_binding["slice_patches"]) + 14
    with pytest.raises(EdgeVLMError, match="largest vision shape"):
        backend.encode_images({"pixel_values": np.zeros((1, 3, 14, n * 14), np.float32),
                               "patch_attention_mask": np.ones((1, n), bool), "tgt_sizes": np.array([[1, n]])})


# -- 2. conversion and the saved specs -------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(tiny, tmp_path_factory):
    """name -> (reference, manifest, bundle dir), exported with the public API (parity check skipped)."""
    pytest.importorskip("coremltools", reason="conversion needs coremltools: pip install 'edgevlm[coreml]'")
    from edgevlm.export import export

    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(f"coreml-{name}") / "bundle"
            manifest = export(tiny(name), out, format="coreml", dtype="fp16", max_context=MAX_CONTEXT,
                              validate=False, progress=None)
            cache[name] = (load_reference(tiny(name)), manifest, out)
        return cache[name]

    return get


FAST_CONVERT = ["minicpmv-2.6", "gemma3"]
# The declarations checked below are the attention-only package's (two KV states, enumerated prefill lengths);
# a hybrid decoder's four states and fixed prefill chunk: tests/test_minicpmv46_coreml.py.
CONVERT = [n if n in FAST_CONVERT else pytest.param(n, marks=pytest.mark.slow) for n in TINY_NAMES
           if n not in FAMILIES["minicpmv4_6"].tiny_names]


@pytest.mark.parametrize("name", CONVERT)
def test_converted_packages_declare_inputs_outputs_states_and_shapes(bundle, name):
    from edgevlm.manifest import read_manifest

    ref, manifest, out = bundle(name)
    read_manifest(out, verify=True)  # every package file recorded with size and sha256
    t = ref.text
    parts = manifest.parts
    for part_name, part in parts.items():
        package = out / part.data_files[0]
        assert part.file == f"{part.data_files[0]}/Manifest.json" and (out / part.file).is_file()
        spec = load_spec(package)
        assert spec.WhichOneof("Type") == "mlProgram" and spec.specificationVersion >= 9  # iOS 18 / macOS 15
        assert part.runtime["compute_units"] == "cpu_and_ne"
        assert io_spec(package) == (part.inputs, part.outputs, part.binding.get("states", {}))

    dec = parts["decoder"]
    package = out / dec.data_files[0]
    module = StatefulDecoder(ref.language_model, MAX_CONTEXT)
    sizes = dec.binding["prefill_sizes"]
    assert sizes == prefill_sizes(MAX_CONTEXT) == [16, 64, 128, 256, MAX_CONTEXT]
    # two functions, decode by default; what the manifest records is what the package declares
    assert function_names(package) == ["decode", "prefill"] and dec.binding["default_function"] == "decode"
    assert load_spec(package).description.defaultFunctionName == "decode"
    cache_shape = [t.num_layers, 1, t.num_kv_heads, MAX_CONTEXT, t.head_dim]
    states = {"key_cache": {"dtype": "float16", "shape": cache_shape},
              "value_cache": {"dtype": "float16", "shape": cache_shape}}
    declared = declared_functions(module, sizes)
    for fn, record in dec.binding["functions"].items():
        assert function_io_spec(package, fn) == (record["inputs"], record["outputs"], record["states"])
        assert record["inputs"] == declared[fn]["inputs"] and record["states"] == states  # one state, shared
        assert list(record["inputs"]) == module.input_names()
        assert record["outputs"]["logits"] == {"dtype": "float32", "shape": [1, 1, t.vocab_size]}
        ops = mil_op_counts(package, fn)
        # the cache really is state: read, updated in place per layer (K and V) at the position input
        assert ops.get("read_state", 0) >= 2 * t.num_layers and ops.get("write_state", 0) == 2 * t.num_layers
        assert ops.get("slice_update", 0) == 2 * t.num_layers
    decode, prefill = dec.binding["functions"]["decode"]["inputs"], dec.binding["functions"]["prefill"]["inputs"]
    assert decode["attention_bias"] == {"dtype": "float32", "shape": [1, 1, 1, MAX_CONTEXT]}  # fixed width
    assert decode["inputs_embeds"]["shape"] == [1, 1, t.hidden_size] and "enumerated" not in decode["inputs_embeds"]
    assert decode["position"] == {"dtype": "int32", "shape": [1]}
    assert prefill["attention_bias"]["enumerated"] == [[1, 1, n, MAX_CONTEXT] for n in sizes]
    assert prefill["inputs_embeds"]["enumerated"] == [[1, n, t.hidden_size] for n in sizes]
    assert (dec.inputs, dec.outputs, dec.binding["states"]) == io_spec(package)  # the default function's
    # weights are stored once for both functions (save_multifunction deduplicates them)
    weights = sum(f.stat().st_size for f in package.rglob("weights/*"))
    used = [*module.core.model.layers.parameters(), *module.core.model.norm.parameters(), module.core.lm_head.weight]
    params = sum(p.numel() for p in used)  # what the decoder holds (its embedding is the other package)
    assert weights < 1.2 * 2 * params
    assert "key_cache" not in dec.inputs and "key_cache" not in dec.outputs

    vis = parts["vision"]
    if manifest.vision.kind == "patch_sequence":
        shapes = vis.binding["slice_patches"]
        p, d = manifest.vision.patch_size, manifest.vision.params["key_pos_dim"]
        assert sorted(s[1] for s in vis.inputs["patch_attention_mask"]["enumerated"]) == shapes
        assert sorted(s[3] for s in vis.inputs["pixel_values"]["enumerated"]) == [n * p for n in shapes]
        assert sorted(s[1] for s in vis.inputs["position_ids"]["enumerated"]) == shapes
        assert sorted(map(tuple, vis.inputs["key_pos"]["enumerated"])) == [(1, n, d) for n in shapes]
        assert vis.inputs["position_ids"]["dtype"] == "int32"
    elif manifest.vision.kind == "packed_patches":  # one image per call, padded to an enumerated patch count
        assert sorted(s[1] for s in vis.inputs["pixel_values"]["enumerated"]) == vis.binding["slice_patches"]
        assert {v["dtype"] for n, v in vis.inputs.items() if "segments" in n or "index" in n} == {"int32"}
    else:
        size = manifest.vision.image_size
        assert vis.inputs == {"pixel_values": {"dtype": "float32", "shape": [1, 3, size, size]}}
    if manifest.vision.tokens_per_chunk:  # 0: tokens per image, from its plan
        assert vis.outputs["features"]["shape"] == [1, manifest.vision.tokens_per_chunk, t.hidden_size]
    print(f"{name}: decoder functions {function_names(package)}, prefill {sizes}, inputs {list(dec.inputs)}, "
          f"states {cache_shape}, weights {weights} bytes for {params} parameters; vision "
          f"{vis.binding.get('slice_patches') or manifest.vision.image_size}")


def test_export_parity_check_with_converter_modules(bundle, tiny):
    """The whole export check (our preprocessing, prompt layout, vision, logits, 32 greedy tokens) on the
    exported manifest, with the converter's modules standing in for Core ML."""
    from edgevlm.export.coreml.check import validate_with_modules

    ref, manifest, out = bundle("minicpmv-2.6")
    report = validate_with_modules(ref, tiny("minicpmv-2.6"), out, manifest)
    print({k: report[k] for k in ("vision", "logits", "greedy")})
    assert report["passed"] and report["greedy"]["equal"] and report["vision"]["cosine"] > 0.9999


@pytest.mark.skipif(ON_MAC, reason="checks the message shown on systems without Core ML")
def test_loading_a_coreml_bundle_off_macos_names_the_formats_that_run_here(bundle):
    import edgevlm.runtime as runtime

    _, _, out = bundle("gemma3")
    with pytest.raises(EdgeVLMError, match=r"macOS.*onnx\|gguf"):
        runtime.load(out)


# -- 3. quantization --------------------------------------------------------------------------------------

SLOW = pytest.mark.slow


@pytest.mark.parametrize("part, method, op, max_weights_ratio", [
    ("decoder", "int8", "constexpr_blockwise_shift_scale", 0.55),
    ("decoder", "w4", "constexpr_blockwise_shift_scale", 0.30),
    ("embedding", "palette4", "constexpr_lut_to_dense", 0.30),  # one table: k-means is slow on all 15
    pytest.param("decoder", "palette4", "constexpr_lut_to_dense", 0.30, marks=SLOW),
    pytest.param("decoder", "palette6", "constexpr_lut_to_dense", 0.42, marks=SLOW),
    pytest.param("vision", "palette6", "constexpr_lut_to_dense", 0.42, marks=SLOW)])
def test_quantized_package_has_compressed_weight_ops_and_shrinks(bundle, tmp_path, part, method, op,
                                                                 max_weights_ratio):
    """Every weight matrix is replaced by a constexpr op; the weight file shrinks to the promised share
    (int4 <= 30%, int8 <= 55%). The whole-package share is printed too: on these tiny models the program
    text (~70 kB, unchanged by quantization) is a tenth of the package."""
    from edgevlm.quantize.coreml import _weight_consts, quantize_coreml_part

    _, manifest, out = bundle("minicpmv-2.6")
    src = out / manifest.parts[part].data_files[0]
    dst = tmp_path / f"{part}.mlpackage"
    record = quantize_coreml_part(src, dst, method, block_size=32)
    functions = function_names(src)  # the decoder: decode + prefill, quantized one by one, then combined
    assert function_names(dst) == functions and record.get("functions", ["main"]) == functions
    for fn in functions:
        weights = [n for n, shape in _weight_consts(load_spec(src), fn).items() if np.prod(shape) > 2048]
        assert mil_op_counts(dst, None if fn == "main" else fn).get(op, 0) == len(weights) > 0
        # The runtime contract is unchanged: same inputs, outputs and states.
        assert function_io_spec(dst, fn) == function_io_spec(src, fn)
    print(f"{part} {method}: {record['quantized_ops']} for {len(weights)} weight tensors per function "
          f"{functions}, weight file {record['weights_ratio']:.3f} of fp16, whole package {record['ratio']:.3f} "
          f"({record['size_before']} -> {record['size_after']} bytes)")
    assert record["quantized_ops"].get(op, 0) == len(weights)
    # the quantized weights are still stored once for all functions
    assert record["weights_ratio"] <= max_weights_ratio
    if method == "w4":
        assert record["block_size"] == 32 and record["bits"] == 4


def test_mixed_recipe_quantizes_each_part_and_writes_a_valid_bundle(bundle, tmp_path, monkeypatch):
    """recipe "mixed": decoder int4 per-block, vision and embedding int8, through edgevlm.quantize; no
    temporary copy of a package is left in the system temp folder (coremltools would keep one per model)."""
    import tempfile

    from edgevlm.manifest import read_manifest
    from edgevlm.quantize import quantize

    _, manifest, out = bundle("minicpmv-2.6")
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    new = quantize(out, tmp_path / "mixed", recipe="mixed", progress=None)
    assert sorted(p.name for p in system_tmp.iterdir()) == []
    read_manifest(tmp_path / "mixed", verify=True)
    q = new.quantization
    print({k: (v["method"], v.get("quantized_ops"), v.get("weights_ratio"))
           for k, v in q.items() if isinstance(v, dict)})
    assert (q["decoder"]["method"], q["vision"]["method"], q["embedding"]["method"]) == ("w4", "int8", "int8")
    for name in ("decoder", "vision", "embedding"):
        assert q[name]["quantized_ops"].get("constexpr_blockwise_shift_scale", 0) > 0
    assert new.parts["vision"].inputs == manifest.parts["vision"].inputs  # enumerated shapes kept


def test_coreml_only_methods_and_unknown_methods(tmp_path):
    from edgevlm.quantize.coreml import plan_coreml

    parts = ["vision", "embedding", "decoder"]
    assert plan_coreml("palette4", parts) == {"vision": "palette6", "embedding": "palette6", "decoder": "palette4"}
    assert plan_coreml("mixed", parts)["decoder"] == "w4"
    with pytest.raises(EdgeVLMError, match="not available for Core ML"):
        plan_coreml("qdq8", parts)


# -- 4. macOS: the packages themselves ------------------------------------------------------------------

@pytest.mark.macos
@pytest.mark.skipif(not ON_MAC, reason="Core ML runs only on macOS 15+; the Linux checks above cover the "
                                       "converted modules and the package specs")
@pytest.mark.parametrize("name", TINY_NAMES)
def test_coreml_packages_greedy_tokens_equal_reference(bundle, name):
    from edgevlm.runtime import open_backend

    ref, manifest, out = bundle(name)
    backend = open_backend(out, manifest, device="cpu_only")
    try:
        ids = torch.randint(3, ref.text.vocab_size, (1, 20), generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            want = ref.greedy(ids, None, 16)
        got = _greedy(backend, ids[0].numpy(), n=16)
        print(f"{name}: Core ML greedy {got[:8]}... equal={got == want}")
        assert got == want
    finally:
        backend.close()
