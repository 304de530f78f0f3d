"""LLaVA mmproj GGUF: equal to what llama.cpp's own legacy pipeline writes, and what mtmd makes of it.

llama.cpp's side is its vendored sources (llama-cpp-python 0.3.36 sdist; set EDGEVLM_LLAMA_CPP_SRC to
its ``vendor/llama.cpp``): ``llava_surgery_v2.py -C`` splits the checkpoint, then
``convert_image_encoder_to_gguf.py --clip-model-is-vision`` (run through tests/llava_lcp_convert.py,
which only restores two transformers 4 attributes the script uses) writes the mmproj from a vision
config that carries ``vision_feature_layer`` (and, for NeXT, the pinpoints), as its README says.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")

from edgevlm.families.llava import reference  # noqa: E402
from edgevlm.families.llava.mmproj import write_mmproj  # noqa: E402
from edgevlm.families.llava.spec import llava_spec  # noqa: E402
from llava_cases import case_image  # noqa: E402

LCP = Path(os.environ.get("EDGEVLM_LLAMA_CPP_SRC", "/work/wt/_lcp/llama-cpp-python-0.3.36/vendor/llama.cpp"))
LEGACY = LCP / "tools" / "mtmd" / "legacy-models"
needs_lcp = pytest.mark.skipif(not (LEGACY / "convert_image_encoder_to_gguf.py").is_file(),
                               reason="llama.cpp sources not found; set EDGEVLM_LLAMA_CPP_SRC")


def _run(args: list[str], cwd: Path) -> None:
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def legacy_mmproj(ckpt: Path, work: Path) -> Path:
    """The mmproj llama.cpp's legacy LLaVA pipeline writes for a llava-hf checkpoint (f16, its default)."""
    model_dir = work / "model"
    shutil.copytree(ckpt, model_dir)
    _run([str(LEGACY / "llava_surgery_v2.py"), "-C", "-m", str(model_dir)], work)
    vit = work / "vit"
    vit.mkdir()
    shutil.copy(model_dir / "llava.clip", vit / "pytorch_model.bin")
    config = json.loads((ckpt / "config.json").read_text())
    vision = dict(config["vision_config"], vision_feature_layer=config["vision_feature_layer"])
    if "image_grid_pinpoints" in config:
        vision.update(image_grid_pinpoints=config["image_grid_pinpoints"], mm_patch_merge_type="spatial_unpad")
    (vit / "config.json").write_text(json.dumps(vision))
    _run([str(Path(__file__).parent / "llava_lcp_convert.py"), str(LEGACY / "convert_image_encoder_to_gguf.py"),
          "-m", str(vit), "--llava-projector", str(model_dir / "llava.projector"), "--output-dir", str(vit),
          "--clip-model-is-vision"], work)
    return vit / "mmproj-model-f16.gguf"


def _read(path: Path) -> tuple[dict, dict]:
    reader = gguf.GGUFReader(str(path))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    tensors = {t.name: (t.tensor_type.name, tuple(int(d) for d in t.shape), np.array(t.data)) for t in reader.tensors}
    return fields, tensors


@pytest.fixture(scope="module")
def ours(tiny, tmp_path_factory):
    made = {}

    def get(name, dtype="f16"):
        if (name, dtype) not in made:
            ckpt = tiny(name)
            model = reference.load_model(ckpt)
            images = llava_spec(ckpt).images
            path = tmp_path_factory.mktemp("mmproj") / f"mmproj-{dtype}.gguf"
            facts = write_mmproj(model, path, images.mean, images.std, dtype, name="vit")
            made[(name, dtype)] = (ckpt, model, path, facts)
        return made[(name, dtype)]

    return get


@needs_lcp
@pytest.mark.parametrize("name", ["llava", "llava-next"])
def test_mmproj_equals_llama_cpp_legacy_converter(ours, tmp_path, name):
    ckpt, _, path, facts = ours(name)
    want_fields, want_tensors = _read(legacy_mmproj(ckpt, tmp_path))
    got_fields, got_tensors = _read(path)
    assert set(got_tensors) == set(want_tensors)
    for tensor, (kind, shape, data) in want_tensors.items():
        assert got_tensors[tensor][:2] == (kind, shape), tensor
        assert np.array_equal(got_tensors[tensor][2], data), tensor
    assert got_fields.keys() == want_fields.keys()
    for key, value in want_fields.items():
        if isinstance(value, list) and value and isinstance(value[0], float):
            assert np.allclose(got_fields[key], value, rtol=0, atol=0), key
        else:
            assert got_fields[key] == value, key
    assert facts["block_count"] == 2 and facts["image_newline"] == (name == "llava-next")


