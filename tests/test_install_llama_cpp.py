"""scripts/install_llama_cpp.sh: what it decides to do about llama-cpp-python.

A real rebuild takes ~7 minutes and would replace the shared environment's llama-cpp-python, so the
script runs here against a stand-in interpreter (``PYTHON=...``) that answers the script's two questions
(the AMX check's exit status, the installed version) as told and records every ``pip`` command line with
the CMAKE_ARGS it was given. The check itself (llamacpp_amx.py run as a script) is run for real once.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "install_llama_cpp.sh"
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

SHIM = """#!{python}
# Stand-in for python: the AMX check exits with the next status in $SHIM_DIR/statuses; pip calls are logged.
import os, sys
state = os.environ["SHIM_DIR"]
args = sys.argv[1:]
if args[:1] == ["-c"] and "runpy" in args[1]:
    with open(os.path.join(state, "statuses")) as f:
        statuses = f.read().split()
    with open(os.path.join(state, "statuses"), "w") as f:
        f.write(" ".join(statuses[1:]))
    sys.exit(int(statuses[0]))
if args[:1] == ["-c"] and "__version__" in args[1]:
    print("0.3.36")
    sys.exit(0)
if args[:2] == ["-m", "pip"]:
    with open(os.path.join(state, "pip.log"), "a") as f:
        f.write(os.environ.get("CMAKE_ARGS", "") + "\\t" + " ".join(args[2:]) + "\\n")
    sys.exit(0)
sys.exit(f"shim: unexpected call {{args}}")
"""


def _compiler_takes_no_amx_flags() -> bool:
    return subprocess.run(f"echo 'int main(void) {{ return 0; }}' | ${{CC:-cc}} {NO_AMX} -x c -o /dev/null -",
                          shell=True, capture_output=True).returncode == 0


def run_script(tmp_path: Path, statuses: list[int], cmake_args: str | None = None):
    """Run the script with the stand-in; -> (exit code, output, [(CMAKE_ARGS as parsed, pip args)])."""
    shim = tmp_path / "python"
    shim.write_text(SHIM.format(python=sys.executable))
    shim.chmod(0o755)
    (tmp_path / "statuses").write_text(" ".join(map(str, statuses)))
    env = {k: v for k, v in os.environ.items() if k != "CMAKE_ARGS"}
    env.update(PYTHON=str(shim), SHIM_DIR=str(tmp_path))
    if cmake_args is not None:
        env["CMAKE_ARGS"] = cmake_args
    run = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    log = tmp_path / "pip.log"
    calls = [(shlex.split(line.split("\t")[0]), line.split("\t")[1].split())
             for line in log.read_text().splitlines()] if log.exists() else []
    return run.returncode, run.stdout + run.stderr, calls


def test_an_amx_free_build_is_kept_without_pip(tmp_path):
    code, out, calls = run_script(tmp_path, [0])
    print(out)
    assert code == 0 and "kept" in out
    assert calls == []


def test_an_amx_build_is_rebuilt_without_amx_bypassing_the_wheel_cache(tmp_path):
    code, out, calls = run_script(tmp_path, [1, 0])
    print(out, calls)
    assert code == 0 and "reports AMX" in out
    (cmake, build), (_, deps) = calls
    assert build[:1] == ["install"] and build[-1] == "llama-cpp-python==0.3.36"  # the same version, rebuilt
    for flag in ("--force-reinstall", "--no-deps", "--no-cache-dir"):
        assert flag in build
    assert build[build.index("--no-binary") + 1] == "llama-cpp-python"
    if _compiler_takes_no_amx_flags():
        assert f"-DCMAKE_C_FLAGS={NO_AMX}" in cmake and f"-DCMAKE_CXX_FLAGS={NO_AMX}" in cmake
    assert deps[-1] == "llama-cpp-python==0.3.36" and "--force-reinstall" not in deps


def test_a_fresh_install_builds_the_pyproject_requirement_and_keeps_user_cmake_args(tmp_path):
    code, out, calls = run_script(tmp_path, [2, 0], cmake_args="-DGGML_BLAS=ON")
    print(out, calls)
    assert code == 0
    cmake, build = calls[0]
    assert build[-1] == "llama-cpp-python>=0.3.30"  # pyproject.toml's gguf extra
    assert cmake[0] == "-DGGML_BLAS=ON"


def test_a_build_that_still_reports_amx_fails_loudly(tmp_path):
    code, out, _ = run_script(tmp_path, [1, 1])
    print(out)
    assert code == 1 and "still reports AMX" in out


def test_the_check_reads_the_installed_build():
    pytest.importorskip("llama_cpp")
    from edgevlm.runtime.backends.llamacpp_amx import reports_amx, system_info

    run = subprocess.run([sys.executable, "-c", "import runpy; runpy.run_path("
                          "'edgevlm/runtime/backends/llamacpp_amx.py', run_name='__main__')"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    print(run.stdout, run.stderr[-500:])
    assert run.returncode == (1 if reports_amx(system_info()) else 0)
    assert "CPU :" in run.stdout
