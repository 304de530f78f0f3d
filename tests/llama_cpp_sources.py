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