def _text_gguf(ckpt: Path, model, path: Path) -> Path:
    from edgevlm.export.gguf_text import export_text_gguf
    from edgevlm.families.base import read_config
    from edgevlm.families.hf_vlm import HFVisionLanguageModel, text_arch

    export_text_gguf(HFVisionLanguageModel(model, "llava", "causal", text_arch(read_config(ckpt))), ckpt, path, "f32")
    return path


def _cosine(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _mtmd_llava_graph(model, pixels):
    """What tools/mtmd/models/llava.cpp computes: CLS after the patches, positions in that order,
    ``block_count`` layers (the feature layer), rows 1..N through the projector."""
    tower, layers = model.model.vision_tower, model.config.vision_config.num_hidden_layers - 1
    with torch.no_grad():
        patches = tower.embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)  # [1, N, Dv]
        tokens = torch.cat([patches, tower.embeddings.class_embedding[None, None]], dim=1)  # [1, N + 1, Dv]
        hidden = tower.pre_layrnorm(tokens + tower.embeddings.position_embedding.weight[None])
        for layer in tower.encoder.layers[:layers]:
            hidden = layer(hidden, None)
        return model.model.multi_modal_projector(hidden[:, 1:])[0].numpy()


@pytest.mark.gguf
def test_mtmd_runs_our_mmproj_with_its_known_cls_divergence(ours, tmp_path):
    """mtmd on our f32 mmproj equals its graph's arithmetic (cosine >= 0.9999), and that arithmetic is
    not transformers' (CLS placement): pinned here so a llama.cpp change shows up."""
    pytest.importorskip("llama_cpp")
    from edgevlm.processing.square import preprocess_square
    from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder

    ckpt, model, path, _ = ours("llava", "f32")
    encoder = MtmdImageEncoder(_text_gguf(ckpt, model, tmp_path / "text.gguf"), path)
    try:
        image = case_image(56, 56)  # the tile size: mtmd's resize is the identity, pixels equal ours
        (mtmd,) = encoder.encode(np.asarray(image))
    finally:
        encoder.close()
    pixels = torch.from_numpy(preprocess_square(image, llava_spec(ckpt).images))[None]
    assert _cosine(mtmd, _mtmd_llava_graph(model, pixels)) >= 0.9999
    with torch.no_grad():
        transformers_tile = model.model.get_image_features(pixel_values=pixels).pooler_output[0].numpy()
    assert _cosine(mtmd, transformers_tile) < 0.99


@pytest.mark.gguf
def test_mtmd_onevision_tile_equals_transformers_and_its_layout_does_not(ours, tmp_path):
    """SigLIP has no CLS token, so mtmd's llava graph on our mmproj gives transformers' tile features
    (cosine >= 0.999 at the tile size, where mtmd's resize is the identity). Its anyres layout is its
    own: every tile in full (no unpadding, no newline rows): pinned so a llama.cpp change shows up."""
    pytest.importorskip("llama_cpp")
    from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder

    ckpt, model, _, _ = ours("llava-onevision")
    mmproj = tmp_path / "mmproj-f32.gguf"
    spec = llava_spec(ckpt)
    write_mmproj(model, mmproj, spec.images.mean, spec.images.std, "f32")
    encoder = MtmdImageEncoder(_text_gguf(ckpt, model, tmp_path / "text.gguf"), mmproj)
    processor = reference.load_processor(ckpt)
    try:
        for size, mtmd_tokens in (((72, 72), 25), ((130, 90), 5 * 25)):
            image = case_image(*size)
            chunks = encoder.encode(np.asarray(image))
            inputs = processor(images=image, text="<image>", return_tensors="pt")
            ref = reference.reference_image_features(model, inputs)
            assert sum(len(c) for c in chunks) == mtmd_tokens != ref.packed[0].shape[0]
            if size == (72, 72):
                assert _cosine(chunks[0], ref.tiles[0].numpy()) >= 0.999
    finally:
        encoder.close()
