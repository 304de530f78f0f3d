"""MiniCPM-V 4.6 mmproj GGUF: our writer against llama.cpp's own converter on the tiny checkpoints.

llama.cpp's ``convert_hf_to_gguf.py --mmproj`` (MiniCPMV4_6VisionModel) runs on the same directory;
both files must hold the same tensors (names, shapes, types, values) and the same clip.* metadata,
in both downsample modes. The converter comes from the llama-cpp-python sdist
(``pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36``); point
EDGEVLM_LLAMA_CPP_SRC at its ``vendor/llama.cpp`` directory.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgevlm.families import FAMILIES, load_reference  # noqa: E402
from edgevlm.families.tiny import make_tiny  # noqa: E402

pytestmark = pytest.mark.gguf


def llama_cpp_source() -> Path | None:
    candidates = [os.environ.get("EDGEVLM_LLAMA_CPP_SRC", "")] + glob.glob("/work/wt/_lcp/*/vendor/llama.cpp")
    for candidate in candidates:
        if candidate and (Path(candidate) / "convert_hf_to_gguf.py").is_file():
            return Path(candidate)
    return None


def read_gguf(path: Path, gguf_py: Path) -> tuple[dict, dict]:
    """(metadata, tensors) of a GGUF, read with the converter's own gguf-py (it knows the new keys)."""
    code = ("import sys, pickle, numpy as np, gguf; r = gguf.GGUFReader(sys.argv[1]); "
            "meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith('GGUF.')}; "
            "ts = {t.name: (t.tensor_type.name, [int(x) for x in t.shape], np.array(t.data)) for t in r.tensors}; "
            "sys.stdout.buffer.write(pickle.dumps((meta, ts)))")
    import pickle

    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(gguf_py)})
    return pickle.loads(out.stdout)


# slow tier: the default tier runs our mmproj through llama.cpp's mtmd (tests/test_minicpmv46_gguf.py)
@pytest.mark.slow
@pytest.mark.parametrize("mode, dtype", [("16x", "f16"), ("4x", "f32"), ("16x", "f32")])
def test_mmproj_equals_llama_cpp_converter(tmp_path, mode, dtype):
    src = llama_cpp_source()
    if src is None:
        pytest.skip("llama.cpp's converter not found: set EDGEVLM_LLAMA_CPP_SRC to the sdist's vendor/llama.cpp")
    ckpt = make_tiny("minicpmv-4.6", tmp_path / "ckpt", downsample_mode=mode)
    theirs_path = tmp_path / "theirs.gguf"
    subprocess.run([sys.executable, str(src / "convert_hf_to_gguf.py"), str(ckpt), "--mmproj", "--outtype", dtype,
                    "--outfile", str(theirs_path)], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(src / "gguf-py")})
    ours_path = tmp_path / "ours.gguf"
    FAMILIES["minicpmv4_6"].write_mmproj(load_reference(ckpt), ours_path, {"f32": "fp32", "f16": "fp16"}[dtype])
    meta_t, tensors_t = read_gguf(theirs_path, src / "gguf-py")
    meta_o, tensors_o = read_gguf(ours_path, src / "gguf-py")
    assert sorted(tensors_o) == sorted(tensors_t)
    assert ("v.vit_merger.ln1.weight" in tensors_o) == (mode == "16x")
    for name, (qtype, shape, data) in tensors_t.items():
        assert tensors_o[name][:2] == (qtype, shape), name
        np.testing.assert_array_equal(tensors_o[name][2], data, err_msg=name)
    keys = {k for k in meta_t if k.startswith("clip.")} | {"general.architecture", "general.type", "general.file_type"}
    assert keys <= set(meta_o), keys - set(meta_o)
    for key in sorted(keys):
        a, b = meta_o[key], meta_t[key]
        assert (np.allclose(a, b) if isinstance(b, (float, list)) else a == b), (key, a, b)
    print(f"{mode} {dtype}: {len(tensors_o)} tensors and {len(keys)} keys equal to llama.cpp's converter; "
          f"scale_factor {meta_o['clip.vision.projector.scale_factor']}")
