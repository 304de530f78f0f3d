"""SmolVLM / Idefics3 / InternVL bundles end to end: ``edgevlm.export`` (ONNX, GGUF, Core ML) with its parity
check against transformers' own processor, forward and ``generate``, then the runtime on the bundles
(tiles batched, features cached, chat reuse, awkward images, too many images).

transformers cannot build SmolVLMProcessor / InternVLProcessor without torchvision (their video half), so
the export check's ``AutoProcessor`` is routed to tests/tiles_reference.py's loader, which builds the same
processor with an inert video slot; everything else in the check is the export's own code.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import edgevlm
from edgevlm.errors import PromptError
from tiles_reference import hf_processor, synthetic_image

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
SLOW = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tiny, tmp_path_factory):
    """(name, format) -> (manifest, bundle directory), each exported once with the export's parity check on."""
    import transformers

    cache = {}
    original = transformers.AutoProcessor.from_pretrained

    def get(name, fmt="onnx"):
        if (name, fmt) not in cache:
            out = tmp_path_factory.mktemp(f"{name}-{fmt}") / "bundle"
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(transformers.AutoProcessor, "from_pretrained",
                              lambda ckpt, **kwargs: hf_processor(Path(ckpt), load=original))
                manifest = edgevlm.export(tiny(name), out, format=fmt, progress=None,
                                          dtype="fp16" if fmt == "coreml" else None)
            cache[(name, fmt)] = (manifest, out)
        return cache[(name, fmt)]

    return get


EXPORTS = [("smolvlm", "onnx"), ("idefics3", "onnx"), ("internvl", "onnx"), ("smolvlm", "gguf"), ("internvl", "gguf"),
           pytest.param("idefics3", "gguf", marks=SLOW)]


@pytest.mark.parametrize("name, fmt", EXPORTS)
def test_export_check_equals_transformers_generate(bundle, name, fmt):
    """The export's own check (recorded in the manifest): our pixels and prompt ids equal the processor's,
    vision features per tile cosine >= 0.99999, first-step logits within 1e-3, 32/32 greedy tokens equal
    to transformers' ``generate`` on the processor's output (GGUF: through our llama.cpp backend)."""
    manifest, _ = bundle(name, fmt)
    report = manifest.validation
    print(f"{name} {fmt}: {report['preprocessing']} vision {report['vision']} logits {report['logits']} "
          f"greedy {report['greedy']}")
    assert report["preprocessing"]["reference"] == "transformers' processor"
    assert report["preprocessing"]["pixels_max_abs"] == 0.0 and report["preprocessing"]["input_ids_equal"]
    assert report["vision"]["per_chunk_cosine_min"] >= 0.99999 and report["vision"]["chunks"] == 13
    assert report["logits"]["max_abs"] <= 1e-3
    assert report["greedy"] == {"tokens": 32, "identical_prefix": 32, "equal": True}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smolvlm", "idefics3", "internvl"])
def test_coreml_export_check(bundle, name):
    """Core ML (fp16 Neural Engine packages): off macOS the check runs the converter's own modules."""
    manifest, _ = bundle(name, "coreml")
    report = manifest.validation
    print(f"{name} coreml: vision {report['vision']} logits {report['logits']} greedy {report['greedy']}")
    assert report["passed"] and report["vision"]["per_chunk_cosine_min"] >= 0.995


@pytest.mark.parametrize("fmt, recipe, overrides", [("onnx", "mixed", None), ("gguf", "q4_0", {"mmproj": "q8_0"})])
def test_quantization_recipes_and_report_apply(bundle, tmp_path, fmt, recipe, overrides):
    """The recipes and the accuracy report work on a tiled bundle as on any other (InternVL: 13 tiles)."""
    _, source = bundle("internvl", fmt)
    manifest = edgevlm.quantize(source, tmp_path / recipe, recipe=recipe, overrides=overrides, report=True,
                                progress=None)
    table = manifest.quantization["report"]
    methods = {k: v["method"] for k, v in manifest.quantization.items() if isinstance(v, dict) and "method" in v}
    print(f"{fmt} {recipe}: {methods}; report {table}")
    assert table["positions"] > 200 and table["vision_cosine_min"] > 0.99 and 0 < table["top1_agreement"] <= 1
    result = edgevlm.load(tmp_path / recipe).generate("Describe it.", images=[synthetic_image(640, 480)],
                                                      max_new_tokens=4)
    assert len(result.token_ids) == 4 and result.stats.images == 1


