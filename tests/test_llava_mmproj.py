"""LLaVA mmproj GGUF: equal to what llama.cpp's own legacy pipeline writes, and what mtmd makes of it.

llama.cpp's side is its vendored sources (llama-cpp-python 0.3.36 sdist; set EDGEVLM_LLAMA_CPP_SRC to
its ``vendor/llama.cpp``): ``llava_surgery_v2.py -C`` splits the checkpoint, then
``convert_image_encoder_to_gguf.py --clip-model-is-vision`` (run through tests/llava_lcp_convert.py,
which only restores two transformers 4 attributes the script uses) writes the mmproj from a vision
config that carries ``vision_feature_layer`` (and, for NeXT, the pinpoints), as its README says.

Then mtmd itself (llama-cpp-python's libmtmd) encodes images with our mmproj, per variant, against
transformers' per-tile features (families/llava/mmproj.py explains the CLIP graph's CLS order).
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
def refs(tiny):
    made = {}

    def get(name):
        if name not in made:
            made[name] = reference.load_reference(tiny(name))
        return made[name]

    return get


@needs_lcp
@pytest.mark.slow  # runs llama.cpp's two legacy scripts in subprocesses (~20 s each)
@pytest.mark.parametrize("name", ["llava", "llava-next"])
def test_mmproj_equals_llama_cpp_legacy_converter(refs, tiny, tmp_path, name):
    """Tensor by tensor (names, types, shapes, bytes) and key by key; the default file differs from it only in
    the position table, rotated by one row for mtmd's CLS-last token order."""
    ref = refs(name)
    legacy_layout, rotated = tmp_path / "legacy-layout.gguf", tmp_path / "rotated.gguf"
    part = write_mmproj(ref, legacy_layout, "fp16", cls_last_positions=False)
    write_mmproj(ref, rotated, "fp16")
    want_fields, want_tensors = _read(legacy_mmproj(tiny(name), tmp_path))
    got_fields, got_tensors = _read(legacy_layout)
    assert set(got_tensors) == set(want_tensors)
    for tensor, (kind, shape, data) in want_tensors.items():
        assert got_tensors[tensor][:2] == (kind, shape), tensor
        assert np.array_equal(got_tensors[tensor][2], data), tensor
    assert got_fields.keys() == want_fields.keys()
    for key, value in want_fields.items():
        if key == "general.name":
            continue  # the script names the file after its directory
        if isinstance(value, list) and value and isinstance(value[0], float):
            assert np.allclose(got_fields[key], value, rtol=0, atol=0), key
        else:
            assert got_fields[key] == value, key
    assert part.info["block_count"] == 2 and part.info["image_newline"] == (name == "llava-next")
    _, default_tensors = _read(rotated)
    changed = [t for t in want_tensors if not np.array_equal(default_tensors[t][2], want_tensors[t][2])]
    assert changed == ["v.position_embd.weight"]
    table = want_tensors["v.position_embd.weight"][2]
    assert np.array_equal(default_tensors["v.position_embd.weight"][2], np.concatenate([table[1:], table[:1]]))


def _cosine(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# (variant, image size, mtmd's image tokens, transformers' image tokens): mtmd's llava graph keeps every tile
# whole (no unpadding, no newline rows, no pooling) and puts the overview last (mtmd.cpp:517 ov_img_first).
MTMD_CASES = [("llava", (56, 56), 16, 16), ("llava-next", (130, 90), 80, 70), ("llava-onevision", (130, 90), 125, 91)]


@pytest.mark.gguf
@pytest.mark.parametrize("name,size,mtmd_tokens,hf_tokens", MTMD_CASES, ids=[c[0] for c in MTMD_CASES])
def test_mtmd_features_per_tile_against_transformers(refs, tiny, tmp_path, name, size, mtmd_tokens, hf_tokens):
    """Per variant, mtmd (libmtmd) on our mmproj vs transformers' per-tile features, pixels equal on both sides.

    SigLIP (OneVision): every tile's features equal transformers' (cosine >= 0.999, fp16 mmproj).
    CLIP (1.5, NeXT): every token's features are transformers' exactly, one row early: mtmd returns rows
    1..N of [patches, CLS] (clip.cpp:5199-5207, models/llava.cpp:35-36), i.e. patch 0 is dropped and the
    projected CLS row comes last. The row-order cosine (what the language model gets) stays below 0.99
    and no mmproj can change that; the legacy position table (not rotated) also breaks the features."""
    pytest.importorskip("llama_cpp")
    from edgevlm.export.gguf.text import export_text_gguf
    from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder

    ref, ckpt = refs(name), tiny(name)
    text = tmp_path / "text.gguf"  # mtmd needs a text model of the same width beside the mmproj
    export_text_gguf(ref, ckpt, text, "fp32")
    image = case_image(*size)
    inputs = ref.hf_processor(ckpt)(images=image, text="<image>", return_tensors="pt")
    want = reference.reference_image_features(ref.hf, inputs)
    tiles = want.tiles.numpy()  # [chunks, T, D], base tile first
    assert want.packed[0].shape[0] == hf_tokens
    figures = {}
    for label, dtype, rotated in (("fp16", "fp16", True), ("fp32", "fp32", True), ("legacy-layout", "fp32", False)):
        mmproj = tmp_path / f"mmproj-{label}.gguf"
        write_mmproj(ref, mmproj, dtype, cls_last_positions=rotated)
        encoder = MtmdImageEncoder(text, mmproj)
        try:
            chunks = encoder.encode(np.asarray(image))
        finally:
            encoder.close()
        assert sum(len(c) for c in chunks) == mtmd_tokens
        chunks = chunks[-1:] + chunks[:-1] if len(chunks) > 1 else chunks  # overview first, as transformers
        row_order = min(_cosine(c, t) for c, t in zip(chunks, tiles))
        shifted = min(_cosine(a, b) for c, t in zip(chunks, tiles) for a, b in zip(c[:-1], t[1:]))
        figures[label] = (row_order, shifted)
    print(f"{name} {size}: per-tile cosine min (row order / CLIP rows shifted by one) "
          + ", ".join(f"{k} {a:.6f} / {b:.6f}" for k, (a, b) in figures.items()))
    if name == "llava-onevision":
        assert figures["fp16"][0] >= 0.999 and figures["fp32"][0] >= 0.99999
    else:
        assert figures["fp32"][1] >= 0.99999 and figures["fp16"][1] >= 0.999  # each token exact, one row early
        assert figures["fp32"][0] < 0.99  # ... which the row order the language model sees cannot hide
        assert figures["legacy-layout"][1] < 0.99  # the rotated table is what makes the tokens exact
