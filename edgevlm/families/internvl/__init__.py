"""InternVL 2.5 / 3 (the transformers "-hf" layout): aspect-ratio tiles + a thumbnail, InternViT per
tile, pixel shuffle 0.5, LayerNorm + 2-layer MLP, a Qwen2 (or Llama) text model.

NOTES.md has the file:line map of the reference (transformers) and of llama.cpp's INTERNVL projector.
"""
