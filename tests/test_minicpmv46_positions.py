"""MiniCPM-V 4.7's canvas M-RoPE (processing/canvas_rope.py) against transformers' own get_rope_index."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgevlm.families import family_for, load_reference  # noqa: E402
from edgevlm.families.minicpmv4_6.reference import load_processor, processor_outputs  # noqa: E402
from edgevlm.processing.canvas_rope import canvas_positions, layout_markers, stretched  # noqa: E402
from edgevlm.processing.tokenizer import Tokenizer  # noqa: E402
from edgevlm.runtime.images import plan_image  # noqa: E402
from tests.test_processing_slicing import synthetic_image  # noqa: E402


def test_stretched_equals_torch_linspace_rounding():
    for canvas in range(1, 120):
        for cells in range(1, canvas + 1):
            expected = torch.linspace(0, canvas - 1, cells).round().long().numpy()
            np.testing.assert_array_equal(stretched(canvas, cells), expected, err_msg=f"{canvas} {cells}")


@pytest.mark.parametrize("sizes", [[(700, 500)], [(1200, 400), (900, 1600)],
                                   pytest.param([(300, 200)], marks=pytest.mark.slow),
                                   pytest.param([(448, 448), (1344, 448)], marks=pytest.mark.slow)])
def test_canvas_positions_equal_transformers(tiny, sizes):
    path = tiny("minicpmv-4.7")
    ref = load_reference(path)
    spec = family_for(path).bundle_spec(path, ref.hf.config.to_dict())
    images = [synthetic_image(w, h, i) for i, (w, h) in enumerate(sizes)]
    inputs = processor_outputs(load_processor(path), "Compare these.", images)
    expected, deltas = ref.hf.model.get_rope_index(inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
                                                   target_sizes=inputs["target_sizes"])
    expected = expected[:, 0].numpy()  # [3, T]
    ids = inputs["input_ids"][0].numpy()
    plans = [plan_image(image, spec.processor, 0) for image in images]
    markers = layout_markers(Tokenizer.from_file(path / "tokenizer.json"), spec.layout)
    canvases = [plan.data["canvas"] for plan in plans]
    ours = canvas_positions(ids, ref.image_token_id, canvases, markers)
    assert ours.next_position == len(ids) + int(deltas[0, 0])
    np.testing.assert_array_equal(ours.position_ids, expected)
    # fed in two pieces (split in the text after the images), each continuing where the other stopped
    cut = len(ids) - 3
    first = canvas_positions(ids[:cut], ref.image_token_id, canvases, markers)
    second = canvas_positions(ids[cut:], ref.image_token_id, [], markers, first.next_position)
    np.testing.assert_array_equal(np.concatenate([first.position_ids, second.position_ids], 1), expected)
    print(f"{sizes}: {len(ids)} tokens, next position {ours.next_position}, equal to transformers")
