"""SmolVLM / Idefics3 / InternVL in llama.cpp: our mmproj files against llama.cpp's own converter, and mtmd
(llama.cpp's multimodal library) running them: features per tile vs our ONNX vision part, prompt layout.

The converter (convert_hf_to_gguf.py --mmproj, tests/llama_cpp_sources.py) reads SmolVLM / Idefics3
checkpoints as published. For InternVL it registers only OpenGVLab's original layout and, for -hf names,
the Intern-S1 form (vision_config.architectures = InternVisionModel, transformers' module names): the
test converts a copy of the tiny -hf checkpoint in that form (config + tensor names only).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")
ort = pytest.importorskip("onnxruntime")

from edgevlm.export.gguf.text import export_text_gguf  # noqa: E402
from edgevlm.export.onnx.vision import export_vision  # noqa: E402
from edgevlm.families import family_for, load_reference  # noqa: E402
from edgevlm.processing.prompt import image_placeholder  # noqa: E402
from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder  # noqa: E402
from edgevlm.runtime.images import prepare_image  # noqa: E402
from llama_cpp_sources import convert  # noqa: E402

pytestmark = pytest.mark.gguf
NAMES = ["smolvlm", pytest.param("idefics3", marks=pytest.mark.slow), "internvl"]
SIZES = [(640, 480), (300, 200), (200, 600), (20, 20)]  # sizes where mtmd's own tiler makes our grid


@pytest.fixture(scope="module")
def parts(tiny, tmp_path_factory):
    """name -> (reference, bundle spec, directory with text.gguf, mmproj.gguf (fp16) and vision.onnx)."""
    cache = {}

    def get(name):
        if name not in cache:
            ckpt = tiny(name)
            ref, family = load_reference(ckpt), family_for(ckpt)
            out = tmp_path_factory.mktemp(f"mtmd-{name}")
            export_text_gguf(ref, ckpt, out / "text.gguf", "fp32")
            family.write_mmproj(ref, out / "mmproj.gguf", "fp16")
            export_vision(ref, out / "vision.onnx")
            cache[name] = (ref, family.bundle_spec(ckpt, json.loads((ckpt / "config.json").read_text())), out)
        return cache[name]

    return get


def smooth_rgb(width, height):
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    return (255 * (0.5 + 0.5 * np.sin(6 * x + 3 * y + np.array([0, 1, 2])))).astype(np.uint8)


def per_tile_cosines(mtmd_chunks, ours):
    got = np.concatenate(mtmd_chunks).reshape(ours.shape)  # mtmd: one [tokens, D] array per tile, same order
    a, b = got.reshape(len(got), -1).astype(np.float64), ours.reshape(len(ours), -1).astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("name", NAMES)
def test_mtmd_features_match_our_onnx_vision_per_tile(parts, name):
    ref, spec, out = parts(name)
    session = ort.InferenceSession(str(out / "vision.onnx"), providers=["CPUExecutionProvider"])
    encoder = MtmdImageEncoder(out / "text.gguf", out / "mmproj.gguf")
    try:
        for size in SIZES:
            rgb = smooth_rgb(*size)
            tiles = prepare_image(Image.fromarray(rgb), spec.processor).inputs["pixel_values"]
            (ours,) = session.run(None, {"pixel_values": tiles})  # [n, tokens, D]
            theirs = encoder.encode(rgb)
            assert len(theirs) == len(ours), f"{size}: mtmd tiles {len(theirs)}, ours {len(ours)}"
            worst = float(per_tile_cosines(theirs, ours).min())
            print(f"{name} {size}: {len(ours)} tiles, min cosine per tile {worst:.6f} (mmproj fp16)")
            assert worst >= 0.999
    finally:
        encoder.close()


@pytest.mark.parametrize("name", ["smolvlm", "internvl"])
def test_mtmd_prompt_layout_is_ours(parts, tiny, name):
    """mtmd's text around a tiled image (mtmd.cpp) is our placeholder text; mtmd looks "\\n\\n" up as one token
    (SmolVLM), which the tiny tokenizer has as the published vocabularies do (without it: -1, and mtmd aborts)."""
    from tokenizers import Tokenizer

    from edgevlm.runtime.images import plan_image

    ref, spec, out = parts(name)
    tokenizer = Tokenizer.from_file(str(tiny(name) / "tokenizer.json"))
    rgb = smooth_rgb(300, 200)
    encoder = MtmdImageEncoder(out / "text.gguf", out / "mmproj.gguf")
    try:
        chunks = encoder.tokenize(rgb, "hi")
    finally:
        encoder.close()
    layout = spec.layout

    def spelled(kind, payload):  # payload: an image chunk's token count, or a text chunk's ids
        if kind == "image":
            return layout.feature_token * payload
        return "".join(tokenizer.decode([i], skip_special_tokens=False) for i in payload)

    assert all(i >= 0 for kind, payload in chunks if kind == "text" for i in payload), chunks
    text = "".join(spelled(kind, payload) for kind, payload in chunks)
    plan = plan_image(Image.fromarray(rgb), spec.processor, layout.tokens_per_chunk)
    ours = image_placeholder(layout, plan, 0)
    ours = ours[: -len("\n")] if ours.endswith("</img>\n") else ours  # InternVL's marker newline is the template's
    print(f"{name} mtmd layout: {text[:120]!r}...")
    assert text == ours + "hi"


def test_gguf_export_refuses_a_vocabulary_mtmd_would_abort_on(tiny, tmp_path):
    """A SmolVLM tokenizer without the "\\n\\n" token: mtmd would abort the process on the first image
    (GGML_ASSERT in mtmd-helper), so the GGUF export refuses it, names the fix and leaves no bundle."""
    import edgevlm
    from edgevlm.errors import CheckpointError

    ckpt = tmp_path / "smolvlm"
    shutil.copytree(tiny("smolvlm"), ckpt)
    tok = json.loads((ckpt / "tokenizer.json").read_text())
    del tok["model"]["vocab"]["ĊĊ"]
    tok["model"]["merges"] = [m for m in tok["model"]["merges"] if m not in (["Ċ", "Ċ"], "Ċ Ċ")]
    (ckpt / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(CheckpointError, match=r"no single '\\n\\n' token.*--format onnx"):
        edgevlm.export(str(ckpt), str(tmp_path / "out"), format="gguf", progress=None)
    assert not (tmp_path / "out").exists()


def _intern_s1_copy(ckpt: Path, out: Path) -> Path:
    """The tiny -hf checkpoint in the form llama.cpp's InternVL converter reads (Intern-S1's): transformers'
    module names, vision_config.architectures, and the tile range under the original's config keys."""
    from safetensors.torch import load_file, save_file

    from edgevlm.families.common.hf_vlm import hub_to_module

    out.mkdir()
    for f in ckpt.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            shutil.copy(f, out / f.name)
    tensors = load_file(str(ckpt / "model.safetensors"))
    save_file({hub_to_module(k): v for k, v in tensors.items()}, str(out / "model.safetensors"), {"format": "pt"})
    config = json.loads((ckpt / "config.json").read_text())
    config["vision_config"]["architectures"] = ["InternVisionModel"]
    processor = json.loads((ckpt / "preprocessor_config.json").read_text())
    config.update(min_dynamic_patch=processor["min_patches"], max_dynamic_patch=processor["max_patches"])
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def converted(tiny, tmp_path_factory):
    """name -> llama.cpp's converter's mmproj of the tiny checkpoint (its default, f16)."""
    cache = {}

    def get(name):
        if name not in cache:
            work = tmp_path_factory.mktemp(f"convert-{name}")
            source = tiny(name) if name != "internvl" else _intern_s1_copy(tiny(name), work / "intern-s1")
            convert(["--mmproj", "--outtype", "f16", "--outfile", str(work / "theirs.gguf"), str(source)])
            cache[name] = work / "theirs.gguf"
        return cache[name]

    return get


