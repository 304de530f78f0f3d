"""SmolVLM / Idefics3: square tiles + a global image, SigLIP per tile, pixel shuffle, one linear projection.

SmolVLM (``SmolVLMForConditionalGeneration``) and Idefics3 (``Idefics3ForConditionalGeneration``) are
the same design in transformers; this folder serves both. NOTES.md has the file:line map of the
reference (transformers) and of llama.cpp's IDEFICS3 projector.
"""
