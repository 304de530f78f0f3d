"""MiniCPM-V 4.6 / 4.7 hybrid decoder (Qwen3.5 text) as ONNX against transformers.

The whole pipeline runs as the runtime will: transformers' processor -> our ONNX vision part ->
token embeddings with the feature rows scattered in -> our ONNX hybrid decoder, driven by a numpy
loop that binds the KV rows and the conv / recurrent states (edgevlm/export/onnx_hybrid_session.py).
The reference is transformers' own forward and ``generate`` on the same directory and processor output.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgevlm.errors import CheckpointError  # noqa: E402
from edgevlm.export.onnx_hybrid_decoder import export_hybrid_decoder, mrope_selection  # noqa: E402
from edgevlm.export.onnx_hybrid_session import HybridSession, greedy  # noqa: E402
from edgevlm.families.minicpmv4_6.reference import load_processor, load_reference, processor_outputs  # noqa: E402
from edgevlm.families.minicpmv4_6.tiny import make_tiny_minicpmv4_6  # noqa: E402
from edgevlm.families.minicpmv4_6.vision import export_vision, graph_feeds, unpack_slices  # noqa: E402
from tests.test_processing_slicing import synthetic_image  # noqa: E402

POSITIONS = {"4.6": "1d", "4.7": "mrope"}
RATIO = {"16x": 16, "4x": 4}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """(version, mode) -> (reference, processor, vision session, decoder session, decoder part)."""
    made, refs = {}, {}

    def get(version, mode="16x"):
        if (version, mode) not in made:
            if version not in refs:
                path = make_tiny_minicpmv4_6(version, tmp_path_factory.mktemp(f"minicpmv{version}"))
                ref = load_reference(path)
                out = tmp_path_factory.mktemp(f"onnx{version}")
                part = export_hybrid_decoder(ref.text_model, ref.lm_head, ref.text_config, out, POSITIONS[version])
                refs[version] = (ref, load_processor(path), _session(out / part.file), part, out)
            ref, processor, decoder, part, out = refs[version]
            export_vision(ref.hf, out / f"vision_{mode}.onnx", mode)
            made[version, mode] = (ref, processor, _session(out / f"vision_{mode}.onnx"), decoder, part)
        return made[version, mode]

    return get


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def prompt_embeds(ref, vision, inputs, mode):
    """Token embeddings with our ONNX vision features in the image placeholder rows: [1, T, D]."""
    config = ref.hf.config.vision_config
    tgt = inputs["target_sizes"].numpy()
    feeds = graph_feeds(unpack_slices(inputs["pixel_values"].numpy(), tgt), tgt, mode,
                        config.image_size // config.patch_size)
    out = vision.run(None, feeds)[0]
    rows = np.concatenate([out[b, : int(np.prod(tgt[b])) // RATIO[mode]] for b in range(len(tgt))])
    ids = inputs["input_ids"]
    embeds = ref.embed_tokens(ids).detach().numpy().copy()
    slots = (ids == ref.image_token_id).numpy()
    assert slots.sum() == len(rows)
    embeds[slots] = rows
    return embeds


def embed_fn(ref):
    table = ref.text_model.embed_tokens.weight.detach().numpy()
    return lambda token: table[token]


@pytest.mark.parametrize("version, mode", [("4.6", "16x"), ("4.6", "4x"), ("4.7", "16x")])
def test_first_step_logits_and_32_greedy_tokens_equal_transformers(pipeline, version, mode):
    ref, processor, vision, decoder, part = pipeline(version, mode)
    inputs = processor_outputs(processor, "What is in the image?", [synthetic_image(700, 500, 1)], downsample_mode=mode)
    expected_tokens = ref.reference_generate(32, downsample_mode=mode, **inputs)
    expected_logits = ref.reference_logits(downsample_mode=mode, **inputs)[0, -1].numpy()
    positions, next_position = ref.prompt_positions(inputs, mode)
    session = HybridSession(decoder, part.extra)
    tokens, first = greedy(session, prompt_embeds(ref, vision, inputs, mode), positions.numpy(), next_position,
                           embed_fn(ref), 32, streams=3 if version == "4.7" else 1,
                           eos_ids=tuple(ref.hf.generation_config.eos_token_id))
    diff = float(np.abs(first - expected_logits).max())
    same = next((i for i, (a, b) in enumerate(zip(tokens, expected_tokens)) if a != b), len(tokens))
    print(f"{version} {mode}: prompt {inputs['input_ids'].shape[1]} tokens, first-step max |logit diff| {diff:.2e}, "
          f"greedy tokens equal {same}/{len(expected_tokens)}\n  ours   {tokens}\n  theirs {expected_tokens}")
    assert diff <= 1e-3
    assert len(expected_tokens) == 32  # the image is chosen so that the tiny model does not stop early
    assert tokens == expected_tokens


@pytest.mark.parametrize("version", ["4.6", "4.7"])
def test_cached_decoding_equals_recomputation(pipeline, version):
    """Prefill + one call per token gives the logits of one call over the whole sequence; a snapshot
    of the states taken mid-way and restored continues exactly as before."""
    ref, _, _, decoder, part = pipeline(version)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 500, 150)
    table = ref.text_model.embed_tokens.weight.detach().numpy()
    embeds = table[ids][None]
    positions = np.arange(150)[None] if version == "4.6" else np.tile(np.arange(150), (3, 1))[:, None]
    whole = HybridSession(decoder, part.extra).step(embeds, positions)
    session = HybridSession(decoder, part.extra)
    parts = [session.step(embeds[:, :70], positions[..., :70])]  # crosses a 64-token chunk boundary
    snap = session.snapshot()
    parts += [session.step(embeds[:, t:t + 1], positions[..., t:t + 1]) for t in range(70, 100)]
    parts.append(session.step(embeds[:, 100:], positions[..., 100:]))
    cached = np.concatenate(parts, axis=1)
    diff = float(np.abs(cached - whole).max())
    session.restore(snap)
    again = session.step(embeds[:, 70:71], positions[..., 70:71])
    print(f"{version}: cached vs recomputed max |diff| {diff:.2e} over 150 positions; after restore "
          f"{float(np.abs(again - cached[:, 70:71]).max()):.2e}")
    assert diff <= 1e-4
    np.testing.assert_array_equal(again, cached[:, 70:71])


@pytest.mark.parametrize("length", [1, 2, 63, 64, 65, 129])
def test_prefill_lengths_around_chunk_boundaries_match_transformers(pipeline, length):
    """Decode step (T == 1), one partial chunk, exact chunks and a padded last chunk, from an empty and
    from a non-empty state."""
    ref, _, _, decoder, part = pipeline("4.6")
    rng = np.random.default_rng(length)
    table = ref.text_model.embed_tokens.weight.detach().numpy()
    embeds = torch.from_numpy(table[rng.integers(0, 500, 20 + length)][None])
    expected, _ = ref.text_forward(embeds)
    session = HybridSession(decoder, part.extra)
    session.step(embeds[:, :20].numpy(), np.arange(20)[None])
    ours = session.step(embeds[:, 20:].numpy(), np.arange(20, 20 + length)[None])
    fresh = HybridSession(decoder, part.extra).step(embeds[:, 20:].numpy(), np.arange(length)[None])
    expected_fresh, _ = ref.text_forward(embeds[:, 20:])
    diffs = (float(np.abs(ours - expected[:, 20:].numpy()).max()), float(np.abs(fresh - expected_fresh.numpy()).max()))
    print(f"T={length}: after 20 tokens max |diff| {diffs[0]:.2e}, from empty {diffs[1]:.2e}")
    assert max(diffs) <= 1e-3


def test_graph_contract(pipeline, tmp_path):
    """Valid ONNX; I/O names follow the model's layer numbers; the Part lists every layer's cache."""
    import onnx

    ref, _, _, decoder, part = pipeline("4.6")
    part = export_hybrid_decoder(ref.text_model, ref.lm_head, ref.text_config, tmp_path)
    onnx.checker.check_model(onnx.load(str(tmp_path / part.file)))
    kinds = [layer["kind"] for layer in part.extra["layers"]]
    assert kinds == list(ref.text_config.layer_types)
    expected_in = {"inputs_embeds", "position_ids", "attention_bias", "logits_index"}
    expected_out = {"logits"}
    for i, layer in enumerate(part.extra["layers"]):
        if layer["kind"] == "full_attention":
            expected_in |= {f"past_key.{i}", f"past_value.{i}"}
            expected_out |= {f"present_key.{i}", f"present_value.{i}"}
        else:
            la = ref.text_model.layers[i].linear_attn
            assert layer["states"]["conv"]["shape"] == [1, la.conv_kernel_size - 1, la.conv_dim]
            assert layer["states"]["recurrent"]["shape"] == [1, la.num_v_heads, la.head_k_dim, la.head_v_dim]
            expected_in |= {f"past_conv.{i}", f"past_recurrent.{i}"}
            expected_out |= {f"present_conv.{i}", f"present_recurrent.{i}"}
    assert set(part.inputs) == expected_in and set(part.outputs) == expected_out


def test_unknown_layer_kind_is_refused(pipeline, tmp_path):
    ref = pipeline("4.6")[0]
    config = ref.text_config
    saved = list(config.layer_types)
    try:
        config.layer_types = saved[:2] + ["mamba2"] + saved[3:]
        with pytest.raises(CheckpointError, match=r"layer_types\[2\] is 'mamba2'"):
            export_hybrid_decoder(ref.text_model, ref.lm_head, config, tmp_path)
    finally:
        config.layer_types = saved
    assert not (tmp_path / "decoder.onnx").exists()


def test_mrope_selection_matches_transformers_recomposition():
    """Our interleaved M-RoPE frequency table reproduces transformers' recomposition for distinct streams."""
    from transformers import Qwen3_5TextConfig
    from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5TextRotaryEmbedding

    config = Qwen3_5TextConfig(head_dim=64, num_attention_heads=2, hidden_size=64,
                               rope_parameters={"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.5,
                                                "mrope_section": [6, 5, 5]})
    rotary = Qwen3_5TextRotaryEmbedding(config)
    positions = torch.stack([torch.arange(7), torch.arange(7) * 3 + 1, 40 - torch.arange(7)])[:, None]  # [3, 1, 7]
    cos, _ = rotary(torch.zeros(1), positions)  # [1, 7, rotary_dim]
    table = mrope_selection(rotary.inv_freq.numpy(), rotary.mrope_section)
    freqs = positions[:, 0].T.float().numpy() @ table  # [7, rotary_dim/2]
    np.testing.assert_allclose(np.cos(freqs), cos[0, :, : table.shape[1]].numpy(), atol=1e-6)


def test_prefill_benchmark_runs_on_the_tiny_decoder(pipeline):
    """benchmarks/bench_hybrid_prefill.py's measurement on the tiny decoder: structure only, speeds mean nothing."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_hybrid_prefill.py"
    spec = importlib.util.spec_from_file_location("bench_hybrid_prefill", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ref, _, _, decoder, part = pipeline("4.6")
    rows = bench.measure(decoder, part.extra, ref.text_config.hidden_size, [3, 70], runs=1)
    assert [r["tokens"] for r in rows] == [3, 70]
    for row in rows:
        assert row["chunked_tok_s"] > 0 and row["recurrence_tok_s"] > 0 and row["decode_ms"] > 0
