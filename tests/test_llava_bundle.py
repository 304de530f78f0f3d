"""LLaVA 1.5 / NeXT / OneVision bundles end to end: export parity, GGUF through llama.cpp, chat, quantization.

The export's own parity check (export/validate.py) runs the runtime's turn layers on the bundle and
compares with transformers: its processor's pixels and input ids, the vision part per tile, first-step
logits, and 32 greedy tokens against transformers' own ``generate``; the figures land in the manifest
and are asserted here. Then what a user does with a bundle: chat turns that reuse the cache and the
vision-feature cache, tiles encoded in batches, several images, quantization with its report.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import edgevlm  # noqa: E402
from edgevlm.families.llava.spec import TINY_NAMES  # noqa: E402
from edgevlm.processing.sample_image import sample_image  # noqa: E402
from llava_cases import case_image  # noqa: E402

MAX_CONTEXT = 1024


@pytest.fixture(scope="module")
def bundles(tiny, tmp_path_factory):
    """(name, format) -> bundle dir, exported once each with the parity check on."""
    made = {}

    def get(name, fmt="onnx"):
        if (name, fmt) not in made:
            out = tmp_path_factory.mktemp(f"{fmt}-{name}") / "bundle"
            edgevlm.export(str(tiny(name)), str(out), format=fmt, max_context=MAX_CONTEXT, progress=None)
            made[(name, fmt)] = out
        return made[(name, fmt)]

    return get


def _assert_parity(validation, name, fmt):
    v = validation
    print(f"{name} {fmt}: pixels max abs {v['preprocessing']['pixels_max_abs']}, ids equal "
          f"{v['preprocessing']['input_ids_equal']}; vision {v['vision']['chunks']} tiles, per-tile cosine min "
          f"{v['vision']['per_chunk_cosine_min']:.8f}; logits max abs {v['logits']['max_abs']:.2e}; greedy "
          f"{v['greedy']['identical_prefix']}/{v['greedy']['tokens']}")
    assert v["preprocessing"]["reference"] == "transformers' processor"
    assert v["preprocessing"]["pixels_max_abs"] == 0.0 and v["preprocessing"]["input_ids_equal"]
    assert v["vision"]["per_chunk_cosine_min"] >= 0.99999
    assert v["logits"]["max_abs"] <= 1e-3 and v["logits"]["top1_equal"]
    assert v["greedy"]["tokens"] == 32 and v["greedy"]["equal"]


@pytest.mark.parametrize("name", TINY_NAMES)
def test_onnx_bundle_matches_transformers(bundles, name):
    from edgevlm.manifest import read_manifest

    manifest = read_manifest(bundles(name))
    _assert_parity(manifest.validation, name, "onnx")
    tables = {n for n, p in manifest.parts.items() if p.format == "npy"}
    assert tables == (set() if name == "llava" else {"image_newline"})
    assert manifest.processor["kind"] == {"llava": "square", "llava-next": "anyres",
                                          "llava-onevision": "anyres_max"}[name]


@pytest.mark.gguf
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n != "llava-onevision" else n
                                  for n in TINY_NAMES])
def test_gguf_bundle_gives_transformers_tokens_through_llama_cpp(bundles, name):
    """fp32 GGUF: the text model runs in llama.cpp (our backend), the tiles through the ONNX vision part, the
    packing in numpy: 32 greedy tokens equal transformers' generate; the mmproj for stock llama.cpp is there."""
    pytest.importorskip("llama_cpp")
    from edgevlm.manifest import read_manifest

    manifest = read_manifest(bundles(name, "gguf"))
    _assert_parity(manifest.validation, name, "gguf")
    assert manifest.parts["mmproj"].info["projector_type"] == "mlp"


class RecordingSession:
    """Stands in for the vision part's onnxruntime session and records the tile batch of every run."""

    def __init__(self, session):
        self.session, self.batches = session, []

    def run(self, names, feeds):
        self.batches.append(int(feeds["pixel_values"].shape[0]))
        return self.session.run(names, feeds)


