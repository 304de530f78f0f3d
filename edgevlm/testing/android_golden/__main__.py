"""``python -m edgevlm.testing.android_golden OUT_DIR [--bundle BUNDLE]``: write the JVM core's golden vectors."""

from __future__ import annotations

import argparse
import sys

from . import write_golden


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgevlm.testing.android_golden",
                                     description="Write golden vectors for the Android demo's JVM core "
                                                 "(android_demo/core) from the current Python code.")
    parser.add_argument("out", help="directory for the golden files")
    parser.add_argument("--bundle", help="an exported MiniCPM-V 2.6-class ONNX bundle (default: export a tiny one, "
                                         "~30 s)")
    args = parser.parse_args(argv)
    write_golden(args.out, args.bundle)
    print(f"golden vectors written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
