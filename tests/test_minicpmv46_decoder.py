"""The hybrid (Qwen3.5) decoder graph of MiniCPM-V 4.6 against transformers' text model, driven by the
runtime's onnxruntime backend (KV rows and recurrent states bound in place): prefill lengths around the
64-token chunks of the gated delta rule, the graph's contract, the M-RoPE frequency table."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgevlm.export import bare_manifest  # noqa: E402
from edgevlm.export.onnx import export_onnx_parts  # noqa: E402
from edgevlm.processing.mrope import rotary_angles, stream_of_frequency  # noqa: E402
from edgevlm.families import load_reference  # noqa: E402
from edgevlm.runtime.backends.onnxruntime import OrtBackend  # noqa: E402


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    ref = load_reference(tiny("minicpmv-4.6"))
    out = tmp_path_factory.mktemp("parts")
    parts = export_onnx_parts(ref, out)
    return ref, parts, OrtBackend(out, bare_manifest(ref, "onnx", parts, 512))


def _reference_logits(ref, ids):
    with torch.no_grad():
        return ref.language_model(inputs_embeds=ref.embed_tokens(torch.from_numpy(ids)[None])).logits[0].numpy()


@pytest.mark.parametrize("length", [1, 65, *(pytest.param(n, marks=pytest.mark.slow) for n in (2, 63, 64, 129))])
def test_prefill_lengths_around_chunk_boundaries_match_transformers(exported, length):
    """Decode step (T == 1), one partial chunk, exact chunks and a padded last chunk, from an empty and
    from a non-empty state."""
    ref, _, backend = exported
    ids = np.random.default_rng(length).integers(0, 500, 20 + length)
    backend.rewind(0)
    backend.forward(ids[:20])
    after = backend.forward(ids[20:], all_logits=True)
    backend.rewind(0)
    fresh = backend.forward(ids[20:], all_logits=True)
    diffs = (float(np.abs(after - _reference_logits(ref, ids)[20:]).max()),
             float(np.abs(fresh - _reference_logits(ref, ids[20:])).max()))
    print(f"T={length}: after 20 tokens max |diff| {diffs[0]:.2e}, from empty {diffs[1]:.2e}")
    assert max(diffs) <= 1e-3


def test_graph_contract(exported, tmp_path):
    """Valid ONNX; I/O names follow the model's layer numbers; the binding names every layer's cache."""
    import onnx

    ref, parts, backend = exported
    part = parts["decoder"]
    onnx.checker.check_model(onnx.load(str(backend.bundle / part.file)))
    expected_in = {"inputs_embeds", "position_ids", "attention_bias", "logits_index"}
    expected_out = {"logits"}
    for i, kind in enumerate(ref.text.extra["layer_types"]):
        if kind == "full_attention":
            expected_in |= {f"past_key.{i}", f"past_value.{i}"}
            expected_out |= {f"present_key.{i}", f"present_value.{i}"}
        else:
            la = ref.language_model.model.layers[i].linear_attn
            states = part.binding["states"]
            assert states["conv"]["shape"] == [1, la.conv_kernel_size - 1, la.conv_dim]
            assert states["recurrent"]["shape"] == [1, la.num_v_heads, la.head_k_dim, la.head_v_dim]
            expected_in |= {f"past_conv.{i}", f"past_recurrent.{i}"}
            expected_out |= {f"present_conv.{i}", f"present_recurrent.{i}"}
    assert set(part.inputs) == expected_in and set(part.outputs) == expected_out
    assert part.binding["layer_masks"] == [None, "attention_bias", None, "attention_bias"]


def test_interleaved_stream_of_frequency_matches_transformers_recomposition():
    """Our interleaved M-RoPE frequency table (the one the hybrid decoder gathers with) reproduces transformers'
    recomposition for distinct streams, over a partial rotary dim."""
    from transformers import Qwen3_5TextConfig
    from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5TextRotaryEmbedding

    config = Qwen3_5TextConfig(head_dim=64, num_attention_heads=2, hidden_size=64,
                               rope_parameters={"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.5,
                                                "mrope_section": [6, 5, 5]})
    rotary = Qwen3_5TextRotaryEmbedding(config)
    positions = torch.stack([torch.arange(7), torch.arange(7) * 3 + 1, 40 - torch.arange(7)])[:, None]  # [3, 1, 7]
    cos, _ = rotary(torch.zeros(1), positions)  # [1, 7, rotary_dim]
    inv = rotary.inv_freq.numpy()
    streams = stream_of_frequency(rotary.mrope_section, interleaved=True, n_freq=len(inv))
    freqs = rotary_angles(positions[:, 0].numpy(), inv, streams)  # [7, rotary_dim/2]
    np.testing.assert_allclose(np.cos(freqs), cos[0, :, : len(inv)].numpy(), atol=1e-6)
