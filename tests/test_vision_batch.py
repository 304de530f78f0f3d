"""The memory rule for vision batches (runtime/backends/vision_batch.py) and that a capped batch gives the
features of one run with every chunk (ONNX, tiny SmolVLM: 13 tiles of 64 patches)."""

from __future__ import annotations

import numpy as np
import pytest

from edgevlm.runtime.backends.vision_batch import BATCH_PATCHES, chunks_per_run


@pytest.mark.parametrize("max_batch,patches,budget,expected", [
    (16, 1024, BATCH_PATCHES, 1),  # SigLIP @448/14 or @512/16 tiles: one per run (the default)
    (16, 729, BATCH_PATCHES, 1),  # SigLIP @384/14
    (16, 64, BATCH_PATCHES, 16),  # small chunks (tiny models, small slices) still batch
    (16, 729, 2048, 2),  # a larger budget: two per run
    (16, 4096, 2048, 1),  # a chunk over the budget still runs, alone
    (3, 64, 2048, 3),  # the manifest's max_batch stays the upper bound
    (16, 0, 2048, 16),  # no patch count known: the manifest decides
])
def test_chunks_per_run(max_batch, patches, budget, expected):
    assert chunks_per_run(max_batch, patches, budget) == expected


def test_capped_batches_give_the_same_features(tiny, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    import edgevlm
    from edgevlm.export.validate import test_image
    from edgevlm.runtime.backends.ort_vision import encode_chunks
    from edgevlm.runtime.images import prepare_image

    edgevlm.export(str(tiny("smolvlm")), str(tmp_path / "b"), format="onnx", validate=False, progress=None)
    with edgevlm.load(str(tmp_path / "b"), device="cpu", threads=1) as vlm:
        be = vlm.backend
        inputs = prepare_image(test_image(256, 192), vlm.processor).inputs  # 4 x 3 tiles + the global image
        calls = []

        def run(feeds):
            calls.append(len(feeds["pixel_values"]))
            return be.vision.run(None, feeds)[0]

        whole = encode_chunks(run, inputs, be.vision_info, be.vision_derived, batch_patches=10 ** 9)
        capped = encode_chunks(run, inputs, be.vision_info, be.vision_derived, batch_patches=3 * 64)
    assert calls == [13, 3, 3, 3, 3, 1]
    print(f"max |whole - capped| = {np.abs(whole - capped).max():.2e}")
    assert np.allclose(whole, capped, atol=1e-5)
