"""LLaVA 1.5, LLaVA-NeXT (1.6) and LLaVA-OneVision: a CLIP or SigLIP tower, a 2-layer GELU MLP, a Llama or
Qwen2 text model; NeXT and OneVision tile images ("anyres", see edgevlm/processing/anyres.py).

Notes with file:line pointers into transformers and llama.cpp: NOTES.md in this folder.
"""