def test_tiles_run_in_batches_and_features_are_cached(bundles):
    vlm = edgevlm.load(bundles("llava-onevision"))
    vlm.backend.vision = recorder = RecordingSession(vlm.backend.vision)
    image = sample_image()  # 640x480: a 6 x 5 grid + the base tile = 31 tiles
    first = vlm.generate("Describe the image.", images=[image], max_new_tokens=4)
    assert recorder.batches == [16, 15]  # vision.max_batch tiles per run
    again = vlm.generate("What is it?", images=[image], max_new_tokens=4)
    assert again.stats.images_from_cache == 1 and again.stats.vision_ms == 0 and recorder.batches == [16, 15]
    # 25 base-tile rows + the 30-tile map pooled to about 9 tiles' worth of rows (225) + one newline per row
    assert 25 + 225 < first.stats.prompt_tokens < 25 + 30 * 25


def _hf_generate(ref, ids, rows_per_image, n):
    """transformers' language model + generate on our token ids, with each image's rows given (the features
    transformers' own get_image_features made): the independent reference for a multi-turn conversation."""
    with torch.no_grad():
        embeds = ref.hf.model.language_model.embed_tokens(torch.from_numpy(ids)[None])
        where = torch.from_numpy(ids == ref.image_token_id)
        embeds[0, where] = torch.cat(rows_per_image).to(embeds.dtype)
        out = ref.hf.generate(inputs_embeds=embeds, attention_mask=torch.ones_like(where)[None].long(),
                              max_new_tokens=n, do_sample=False)
    return out[0].tolist()[-n:] if out.shape[1] > n else out[0].tolist()


def _hf_rows(ref, ckpt, images, n_images):
    """transformers' packed features of each image, processed as one prompt of ``n_images`` images."""
    from edgevlm.families.llava.reference import reference_image_features

    processor = ref.hf_processor(ckpt)
    batch = [images] if n_images == len(images) else [images + [images[-1]] * (n_images - len(images))]
    inputs = processor(images=batch, text="<image>" * n_images, return_tensors="pt")
    return reference_image_features(ref.hf, inputs).packed[: len(images)]


@pytest.mark.parametrize("name", ["llava-next", "llava-onevision"])
def test_two_turn_chat_reuses_the_cache_and_equals_transformers(bundles, tiny, name):
    """Turn 2 feeds only its own tokens; the tokens equal transformers' on the whole conversation's ids."""
    from edgevlm.families.llava.reference import load_reference

    vlm = edgevlm.load(bundles(name))
    chat = vlm.chat()
    image = case_image(130, 90)
    first = chat.send("What is in the picture?", images=[image], max_new_tokens=6)
    second = chat.send("And what colour is it?", max_new_tokens=8)
    assert second.stats.reused_tokens >= first.stats.prompt_tokens and second.stats.vision_ms == 0
    assert second.stats.prompt_tokens < 30
    ids = np.concatenate([segment[0] for segment in chat.conv.fed])[: -(len(second.token_ids) - 1) or None]
    ref = load_reference(tiny(name))
    want = _hf_generate(ref, ids, _hf_rows(ref, tiny(name), [image], 1), len(second.token_ids))
    assert second.token_ids == want


def test_onevision_second_image_in_a_later_turn(bundles, tiny):
    """OneVision tiles an image only when it is alone in the prompt. A later turn's image is planned with
    the conversation's count (two: a mean-padded square, 729 + 1 rows at full size), as transformers would
    make it for the whole conversation; the first image keeps the tiled features it was fed with, so the
    cache is reused. The tokens equal transformers' language model on exactly that: image 1 as a lone
    image, image 2 as one of two (its own processor's outputs for each)."""
    from edgevlm.families.llava.reference import load_reference

    vlm = edgevlm.load(bundles("llava-onevision"))
    chat = vlm.chat()
    one, two = case_image(130, 90), case_image(40, 300)
    first = chat.send("Describe this.", images=[one], max_new_tokens=5)
    second = chat.send("And this one?", images=[two], max_new_tokens=8)
    side = 72 // 14
    assert first.stats.prompt_tokens > 91 and second.stats.prompt_tokens < side * side + 1 + 30
    assert second.stats.reused_tokens >= first.stats.prompt_tokens and second.stats.images_from_cache == 0
    ids = np.concatenate([segment[0] for segment in chat.conv.fed])[: -(len(second.token_ids) - 1) or None]
    assert int((ids == vlm.manifest.tokenizer.image_token_id).sum()) == 91 + side * side + 1
    ref = load_reference(tiny("llava-onevision"))
    rows = _hf_rows(ref, tiny("llava-onevision"), [one], 1) + _hf_rows(ref, tiny("llava-onevision"), [one, two], 2)[1:]
    assert second.token_ids == _hf_generate(ref, ids, rows, len(second.token_ids))
    # A new chat with both images in one turn is transformers' multi-image prompt: both untiled.
    both = vlm.chat().send("Compare.", images=[one, two], max_new_tokens=4)
    assert both.stats.prompt_tokens < 2 * (side * side + 1) + 30


