"""Run llama.cpp's legacy LLaVA converter (``convert_image_encoder_to_gguf.py``) under transformers 5.

Usage: ``python tests/llava_lcp_convert.py SCRIPT ARGS...``. The script was written for transformers 4,
whose ``CLIPVisionModel`` had a ``.vision_model`` attribute and ``vision_model.``-prefixed state-dict
names; transformers 5 has neither. This shim gives both back and changes nothing else, so the file
written is the one the script writes with transformers 4.
"""

from __future__ import annotations

import runpy
import sys

import torch
import transformers


def main() -> None:
    cls = transformers.CLIPVisionModel
    cls.vision_model = property(lambda self: self)
    module_state_dict = torch.nn.Module.state_dict
    cls.state_dict = lambda self, *a, **k: {"vision_model." + n: t for n, t in module_state_dict(self, *a, **k).items()}
    script, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
