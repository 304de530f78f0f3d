"""Where llama.cpp's own sources are (the converter, gguf-py): the vendored copy in llama-cpp-python's sdist.

Get it with ``pip download --no-deps --no-binary :all: llama-cpp-python==VERSION -d DIR`` and unpack it;
set LLAMA_CPP_SRC to its ``vendor/llama.cpp`` when it is not in /work/wt/_lcp.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def llama_cpp_converter() -> Path:
    """The vendor/llama.cpp directory holding convert_hf_to_gguf.py (the test is skipped when there is none)."""
    import llama_cpp

    candidates = [os.environ.get("LLAMA_CPP_SRC", ""),
                  f"/work/wt/_lcp/llama-cpp-python-{llama_cpp.__version__}/vendor/llama.cpp"]
    for root in filter(None, candidates):
        if (Path(root) / "convert_hf_to_gguf.py").is_file():
            return Path(root)
    pytest.skip("llama.cpp's converter is not here: pip download --no-deps --no-binary :all: "
                f"llama-cpp-python=={llama_cpp.__version__} -d DIR, unpack it, and set "
                "LLAMA_CPP_SRC=DIR/llama-cpp-python-*/vendor/llama.cpp")


def convert(args: list[str], timeout: int = 900) -> None:
    """Run llama.cpp's convert_hf_to_gguf.py with its own gguf-py."""
    root = llama_cpp_converter()
    env = {**os.environ, "PYTHONPATH": str(root / "gguf-py")}
    run = subprocess.run([sys.executable, str(root / "convert_hf_to_gguf.py"), *args], capture_output=True,
                         text=True, env=env, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]


# Runs the converter (once per output, in one process: importing it and torch is most of the time) with its
# BPE pre-tokenizer check answered: the tiny checkpoints' tokenizers are trained here, so their hash is in no
# list (the tokenizer metadata is checked separately, by tokenizing).
_RUN = """
import runpy, sys
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: {pre!r}
for args in {jobs!r}:
    sys.argv = ["convert_hf_to_gguf.py", *args]
    runpy.run_path({script!r}, run_name="__main__")
"""


def convert_many(checkpoint: Path, outputs: dict[str, tuple[str, bool]], pre: str = "qwen2") -> None:
    """llama.cpp's convert_hf_to_gguf.py on ``checkpoint``: {out path: (outtype, mmproj?)}, one process."""
    root = llama_cpp_converter()
    jobs = [[str(checkpoint), "--outfile", str(out), "--outtype", outtype] + (["--mmproj"] if mmproj else [])
            for out, (outtype, mmproj) in outputs.items()]
    code = _RUN.format(pre=pre, jobs=jobs, script=str(root / "convert_hf_to_gguf.py"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "gguf-py"), str(root)])}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