@pytest.mark.parametrize("name", TINY_NAMES)
def test_two_images_in_one_turn_equal_transformers_generate(bundles, tiny, name):
    """Our turn vs transformers' processor + generate on the same two-image prompt (ids and tokens)."""
    from edgevlm.families.llava.reference import load_reference

    ckpt = tiny(name)
    vlm, ref = edgevlm.load(bundles(name)), load_reference(ckpt)
    images = [case_image(130, 90), case_image(40, 300)]
    ours = vlm.generate("Compare them.", images=images, max_new_tokens=16)
    processor = ref.hf_processor(ckpt)
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                                                        {"type": "text", "text": "Compare them."}]}],
                                         add_generation_prompt=True)
    inputs = processor(images=[images], text=text, return_tensors="pt")
    assert ours.stats.prompt_tokens == inputs["input_ids"].shape[1]
    with torch.no_grad():
        want = ref.hf.generate(**inputs, max_new_tokens=16, do_sample=False)[0, inputs["input_ids"].shape[1]:]
    assert ours.token_ids == want.tolist()


def test_quantized_bundle_keeps_the_newline_table_and_reports(bundles, tmp_path):
    """w8 (block-wise int8 weights): the data part is copied unchanged, the report compares with the source."""
    from edgevlm.manifest import read_manifest

    source = bundles("llava-onevision")
    manifest = edgevlm.quantize(str(source), str(tmp_path / "w8"), recipe="w8", report=True, progress=None)
    read_manifest(tmp_path / "w8", verify=True)
    assert manifest.quantization["image_newline"] == {"method": "none", "dtype": "fp32"}
    assert (tmp_path / "w8" / "image_newline.npy").read_bytes() == (source / "image_newline.npy").read_bytes()
    report = manifest.quantization["report"]
    print({k: report[k] for k in ("top1_agreement", "mean_kl", "greedy_identical_prefix_mean", "vision_cosine_min")})
    # tiny 64-wide random weights: the agreement is informative, not a quality figure (docs/quantization.md)
    assert 0.5 <= report["top1_agreement"] <= 1.0 and report["vision_cosine_min"] > 0.99
    result = edgevlm.load(tmp_path / "w8").generate("Describe.", images=[sample_image()], max_new_tokens=4)
    assert len(result.token_ids) == 4


@pytest.mark.gguf
@pytest.mark.slow
def test_gguf_quantized_with_llama_cpp_keeps_data_parts_and_runs(bundles, tmp_path):
    pytest.importorskip("llama_cpp")
    source = bundles("llava-onevision", "gguf")
    manifest = edgevlm.quantize(str(source), str(tmp_path / "q8"), recipe="q8_0", overrides={"mmproj": "q8_0"},
                                report=True, progress=None)
    q = manifest.quantization
    assert (manifest.parts["text"].dtype, manifest.parts["mmproj"].dtype, q["image_newline"]["method"]) == ("q8_0", "q8_0", "none")
    print({k: q["report"][k] for k in ("top1_agreement", "mean_kl", "greedy_identical_prefix_mean")})
    assert 0.5 <= q["report"]["top1_agreement"] <= 1.0
    result = edgevlm.load(tmp_path / "q8").generate("Describe.", images=[sample_image()], max_new_tokens=4)
    assert len(result.token_ids) == 4


@pytest.mark.slow
@pytest.mark.parametrize("name", TINY_NAMES)
def test_coreml_export_parity_with_converter_modules(tiny, tmp_path, name):
    """Core ML packages (fp16) convert; the parity check runs the converter's modules (Core ML itself needs
    macOS): fp16 tolerance, 32 greedy tokens equal transformers' generate."""
    pytest.importorskip("coremltools")
    manifest = edgevlm.export(str(tiny(name)), str(tmp_path / "coreml"), format="coreml", dtype="fp16",
                              max_context=320, progress=None)
    v = manifest.validation
    assert v["vision"]["per_chunk_cosine_min"] >= 0.9999 and v["greedy"]["equal"]
    assert ({n for n, p in manifest.parts.items() if p.format == "npy"} == set()) == (name == "llava")
