"""Accuracy report of a quantized bundle against its source, both run by the same runtime.

Figures: next-token top-1 agreement and mean KL(source || candidate) over every position of a
natural English text (edgevlm/data/english.txt, ~500 tokens), length of the identical greedy
prefix on a few prompts, and vision-feature cosine on generated images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import EdgeVLMError
from ..manifest import Manifest, read_manifest

TEXT = Path(__file__).resolve().parent.parent / "data" / "english.txt"
GREEDY_PROMPTS = ("Describe the image.", "What is the capital of France?", "Write a short poem about the sea.")


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def same_model(a: Manifest, b: Manifest) -> None:
    """Refuse to compare bundles of different models (the report would be meaningless)."""
    checks = [("family", a.family, b.family),
              *[(f"text.{k}", getattr(a.text, k), getattr(b.text, k)) for k in ("arch", "hidden_size", "num_layers",
                                                                                "vocab_size")],
              ("tokenizer", a.files.get("tokenizer.json", {}).get("sha256"),
               b.files.get("tokenizer.json", {}).get("sha256"))]
    for name, x, y in checks:
        if x != y:
            raise EdgeVLMError(f"these bundles are not the same model ({name}: {x!r} vs {y!r}); the accuracy report "
                               "compares a quantized bundle with the bundle it was made from")


def report(source: str | Path, candidate: str | Path, candidate_manifest: Manifest | None = None,
           max_positions: int = 512, greedy_tokens: int = 32,
           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    from ..processing.sample_image import sample_image
    from ..runtime import load, open_backend
    from ..runtime.images import prepare_image
    from ..runtime.vlm import VLM

    ref = load(source)
    if candidate_manifest is None:
        cand = load(candidate)
    else:  # a bundle still being written: its manifest's hashes are not final yet
        from ..processing.tokenizer import Tokenizer

        backend = open_backend(Path(candidate), candidate_manifest)
        cand = VLM(candidate, candidate_manifest, backend, Tokenizer.from_file(Path(candidate) /
                                                                              candidate_manifest.tokenizer.file))
    same_model(ref.manifest, candidate_manifest or cand.manifest)
    try:
        ids = ref.tokenizer.encode(TEXT.read_text(encoding="utf-8"))[:max_positions]
        bos = ref.tokenizer.token_to_id(ref.template.bos) if ref.template.bos else None
        if bos is not None:
            ids = np.concatenate([[bos], ids]).astype(np.int64)
        logits = []
        for vlm in (ref, cand):
            vlm.backend.rewind(0)
            logits.append(vlm.backend.forward(ids, None, None, all_logits=True))  # [T, V]
            vlm.backend.rewind(0)
        # A GGUF text part may leave out trailing zero rows no token uses (export/gguf/text.sampled_rows):
        # compare the vocabulary both bundles have.
        n_vocab = min(x.shape[-1] for x in logits)
        la, lb = (x[:, :n_vocab] for x in logits)
        pa, pb = _log_softmax(la), _log_softmax(lb)
        kl = (np.exp(pa) * (pa - pb)).sum(-1)  # [T]
        top1 = float((la.argmax(-1) == lb.argmax(-1)).mean())
        if progress:
            progress(f"report: {len(ids)} positions, top-1 agreement {top1:.4f}")

        prefixes = []
        for prompt in GREEDY_PROMPTS:
            a = ref.generate(prompt, max_new_tokens=greedy_tokens).token_ids
            b = cand.generate(prompt, max_new_tokens=greedy_tokens).token_ids
            same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            prefixes.append(same)

        cosines = []
        for seed in range(2):
            prepared = prepare_image(sample_image(seed=seed), ref.processor)
            fa = ref.backend.encode_images(prepared.inputs).reshape(-1).astype(np.float64)
            fb = cand.backend.encode_images(prepared.inputs).reshape(-1).astype(np.float64)
            cosines.append(float(fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb) + 1e-30)))
    finally:
        ref.close()
        cand.close()
    return {"text": TEXT.name, "positions": int(len(ids)), "top1_agreement": round(top1, 5),
            "mean_kl": round(float(kl.mean()), 6), "max_kl": round(float(kl.max()), 6),
            "greedy_tokens": greedy_tokens, "greedy_identical_prefix": prefixes,
            "greedy_identical_prefix_mean": float(np.mean(prefixes)),
            "vision_cosine_min": round(min(cosines), 6) if cosines else None}


def compare(source: str | Path, candidate: str | Path, **options: Any) -> dict[str, Any]:
    """``edgevlm.quantize.report(a, b)`` for two finished bundles (both verified)."""
    read_manifest(source)
    read_manifest(candidate)
    return report(source, candidate, **options)


from .._callable_module import make_callable  # noqa: E402

make_callable(__name__, "compare")