# -- the runtime on the ONNX bundles ------------------------------------------------------------------
@pytest.fixture(scope="module")
def vlm(bundle):
    loaded = {}

    def get(name):
        if name not in loaded:
            loaded[name] = edgevlm.load(bundle(name)[1])
        return loaded[name]

    return get


class CountingSession:
    """An onnxruntime session that counts its runs (how many batches the vision part was called with)."""

    def __init__(self, session):
        self.session, self.batches = session, []

    def run(self, outputs, feeds):
        self.batches.append(len(feeds["pixel_values"]))
        return self.session.run(outputs, feeds)


@pytest.mark.parametrize("name", ["smolvlm", "internvl"])
def test_tiles_run_as_one_batch_and_features_are_cached(vlm, name):
    model = vlm(name)
    counting = CountingSession(model.backend.vision)
    model.backend.vision = counting
    try:
        image = synthetic_image(640, 480, seed=11)  # 12 tiles + the global image / thumbnail
        first = model.generate("Describe it.", images=[image], max_new_tokens=2)
        again = model.generate("What colour?", images=[image], max_new_tokens=2)
    finally:
        model.backend.vision = counting.session
    assert counting.batches == [13]  # all tiles in one call, and only for the first question
    assert first.stats.images_from_cache == 0 and again.stats.images_from_cache == 1 and again.stats.vision_ms == 0


@pytest.mark.parametrize("name", ["smolvlm", "idefics3", "internvl"])
def test_two_turn_chat_reuses_the_cache_and_equals_one_prompt(vlm, name):
    model = vlm(name)
    chat = model.chat()
    first = chat.send("What is in the picture?", images=[synthetic_image(300, 200)], max_new_tokens=6)
    second = chat.send("And what colour is it?", max_new_tokens=8)
    assert second.stats.reused_tokens > first.stats.prompt_tokens and second.stats.vision_ms == 0
    # the whole conversation recomputed from scratch gives the same answer
    ids = np.concatenate([seg[0] for seg in chat.conv.fed[:-len(second.token_ids) + 1 or None]])
    rows = np.concatenate([seg[1] for seg in chat.conv.fed if seg[1] is not None])
    backend = model.backend
    backend.rewind(0)
    model._owner = None
    logits = backend.forward(ids, rows, None)
    tokens = []
    for _ in range(len(second.token_ids)):
        tokens.append(int(logits.argmax()))
        logits = backend.forward(np.array([tokens[-1]]))
    assert tokens == second.token_ids


def _png16(width, height) -> bytes:
    values = (np.arange(width * height, dtype=np.uint32).reshape(height, width) * 37 % 65536).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["smolvlm", "internvl"])
@pytest.mark.parametrize("image, chunks", [
    (synthetic_image(2, 2), {"smolvlm": 17, "internvl": 1}),  # smaller than one tile (SmolVLM upscales it)
    (synthetic_image(1, 10000), {"smolvlm": 5, "internvl": 13}),  # a 1 x 10000 strip
    (_png16(300, 200), {"smolvlm": 13, "internvl": 7})], ids=["2x2", "1x10000", "16-bit-png"])
def test_awkward_images_work(vlm, name, image, chunks):
    from edgevlm.processing.images import load_image
    from edgevlm.runtime.images import plan_image

    model = vlm(name)
    plan = plan_image(load_image(image), model.processor, model.manifest.vision.tokens_per_chunk)
    result = model.generate("Describe it.", images=[image], max_new_tokens=4)
    assert plan.n_chunks == chunks[name]
    assert len(result.token_ids) == 4 and result.stats.images == 1
    assert result.stats.prompt_tokens > plan.n_tokens  # the image's feature rows are in the prompt


@pytest.mark.parametrize("name", ["smolvlm", "internvl"])
def test_more_images_than_places_is_a_clear_error(vlm, name):
    model = vlm(name)
    marker = model.layout.marker
    with pytest.raises(PromptError, match=r"1 image marker\(s\).*but 2 image\(s\)"):
        model.generate(f"{marker}Compare.", images=[synthetic_image(50, 50), synthetic_image(60, 40)])
