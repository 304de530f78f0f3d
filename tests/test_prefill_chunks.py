"""Chunked prefill in the onnxruntime backend (runtime/backends/prefill_chunks.py): the spans, and the same
logits as one whole run on the families whose attention makes chunking delicate: bidirectional image blocks
and sliding windows (Gemma 3), three position streams (Qwen2-VL), recurrent states (MiniCPM-V 4.6)."""

from __future__ import annotations

import numpy as np
import pytest

from edgevlm.runtime.backends.prefill_chunks import PREFILL_CHUNK, prefill_spans


@pytest.mark.parametrize("blocks,chunk,expected", [
    (None, 4, [(0, 4), (4, 8), (8, 10)]),
    (None, 16, [(0, 10)]),
    ([-1, -1, -1, 0, 0, 0, -1, -1, -1, -1], 4, [(0, 3), (3, 7), (7, 10)]),  # a cut inside a block moves back
    ([0, 0, 0, 0, 0, 0, -1, -1, -1, -1], 4, [(0, 6), (6, 10)]),  # a block longer than a chunk is taken whole
    ([-1, -1, -1, -1, 1, 1, 2, 2, 2, -1], 4, [(0, 4), (4, 6), (6, 10)]),  # two blocks: each kept whole
])
def test_spans_cover_the_prompt_without_cutting_a_block(blocks, chunk, expected):
    spans = prefill_spans(None if blocks is None else np.array(blocks), 10, chunk)
    assert spans == expected
    assert PREFILL_CHUNK >= 256  # a real chunk keeps the matmuls large


CASES = {"minicpmv-2.6": 10, "gemma3": 7, "qwen2-vl": 9, "minicpmv-4.6": 11}  # name -> chunk (odd cuts)


@pytest.fixture(scope="module")
def bundles(tiny, tmp_path_factory):
    pytest.importorskip("torch")
    import edgevlm

    opened = {}

    def get(name):
        if name not in opened:
            out = tmp_path_factory.mktemp(name) / "bundle"
            edgevlm.export(str(tiny(name)), str(out), format="onnx", validate=False, progress=None)
            opened[name] = edgevlm.load(str(out), device="cpu", threads=1)
        return opened[name]

    yield get
    for vlm in opened.values():
        vlm.close()


@pytest.mark.parametrize("name", list(CASES))
def test_chunked_prefill_gives_the_logits_of_one_run(bundles, name):
    from edgevlm.export.validate import test_image
    from edgevlm.runtime.turn import Conversation, prepare_turn

    vlm = bundles(name)
    question = "Describe the picture in detail, please. " * 3
    turn = prepare_turn(vlm, Conversation(), question, [test_image(160, 120, seed=5)])
    be = vlm.backend
    vlm._owner = None  # this test drives the backend's cache itself

    runs = []  # tokens of every decoder run
    run_once = be._forward

    def counted(ids, *args):
        runs.append(len(ids))
        return run_once(ids, *args)

    def last_logits(chunk: int) -> np.ndarray:
        be.rewind(0)
        be.prefill_chunk = chunk
        runs.clear()
        return be.forward(turn.ids, turn.rows, turn.blocks, turn.positions)

    be._forward = counted
    try:
        whole = last_logits(10 ** 6)
        assert runs == [len(turn.ids)]
        chunked = last_logits(CASES[name])
    finally:
        be._forward, be.prefill_chunk = run_once, PREFILL_CHUNK
    print(f"{name}: {len(turn.ids)} tokens in runs of {runs}, max |chunked - whole| = "
          f"{np.abs(chunked - whole).max():.2e}")
    assert runs == [e - s for s, e in prefill_spans(turn.blocks, len(turn.ids), CASES[name])] and len(runs) >= 3
    assert np.abs(chunked - whole).max() < 1e-4 and chunked.argmax() == whole.argmax()
