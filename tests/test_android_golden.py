"""The Android demo's pure-JVM core (android_demo/core) against golden vectors written by the current Python code.

The golden files are regenerated here from this checkout (edgevlm/testing/android_golden/), so a change in
the Python behaviour that the Java port does not follow fails this test. Each JVM test class runs as its
own pytest case (TestRunner's name filter). Skipped only when no JDK (javac + java) is installed; CI runs
``bash android_demo/core/build.sh --install-deps`` first, which installs one from Debian.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "android_demo" / "core"
JVM_CLASSES = ["CoreUnitTest", "ManifestGoldenTest", "SlicingGoldenTest", "AnyresGoldenTest", "NativeResolutionGoldenTest",
               "VisionInputsGoldenTest", "PromptGoldenTest", "TokenLayoutGoldenTest", "SamplerGoldenTest",
               "GenerationGoldenTest"]

pytestmark = pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None,
                                reason="no JDK (javac/java) on PATH: run `bash android_demo/core/build.sh --install-deps`")


@pytest.fixture(scope="module")
def core_classpath() -> str:
    """Compiles the core and its tests from the current sources (a few seconds)."""
    result = subprocess.run(["bash", str(CORE / "build.sh")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"build.sh failed:\n{result.stdout}\n{result.stderr}"
    return f"{CORE / 'build' / 'classes'}:{CORE / 'build' / 'test-classes'}"


@pytest.fixture(scope="module")
def golden(tiny, tmp_path_factory) -> Path:
    """Golden vectors from this checkout's Python code, over a tiny MiniCPM-V 2.6 ONNX bundle."""
    import edgevlm
    from edgevlm.testing.android_golden import write_golden

    out = tmp_path_factory.mktemp("android_golden")
    bundle = out / "bundle"
    edgevlm.export(str(tiny("minicpmv-2.6")), str(bundle), format="onnx", max_context=512, validate=False,
                   progress=None)
    return write_golden(out / "golden", bundle)


def test_golden_files_are_complete(golden):
    from edgevlm.testing.android_golden import FILES

    names = {p.name for p in golden.iterdir()}
    for required in FILES:
        assert required in names, f"{required} was not written"


@pytest.mark.parametrize("jvm_class", JVM_CLASSES)
def test_jvm_core_matches_python(core_classpath, golden, jvm_class):
    result = subprocess.run(["java", "-cp", core_classpath, "org.edgevlm.core.TestRunner", str(golden), jvm_class + "."],
                            capture_output=True, text=True, timeout=600)
    print(result.stdout)
    summary = re.search(r"^(\d+) passed, (\d+) failed$", result.stdout, re.MULTILINE)
    assert summary is not None, f"no summary line from the JVM runner:\n{result.stdout}\n{result.stderr}"
    passed, failed = int(summary.group(1)), int(summary.group(2))
    assert failed == 0 and passed > 0 and result.returncode == 0, f"{jvm_class}:\n{result.stdout}\n{result.stderr}"


def test_jvm_runner_fails_on_a_wrong_golden_value(core_classpath, golden, tmp_path):
    """The comparison can fail: one flipped checksum in a copy of the golden files makes the JVM run fail."""
    import json

    copy = tmp_path / "golden"
    shutil.copytree(golden, copy, ignore=shutil.ignore_patterns("manifests", "*.bin"))
    data = json.loads((copy / "slicing.json").read_text(encoding="utf-8"))
    data["slices"] = data["slices"][:3]
    data["slices"][1]["pixel_values_sha256"] = "0" * 64
    (copy / "slicing.json").write_text(json.dumps(data), encoding="utf-8")
    result = subprocess.run(["java", "-cp", core_classpath, "org.edgevlm.core.TestRunner", str(copy),
                             "SlicingGoldenTest.testSlicePlans"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "0 passed, 1 failed" in result.stdout, result.stdout
    assert "pixel_values float32" in result.stdout, result.stdout