def _fields(reader):
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith(("GGUF.", "general."))}


@pytest.mark.parametrize("name", ["smolvlm", pytest.param("idefics3", marks=pytest.mark.slow), "internvl"])
def test_mmproj_equals_llama_cpp_converter(parts, converted, name):
    """Same keys and values, same tensors (names, shapes, f16/f32 types, values), at the converter's default
    f16; InternVL's position table is the converter's rolled by one row (families/internvl/mmproj.py)."""
    _, _, out = parts(name)
    ours, theirs = gguf.GGUFReader(str(out / "mmproj.gguf")), gguf.GGUFReader(str(converted(name)))
    assert _fields(ours) == pytest.approx(_fields(theirs))
    assert ours.fields["general.architecture"].contents() == "clip" and ours.fields["general.type"].contents() == "mmproj"
    mine, their = {t.name: t for t in ours.tensors}, {t.name: t for t in theirs.tensors}
    assert sorted(mine) == sorted(their)
    for tensor_name, t in their.items():
        a, b = np.asarray(mine[tensor_name].data), np.asarray(t.data)
        if name == "internvl" and tensor_name == "v.position_embd.weight":
            b = np.roll(b, -1, axis=1)
        assert (mine[tensor_name].tensor_type, a.shape) == (t.tensor_type, b.shape), tensor_name
        np.testing.assert_array_equal(a, b, err_msg=tensor_name)
    print(f"{name}: {len(mine)} tensors and {len(_fields(ours))} keys equal to llama.cpp's converter")


def test_converter_internvl_table_diverges_in_mtmd(parts, converted):
    """Pins llama.cpp's CLS-last InternVL graph: with the converter's own (unrolled) table mtmd's features
    drift from the reference; with ours they are the reference's. A llama.cpp fix would flip both."""
    ref, spec, out = parts("internvl")
    rgb = smooth_rgb(300, 200)
    with torch.no_grad():
        want = ref.image_features(torch.from_numpy(
            prepare_image(Image.fromarray(rgb), spec.processor).inputs["pixel_values"])).numpy()
    worst = {}
    for label, path in (("converter", converted("internvl")), ("ours", out / "mmproj.gguf")):
        encoder = MtmdImageEncoder(out / "text.gguf", path)
        try:
            worst[label] = float(per_tile_cosines(encoder.encode(rgb), want).min())
        finally:
            encoder.close()
    print(f"mtmd vs transformers, min cosine per tile: {worst}")
    assert worst["converter"] < 0.99 and worst["ours"] >= 0.999
