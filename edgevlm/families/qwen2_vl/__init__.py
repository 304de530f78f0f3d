"""Qwen2-VL and Qwen2.5-VL: a native-resolution ViT with 2-D rotary (2.5: window attention), a 2x2
patch merger, and a Qwen2 text model rotated with three position streams (M-RoPE).

Groundwork for issue 19, written before the family contract of issue 16 exists, so nothing here is
registered with ``edgevlm.families`` yet. What is here:

- ``tiny.py``: tiny checkpoints in the published hub layout (``make_tiny_qwen2_vl``).
- ``reference.py``: the PyTorch reference seen as parts (image features, token embedding, text model).
- ``vision.py``: the vision tower for export, with the per-image tables as numpy-made inputs.
- ``NOTES.md``: where everything lives in transformers and llama.cpp, and the runtime's data flow.

Preprocessing is ``edgevlm.processing.native_resolution``; positions ``edgevlm.processing.mrope``.
"""

# config.json model_type -> the version this folder treats it as
MODEL_TYPES = {"qwen2_vl": "2", "qwen2_5_vl": "2.5"}
TINY_NAMES = ("qwen2-vl", "qwen2.5-vl")
