"""Qwen2-VL / Qwen2.5-VL GGUF files against llama.cpp itself: its converter and its mtmd.

- The mmproj (projectors qwen2vl_merger / qwen2.5vl_merger) and the text GGUF (arch qwen2vl, 4 rope
  sections) equal what llama.cpp's own ``convert_hf_to_gguf.py`` writes for the same tiny checkpoint:
  every key and tensor (names, shapes, dtypes, values).
- mtmd (llama.cpp's multimodal library, its own clip.cpp graph) encodes our mmproj: its features vs
  transformers' on our preprocessed pixels (the image resized by our processor, so mtmd's own resize
  keeps the size; mtmd's rounding differs from transformers' at half points, NOTES.md), cosine >= 0.999
  per token; its token count per image equals our plan's.
The same tokens through our llama.cpp backend as through transformers: tests/test_qwen2vl_runtime.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from llama_cpp_sources import convert_many  # noqa: E402
from qwen2vl_hf import synthetic_image  # noqa: E402

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

from edgevlm.export.gguf import _generation_config  # noqa: E402
from edgevlm.export.gguf.text import export_text_gguf  # noqa: E402
from edgevlm.families.qwen2_vl.mmproj import write_mmproj  # noqa: E402
from edgevlm.families.qwen2_vl.reference import load_reference  # noqa: E402
from edgevlm.processing.native_resolution import NativeResolutionConfig, preprocess_native_resolution  # noqa: E402

pytestmark = pytest.mark.gguf
NAMES = ["qwen2-vl", "qwen2.5-vl"]
# llama.cpp's converter runs once per checkpoint (~15 s: it imports torch): 2.5 (the windowed projector,
# untied head) by default, 2.0 in the slow tier
CONVERTED = ["qwen2.5-vl", pytest.param("qwen2-vl", marks=pytest.mark.slow)]
# metadata only one side writes: names and sizes, and keys llama.cpp derives the same way when absent
NAMING = {"general.name", "general.size_label", "general.quantization_version", "general.type",
          "general.description"}
DERIVED_DEFAULTS = ("attention.key_length", "attention.value_length", "rope.dimension_count",
                    "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token")


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory):
    """name -> (reference, directory with our text.gguf / mmproj-{f32,f16}.gguf)."""
    out = {}
    for name in NAMES:
        ckpt, root = tiny(name), tmp_path_factory.mktemp(f"gguf-{name}")
        ref = load_reference(ckpt)
        export_text_gguf(ref, ckpt, root / "text.gguf", "fp32", _generation_config(ckpt))  # as the bundle export
        for dtype in ("fp32", "fp16"):
            write_mmproj(ref, root / f"mmproj-{dtype}.gguf", dtype)
        out[name] = (ref, root)
    return out


def _fields(path: Path) -> dict:
    reader = gguf.GGUFReader(str(path))
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in NAMING or key.endswith(DERIVED_DEFAULTS):
            continue
        out[key] = field.contents()
    return out


def _tensors(path: Path) -> dict:
    return {t.name: (t.tensor_type.name, t.shape.tolist(), np.asarray(t.data)) for t in gguf.GGUFReader(str(path)).tensors}


def _same_files(ours: Path, theirs: Path, skip_keys: tuple[str, ...] = ()) -> None:
    a, b = _fields(ours), _fields(theirs)
    a, b = ({k: v for k, v in d.items() if not k.startswith(skip_keys)} for d in (a, b)) if skip_keys else (a, b)
    assert a == b
    ta, tb = _tensors(ours), _tensors(theirs)
    assert {k: v[:2] for k, v in ta.items()} == {k: v[:2] for k, v in tb.items()}  # names, dtypes, shapes
    assert all(np.array_equal(ta[k][2], tb[k][2]) for k in ta)  # values, bit for bit


@pytest.fixture(scope="module")
def theirs(tiny, tmp_path_factory):
    """name -> directory with llama.cpp's conversion: text-f32, mmproj-f32, mmproj-f16 (one process per name)."""
    out = {}

    def get(name):
        if name not in out:
            root = tmp_path_factory.mktemp(f"llama-cpp-{name}")
            convert_many(tiny(name), {root / "text.gguf": ("f32", False), root / "mmproj-fp32.gguf": ("f32", True),
                                 root / "mmproj-fp16.gguf": ("f16", True)})
            out[name] = root
        return out[name]

    return get


@pytest.mark.parametrize("name", CONVERTED)
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_mmproj_equals_llama_cpp_converter(files, theirs, name, dtype):
    _same_files(files[name][1] / f"mmproj-{dtype}.gguf", theirs(name) / f"mmproj-{dtype}.gguf")


@pytest.mark.parametrize("name", CONVERTED)
def test_text_gguf_equals_llama_cpp_converter(files, theirs, name):
    """Keys and tensors of the qwen2vl text model (rope sections, tied head dropped for 2.0). The tokenizer's
    pre-tokenizer name differs by construction (the converter is told "qwen2" for the tiny tokenizer)."""
    assert _fields(theirs(name) / "text.gguf")["qwen2vl.rope.dimension_sections"] == [2, 3, 3, 0]
    _same_files(files[name][1] / "text.gguf", theirs(name) / "text.gguf",
                skip_keys=("tokenizer.ggml.pre", "tokenizer.chat_template"))


@pytest.fixture(scope="module")
def mtmd(files):
    from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder

    encoders = {name: MtmdImageEncoder(root / "text.gguf", root / "mmproj-fp16.gguf", threads=1)
                for name, (_, root) in files.items()}
    yield encoders
    for encoder in encoders.values():
        encoder.close()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(300, 200), pytest.param((123, 457), marks=pytest.mark.slow),
                                  pytest.param((640, 480), marks=pytest.mark.slow)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_mtmd_features_match_ours_on_our_pixels(files, mtmd, name, size):
    from PIL import Image

    ref = files[name][0]
    image = synthetic_image(*size)
    ours = preprocess_native_resolution(image, NativeResolutionConfig(max_pixels=28 * 28 * 256))
    resized = np.asarray(image.resize(ours.plan.resized_size, Image.Resampling.BICUBIC))  # our resize
    kinds = [kind for kind, _ in mtmd[name].tokenize(resized)]
    got = np.concatenate(mtmd[name].encode(resized))  # [tokens, D]
    with torch.no_grad():
        want = ref.image_features(torch.from_numpy(ours.pixel_values), torch.from_numpy(ours.grid_thw[None]))[0].numpy()
    cosine = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
    print(f"{name} {size}: {got.shape[0]} tokens, mtmd vs ours min cosine {cosine.min():.7f}")
    assert kinds.count("image") == 1 and got.shape == want.shape == (ours.plan.n_tokens, ref.text.hidden_size)
    assert cosine.min() >= 0.999
