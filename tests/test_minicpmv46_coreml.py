"""MiniCPM-V 4.6 as Core ML, checked on Linux as export/coreml/check.py checks the others: the packages converted
by coremltools (four states: KV rows of the attention layers, conv and recurrent states of the linear-attention
layers; a decode function and one fixed-size chunked prefill function; vision at enumerated slice shapes), and
the export's parity check run through CoreMLBackend with the converter's own PyTorch modules.

Conversion takes minutes here: slow tier. The default tier drives the converter modules through the backend
(tests/test_coreml.py's stateful-decoder test runs the hybrid names too)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgevlm.errors import EdgeVLMError  # noqa: E402
from edgevlm.export.coreml.check import module_backend, module_manifest  # noqa: E402
from edgevlm.families import load_reference  # noqa: E402

MAX_CONTEXT = 320


def test_recurrent_states_snapshot_and_rewind_through_the_backend(tiny):
    ref = load_reference(tiny("minicpmv-4.6"))
    backend = module_backend(ref, module_manifest(ref, MAX_CONTEXT), torch.float32)
    ids = np.random.default_rng(1).integers(3, 500, 90)
    first = backend.forward(ids[:70])
    snap = backend.snapshot()
    after = backend.forward(ids[70:90], all_logits=True)
    with pytest.raises(EdgeVLMError, match="recurrent"):
        backend.rewind(50)
    backend.rewind(70)  # the snapshot's point: the states are put back
    np.testing.assert_array_equal(backend.forward(ids[70:90], all_logits=True), after)
    backend.restore(snap)
    backend.rewind(0)
    np.testing.assert_allclose(backend.forward(ids[:70]), first, atol=1e-5)


@pytest.fixture(scope="module")
def bundle(tiny, tmp_path_factory):
    pytest.importorskip("coremltools", reason="conversion needs coremltools: pip install 'edgevlm[coreml]'")
    from edgevlm.export import export

    out = tmp_path_factory.mktemp("coreml-46") / "bundle"
    return export(tiny("minicpmv-4.6"), out, format="coreml", max_context=MAX_CONTEXT, progress=None), out


@pytest.mark.slow
def test_converted_hybrid_packages_and_parity(bundle):
    from edgevlm.export.coreml.plumbing import function_io_spec, function_names, io_spec, mil_op_counts
    from edgevlm.manifest import read_manifest

    manifest, out = bundle
    read_manifest(out, verify=True)
    report = manifest.validation
    print(report["runner"], {k: report[k] for k in ("vision", "logits", "greedy")})
    assert report["greedy"]["equal"] and report["vision"]["per_chunk_cosine_min"] > 0.999
    dec = manifest.parts["decoder"]
    package = out / dec.data_files[0]
    assert function_names(package) == ["decode", "prefill"] and dec.binding["prefill_sizes"] == [64]
    states = dec.binding["states"]
    assert states["conv_state"] == {"dtype": "float16", "shape": [2, 1, 3, 128]}  # 2 linear layers, K-1 = 3
    assert states["recurrent_state"] == {"dtype": "float16", "shape": [2, 4, 16, 16]}  # 4 value heads, 16 x 16
    assert states["key_cache"]["shape"] == [2, 1, 1, MAX_CONTEXT, 64]  # 2 attention layers
    for fn, record in dec.binding["functions"].items():
        assert function_io_spec(package, fn) == (record["inputs"], record["outputs"], record["states"])
        ops = mil_op_counts(package, fn)
        assert ops.get("write_state", 0) == 8  # K, V per attention layer; conv, recurrent per linear layer
        assert "enumerated" not in record["inputs"]["inputs_embeds"]  # fixed lengths: 1 and 64
    assert dec.binding["functions"]["prefill"]["inputs"]["inputs_embeds"]["shape"] == [1, 64, 64]
    vision = manifest.parts["vision"]
    assert io_spec(out / vision.data_files[0])[0] == vision.inputs
    assert sorted(s[1] for s in vision.inputs["merge_index"]["enumerated"]) == vision.binding["slice_patches"]
