"""Stage-by-stage parity of an exported bundle against the PyTorch reference (run at every export).

Stages, each on a generated test image and prompt:
1. ``preprocessing``: our numpy pixels vs transformers' processor (where the family has one in
   transformers) and our prompt token ids vs theirs;
2. ``vision``: image features from the exported vision part vs the reference encoder on the same
   pixels (max abs diff, cosine);
3. ``logits``: first-step logits of our whole pipeline (our preprocessing, our prompt layout, the
   exported parts) vs the reference forward on the reference's own inputs;
4. ``greedy``: 32 greedy tokens through the runtime's generation loop vs the reference's.
Figures go into the manifest; a figure out of tolerance raises ParityError with the whole report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ParityError
from ..processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..processing.prompt import build_prompt, layout_tokens
from ..processing.tokenizer import Tokenizer
from ..runtime.images import prepare_image

PROMPT = "Describe the image."
GREEDY_TOKENS = 32


@dataclass
class Tolerance:
    logits_max_abs: float  # relative: max |diff| / max(1, max |reference logit|)
    vision_cosine: float
    greedy_exact: bool


TOLERANCES = {"fp32": Tolerance(1e-3, 0.9999, True), "fp16": Tolerance(0.25, 0.995, False),
              "f32": Tolerance(1e-3, 0.9999, True), "f16": Tolerance(0.25, 0.995, False)}


def test_image(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """A deterministic picture with structure (gradients + blocks + noise); 640×480 slices into 2 for MiniCPM-V."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, ((x // 40 + y // 40) % 2) * 200], axis=-1)
    pixels = np.clip(pixels + rng.randint(-20, 21, pixels.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def _reference_image_features(ref: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    tensors = {"pixel_values": torch.from_numpy(inputs["pixel_values"])}
    if "tgt_sizes" in inputs:
        tensors = {"pixel_values": tensors["pixel_values"],
                   "patch_mask": torch.from_numpy(inputs["patch_attention_mask"]),
                   "tgt_sizes": torch.from_numpy(inputs["tgt_sizes"].astype(np.int64))}
    with torch.no_grad():
        return ref.image_features(**tensors).float().numpy()


def _hf_processor_inputs(ckpt: str, image: Image.Image, template: ChatTemplate) -> dict[str, torch.Tensor] | None:
    """The reference inputs from transformers' own processor, when the family has one in transformers."""
    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(ckpt)
    except Exception:  # MiniCPM-V 2.x/4.x processors are remote code: no transformers reference here
        return None
    options: dict[str, Any] = {}
    if getattr(processor, "chat_template", None) and template.generation_prompt:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        options["add_special_tokens"] = False  # the rendered template already starts with <bos>
    else:
        text = "<image>" + PROMPT
    try:
        inputs = dict(processor(images=image, text=text, return_tensors="pt", **options))
    except Exception:  # a tokenizer-only AutoProcessor (no image processor in transformers)
        return None
    inputs.pop("labels", None)
    return inputs if "pixel_values" in inputs else None


def validate_bundle(ref: Any, ckpt: str, backend: Any, manifest: Any, tokenizer: Tokenizer,
                    dtype: str, progress: Any = None) -> dict[str, Any]:
    """Run the four stages; return the figures (raises ParityError if any is out of tolerance)."""
    tol = TOLERANCES[dtype]
    processor = ProcessorConfig.from_dict(manifest.processor)
    layout = ImageLayout.from_dict(manifest.layout)
    template = ChatTemplate.from_dict(manifest.chat_template)
    image = test_image()
    report: dict[str, Any] = {"dtype": dtype, "prompt": PROMPT, "image": "640x480 generated"}
    failures: list[str] = []

    # 1. preprocessing and prompt layout
    prepared = prepare_image(image, processor)
    prompt = build_prompt(PROMPT, [prepared.grid], layout, template)
    ours = layout_tokens(tokenizer, prompt, layout, [prepared.n_chunks])
    hf_inputs = _hf_processor_inputs(ckpt, image, template)
    if hf_inputs is not None:
        pixel_diff = float(np.abs(hf_inputs["pixel_values"].numpy() - prepared.inputs["pixel_values"]).max())
        ids_equal = hf_inputs["input_ids"][0].tolist() == ours.input_ids.tolist()
        report["preprocessing"] = {"reference": "transformers AutoProcessor", "pixels_max_abs": pixel_diff,
                                   "input_ids_equal": ids_equal}
        if pixel_diff > 1e-5 or not ids_equal:
            failures.append(f"preprocessing: pixels max abs {pixel_diff:.3g}, input ids equal: {ids_equal}")
    else:
        report["preprocessing"] = {"reference": "none in transformers (remote-code processor); "
                                                "golden tests cover slicing and layout"}
    _tick(progress, "preprocessing")

    # 2. vision features on the same pixels
    got = backend.encode_images(prepared.inputs)
    want = _reference_image_features(ref, prepared.inputs)
    vision = {"max_abs": float(np.abs(got - want).max()), "cosine": _cosine(got, want),
              "per_chunk_cosine_min": min(_cosine(g, w) for g, w in zip(got, want)), "chunks": int(got.shape[0])}
    report["vision"] = vision
    if vision["per_chunk_cosine_min"] < tol.vision_cosine:
        failures.append(f"vision: cosine {vision['per_chunk_cosine_min']:.6f} < {tol.vision_cosine}")
    _tick(progress, "vision")

    # 3. first-step logits: our pipeline vs the reference on its own inputs
    rows = got.reshape(-1, got.shape[-1])
    blocks = ours.block_ids if (ours.block_ids >= 0).any() else None
    backend.rewind(0)
    logits = backend.forward(ours.input_ids, rows, blocks)
    with torch.no_grad():
        if hf_inputs is not None:
            ref_logits = ref.reference_logits(**hf_inputs)[0, -1].float().numpy()
        else:
            ids = torch.from_numpy(ours.input_ids)[None]
            ref_logits = ref.logits(ids, torch.from_numpy(want))[0, -1].float().numpy()
    # A GGUF text part leaves out a trailing run of zero rows no token uses (export/gguf_text.sampled_rows):
    # compare the vocabulary the bundle has.
    ref_logits = ref_logits[: len(logits)]
    diff = float(np.abs(logits - ref_logits).max())
    scale = max(1.0, float(np.abs(ref_logits).max()))
    report["logits"] = {"max_abs": diff, "max_abs_logit": scale, "relative": diff / scale,
                        "top1_equal": int(logits.argmax()) == int(ref_logits.argmax())}
    if diff / scale > tol.logits_max_abs:
        failures.append(f"logits: max |diff| {diff:.3g} is {diff / scale:.3g} of the largest logit "
                        f"(tolerance {tol.logits_max_abs})")
    _tick(progress, "logits")

    # 4. greedy tokens through the generation loop
    eos = tuple(manifest.tokenizer.get("eos_ids", []))
    if hf_inputs is not None:
        want_tokens = ref.reference_generate(GREEDY_TOKENS, **hf_inputs)
    else:
        want_tokens = ref.greedy(torch.from_numpy(ours.input_ids)[None], torch.from_numpy(want), GREEDY_TOKENS, eos)
    backend.rewind(0)
    got_tokens = _greedy(backend, ours.input_ids, rows, blocks, GREEDY_TOKENS, set(eos))
    want_tokens = [t for t in want_tokens][:GREEDY_TOKENS]
    # If the reference picks a row the bundle left out (a zero row's constant logit 0 beat every real token),
    # it has left the real vocabulary: compare the tokens before that.
    left = next((i for i, t in enumerate(want_tokens) if t >= len(logits)), None)
    if left is not None:
        want_tokens, got_tokens = want_tokens[:left], got_tokens[:left]
    same = 0
    for a, b in zip(got_tokens, want_tokens):
        if a != b:
            break
        same += 1
    report["greedy"] = {"tokens": len(want_tokens), "identical_prefix": same, "equal": got_tokens == want_tokens}
    if tol.greedy_exact and got_tokens != want_tokens:
        failures.append(f"greedy: first {same} of {len(want_tokens)} tokens equal")
    _tick(progress, "greedy")
    backend.rewind(0)

    report["passed"] = not failures
    if failures:
        raise ParityError("export parity check failed:\n  " + "\n  ".join(failures) + f"\nfull report: {report}")
    return report


def _greedy(backend: Any, ids: np.ndarray, rows: np.ndarray, blocks: np.ndarray | None, n: int,
            eos: set[int]) -> list[int]:
    logits = backend.forward(ids, rows, blocks)
    tokens: list[int] = []
    for _ in range(n):
        token = int(logits.argmax())
        tokens.append(token)
        if token in eos:
            break
        logits = backend.forward(np.array([token], dtype=np.int64))
    return tokens


def _tick(progress: Any, stage: str) -> None:
    if progress is not None:
        progress(f"parity: {stage} checked")
