"""MiniCPM-V 4.6 / 4.7 ONNX bundles end to end: ``edgevlm.export`` (whose parity check runs transformers'
own processor, forward and ``generate`` on the same directory and image) and the runtime's chat on them.

The hybrid decoder's caches: KV rows for the full-attention layers, conv + recurrent states for the
linear-attention layers (runtime/backends/ort_states.py), allocated once and bound in place.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import edgevlm  # noqa: E402
from edgevlm.errors import CheckpointError, EdgeVLMError  # noqa: E402
from edgevlm.export import export  # noqa: E402
from edgevlm.families.tiny import make_tiny  # noqa: E402
from tests.test_processing_slicing import synthetic_image  # noqa: E402

CASES = {"4.6": ("minicpmv-4.6", "16x"), "4.7": ("minicpmv-4.7", "16x"), "4.6-4x": ("minicpmv-4.6", "4x")}


@pytest.fixture(scope="module")
def bundle(tiny, tmp_path_factory):
    """case -> (manifest, bundle dir), exported once with the parity check."""
    made = {}

    def get(case):
        if case not in made:
            name, mode = CASES[case]
            ckpt = tiny(name) if mode == "16x" else make_tiny(name, tmp_path_factory.mktemp(case), downsample_mode=mode)
            out = tmp_path_factory.mktemp(f"bundle-{case}") / "b"
            made[case] = (export(ckpt, out, format="onnx", progress=None), out)
        return made[case]

    return get


@pytest.mark.parametrize("case", ["4.6", "4.7", pytest.param("4.6-4x", marks=pytest.mark.slow)])
def test_export_parity_with_transformers(bundle, case):
    """Our processor + layout give transformers' ids and pixels; vision, first-step logits and 32 greedy tokens
    through the runtime's own turn layers equal transformers' forward and generate."""
    manifest, _ = bundle(case)
    report = manifest.validation
    print(case, {k: report[k] for k in ("preprocessing", "vision", "logits", "greedy")})
    assert report["preprocessing"]["input_ids_equal"] and report["preprocessing"]["pixels_max_abs"] == 0.0
    assert report["vision"]["per_chunk_cosine_min"] >= 0.9999
    assert report["logits"]["max_abs"] <= 1e-3
    greedy = report["greedy"]
    assert greedy["equal"] and greedy["identical_prefix"] == greedy["tokens"]
    assert greedy["tokens"] == (32 if CASES[case][1] == "16x" else 20)  # the tiny "4x" model ends (eos) at 20 in both
    assert manifest.text.layer_types.count("linear_attention") == 2
    assert manifest.text.position_streams == (3 if case == "4.7" else 1)
    assert manifest.processor["options"]["downsample_mode"] == CASES[case][1]
    decoder = manifest.parts["decoder"]
    assert set(decoder.binding["states"]) == {"conv", "recurrent"}
    assert "past_recurrent.0" in decoder.inputs and "past_key.1" in decoder.inputs and "past_key.0" not in decoder.inputs


def _one_prompt_tokens(vlm, chat, n_tokens):
    """Every segment the chat fed, recomputed from an empty cache in ONE forward, then greedy steps."""
    streams = vlm.manifest.text.position_streams
    segments = chat.conv.fed[: len(chat.conv.fed) - n_tokens + 1]
    ids = np.concatenate([seg[0] for seg in segments])
    rows = [seg[1] for seg in segments if seg[1] is not None]
    positions = np.concatenate([np.broadcast_to(seg[3], (streams, len(seg[0]))) if streams > 1 else seg[3]
                                for seg in segments], axis=-1)
    backend = vlm.backend
    backend.rewind(0)
    vlm._owner = None
    logits = backend.forward(ids, np.concatenate(rows) if rows else None, None, positions)
    tokens, position = [], int(positions.max()) + 1
    for step in range(n_tokens):
        tokens.append(int(logits.argmax()))
        logits = backend.forward(np.array([tokens[-1]]), positions=np.array([position + step]))
    return tokens


@pytest.mark.parametrize("case", ["4.6", "4.7"])
def test_two_turn_chat_keeps_the_states_and_equals_one_prompt(bundle, case):
    _, out = bundle(case)
    vlm = edgevlm.load(out)
    chat = vlm.chat()
    first = chat.send("What is in the picture?", images=[synthetic_image(700, 500, 1)], max_new_tokens=6)
    second = chat.send("And what colour is it?", max_new_tokens=8)
    assert second.stats.reused_tokens > first.stats.prompt_tokens and second.stats.vision_ms == 0
    assert second.stats.prompt_tokens < 40  # only the new turn was fed: the states carried the rest
    assert _one_prompt_tokens(vlm, chat, len(second.token_ids)) == second.token_ids
    # another chat used the backend in between: the first chat rebuilds its cache from its segments
    other = vlm.chat()
    other.send("Tell me about dogs.", max_new_tokens=4)
    third = chat.send("More.", max_new_tokens=5)
    fresh = vlm.chat()
    fresh.send("What is in the picture?", images=[synthetic_image(700, 500, 1)], max_new_tokens=6)
    fresh.send("And what colour is it?", max_new_tokens=8)
    assert fresh.send("More.", max_new_tokens=5).token_ids == third.token_ids
    print(f"{case}: turns of {first.stats.prompt_tokens}, {second.stats.prompt_tokens} tokens; "
          f"second answer {second.token_ids}")


def test_cached_decoding_snapshot_restore_and_rewind(bundle):
    """Cached steps equal one call over the whole sequence (chunk boundaries crossed); a snapshot restores the
    recurrent states exactly; rewind goes to 0 or the last snapshot, and refuses anything else."""
    _, out = bundle("4.6")
    backend = edgevlm.load(out).backend
    ids = np.random.default_rng(0).integers(0, 500, 150)
    backend.rewind(0)
    whole = backend.forward(ids, all_logits=True)  # [150, V]: 64-token chunks, the last one partial
    backend.rewind(0)
    parts = [backend.forward(ids[:70], all_logits=True)]
    snap = backend.snapshot()
    parts += [backend.forward(ids[t:t + 1], all_logits=True) for t in range(70, 100)]
    parts.append(backend.forward(ids[100:], all_logits=True))
    diff = float(np.abs(np.concatenate(parts) - whole).max())
    backend.restore(snap)
    again = backend.forward(ids[70:71], all_logits=True)
    np.testing.assert_array_equal(again, parts[1])
    backend.forward(ids[71:90])
    backend.rewind(70)  # the last snapshot's point
    np.testing.assert_array_equal(backend.forward(ids[70:71], all_logits=True), parts[1])
    with pytest.raises(EdgeVLMError, match="recurrent .*snapshot"):
        backend.rewind(50)
    backend.rewind(0)
    np.testing.assert_allclose(backend.forward(ids[:70], all_logits=True), parts[0], atol=1e-5)
    print(f"cached vs recomputed max |diff| {diff:.2e} over 150 positions")
    assert diff <= 1e-4


def test_unknown_layer_kind_is_refused_at_export(tiny, tmp_path):
    import json
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny("minicpmv-4.6"), ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    config["text_config"]["layer_types"][2] = "mamba2_attention"
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="'mamba2_attention'"):
        export(ckpt, tmp_path / "out", format="onnx", progress=None)
    assert not (tmp_path / "out").exists()
