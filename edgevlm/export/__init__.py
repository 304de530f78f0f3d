"""``export(checkpoint, out, format, dtype)``: a Hugging Face checkpoint directory -> a checked bundle.

Every export: load the PyTorch reference, write the parts into a temporary directory, run the
stage-by-stage parity check on the parts as the runtime will run them, record the figures in the
manifest, then rename the directory into place. A failed check leaves no bundle behind.
"""

from __future__ import annotations

import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import EdgeVLMError
from ..manifest import BundleWriter, Manifest, Part

FORMATS = ("onnx", "gguf", "coreml")
DTYPES = {"onnx": ("fp32", "fp16"), "gguf": ("f32", "f16"), "coreml": ("fp16", "fp32")}
DTYPE_ALIASES = {"fp32": "f32", "fp16": "f16", "f32": "fp32", "f16": "fp16"}


def _stderr_progress(message: str) -> None:
    print(f"[edgevlm] {message}", file=sys.stderr, flush=True)


def _normalise_dtype(format: str, dtype: str) -> str:
    if dtype in DTYPES[format]:
        return dtype
    alias = DTYPE_ALIASES.get(dtype)
    if alias in DTYPES[format]:
        return alias
    raise EdgeVLMError(f"dtype {dtype!r} is not available for format {format}; choose one of {DTYPES[format]}")


def export(checkpoint: str | Path, out: str | Path, format: str = "onnx", dtype: str = "fp32",
           max_context: int = 2048, overwrite: bool = False, validate: bool = True,
           progress: Callable[[str], None] | None = _stderr_progress, decoder_graph: str = "fused") -> Manifest:
    """``decoder_graph`` (ONNX only): "fused" (opset 23 Attention/RotaryEmbedding and onnxruntime's fused
    norms, needs onnxruntime >= 1.23; fastest on CPU) or "portable" (elementary opset-18 ops, for older
    runtimes and NPU execution providers); docs/decoder_graph.md."""
    from ..families import family_for
    from ..families.common.reference import read_config
    from .onnx.decoder import GRAPHS

    if format not in FORMATS:
        raise EdgeVLMError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    dtype = _normalise_dtype(format, dtype)
    if decoder_graph not in GRAPHS:
        raise EdgeVLMError(f"unknown decoder graph {decoder_graph!r}; choose one of {', '.join(GRAPHS)}")
    say = progress or (lambda message: None)
    ckpt = Path(checkpoint)
    family = family_for(ckpt)
    config = read_config(ckpt)
    spec = family.bundle_spec(config)
    started = time.perf_counter()
    say(f"loading the {family.NAME} reference from {ckpt}")
    ref = family.load_reference(ckpt)
    max_context = min(max_context, ref.text.max_position_embeddings)

    with BundleWriter(out, overwrite=overwrite) as writer:
        shutil.copy(ckpt / "tokenizer.json", writer.path("tokenizer.json"))
        parts = _export_parts(format, ref, ckpt, writer.tmp, dtype, max_context, say, decoder_graph)
        manifest = Manifest(
            format=format, family=family.NAME, attention=ref.attention,
            text={**_text_record(ref), "max_context": max_context},
            vision={"tokens_per_chunk": spec.layout.tokens_per_chunk, "hidden_size": ref.text.hidden_size},
            processor=spec.processor.to_dict(), layout=spec.layout.to_dict(),
            chat_template=spec.chat_template.to_dict(),
            tokenizer=spec.tokenizer_record(ckpt / "tokenizer.json"),
            parts=parts,
            generation={"max_new_tokens": 256, "temperature": 0.0, "recommended": spec.generation},
            source={"checkpoint": ckpt.name, "model_type": config.get("model_type"),
                    "version": config.get("version"), "edgevlm": __version__, "dtype": dtype},
            quantization={name: {"method": "none", "dtype": dtype} for name in parts},
        )
        if validate:
            say("checking parity with the PyTorch reference (preprocessing, vision, logits, greedy tokens)")
            if format == "coreml" and platform.system() != "Darwin":
                # Core ML packages run only on macOS: check the converted PyTorch modules through the
                # backend code instead (the report's "runner" field says so).
                from .coreml.check import validate_with_modules

                manifest.validation = validate_with_modules(ref, ckpt, writer.tmp, manifest, say)
            else:
                # Core ML keeps the KV cache in fp16 whatever the weights: use the fp16 tolerance.
                check_dtype = "fp16" if format == "coreml" else dtype
                manifest.validation = _validate(ref, ckpt, writer.tmp, manifest, check_dtype, say)
        manifest.source["export_seconds"] = round(time.perf_counter() - started, 1)
        manifest = writer.commit(manifest)
    say(f"wrote {out} ({format}, {dtype}) in {time.perf_counter() - started:.1f} s")
    return manifest


def _export_parts(format: str, ref: Any, ckpt: Path, root: Path, dtype: str, max_context: int,
                  say: Callable[[str], None], decoder_graph: str = "fused") -> dict[str, Part]:
    if format == "onnx":
        from .onnx.decoder import export_decoder
        from .onnx.embedding import export_embedding
        from .onnx.vision import export_vision

        say("exporting vision (encoder + projector)")
        vision = export_vision(ref, root / "vision.onnx", dtype)
        say("exporting embedding")
        embedding = export_embedding(ref, root / "embedding.onnx", dtype)
        say(f"exporting decoder ({decoder_graph} graph, max context {max_context})")
        decoder = export_decoder(ref, root, dtype, max_context, graph_kind=decoder_graph)
        return {"vision": vision, "embedding": embedding, "decoder": decoder}
    if format == "gguf":
        from .gguf import export_gguf_parts

        return export_gguf_parts(ref, ckpt, root, dtype, max_context, say)
    from .coreml import export_coreml_parts

    return export_coreml_parts(ref, ckpt, root, dtype, max_context, say)


def _text_record(ref: Any) -> dict[str, Any]:
    t = ref.text
    return {"arch": t.arch, "hidden_size": t.hidden_size, "num_layers": t.num_layers, "num_heads": t.num_heads,
            "num_kv_heads": t.num_kv_heads, "head_dim": t.head_dim, "vocab_size": t.vocab_size,
            "image_token_id": int(ref.image_token_id), **{k: v for k, v in t.extra.items()
                                                         if isinstance(v, (int, float, str, list, bool))}}


def _validate(ref: Any, ckpt: Path, root: Path, manifest: Manifest, dtype: str,
              say: Callable[[str], None]) -> dict[str, Any]:
    from ..processing.tokenizer import Tokenizer
    from ..runtime import open_backend
    from .validate import validate_bundle

    backend = open_backend(root, manifest, device="cpu")
    try:
        tokenizer = Tokenizer.from_file(root / "tokenizer.json")
        report = validate_bundle(ref, str(ckpt), backend, manifest, tokenizer, dtype, say)
    finally:
        backend.close()
    say("parity: vision cosine {:.6f}, logits max abs {:.2e}, greedy {}/{} tokens".format(
        report["vision"]["cosine"], report["logits"]["max_abs"], report["greedy"]["identical_prefix"],
        report["greedy"]["tokens"]))
    return report


from .._callable_module import make_callable  # noqa: E402

make_callable(__name__, "export")
