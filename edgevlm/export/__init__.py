"""``export(checkpoint, out, format, dtype)``: a Hugging Face checkpoint directory -> a checked bundle.

Every export: load the family's PyTorch reference, let the format's exporter (onnx/, gguf/, coreml/,
chosen from the table in edgevlm/formats.py) write the parts into a temporary directory, run the
stage-by-stage parity check on the parts as the runtime will run them, record the figures in the
manifest, then rename the directory into place. A failed check leaves no bundle behind.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import CheckpointError, EdgeVLMError
from ..manifest import BundleWriter, Manifest, TextInfo, TokenizerInfo, VisionInfo
from ..manifest.schema import LAYER_TYPES


TERMINAL = "terminal"  # default progress: a live line per stage on a terminal, plain lines otherwise


def export(checkpoint: str | Path, out: str | Path, format: str = "onnx", dtype: str | None = None,
           max_context: int = 2048, overwrite: bool = False, validate: bool = True,
           progress: Callable[[str], None] | str | None = TERMINAL, decoder_graph: str | None = None,
           **options: Any) -> Manifest:
    """Options a format takes (edgevlm/formats.py): ``decoder_graph`` (onnx: "fused", the default, needs
    onnxruntime >= 1.23; "portable", elementary ops for NPU providers; docs/decoder_graph.md),
    ``mmproj_dtype`` (gguf), ``slice_patches`` (coreml). ``progress``: a callable taking each stage's
    message, None for silence, or the default live terminal lines (edgevlm/progress.py)."""
    from ..progress import Progress, quiet_third_party

    shown = Progress() if progress == TERMINAL else None
    try:
        with quiet_third_party():
            return _export(checkpoint, out, format, dtype, max_context, overwrite, validate,
                           shown or progress, decoder_graph, **options)
    finally:
        if shown is not None:
            shown.close()


def _export(checkpoint: str | Path, out: str | Path, format: str, dtype: str | None, max_context: int,
            overwrite: bool, validate: bool, progress: Callable[[str], None] | None, decoder_graph: str | None,
            **options: Any) -> Manifest:
    from ..families import family_for, read_config
    from ..formats import check_options, export_dtype, get_format, resolve
    from .job import ExportJob
    from .tables import export_tables

    fmt = get_format(format)
    dtype = export_dtype(fmt, dtype)
    options = check_options(fmt, {"decoder_graph": decoder_graph, **options}, "export")
    if max_context < 16:
        raise EdgeVLMError(f"--max-context {max_context} is too small; give at least 16 tokens (2048 is usual).")
    say = progress or (lambda message: None)
    ckpt = Path(checkpoint)
    family = family_for(ckpt)
    config = read_config(ckpt)
    spec = family.bundle_spec(ckpt, config)
    if not (ckpt / "tokenizer.json").is_file():
        raise EdgeVLMError(f"{ckpt}: no tokenizer.json. Save the tokenizer with tokenizer.save_pretrained(dir).")
    started = time.perf_counter()
    say(f"loading the {family.name} reference from {ckpt}")
    ref = family.load_reference(ckpt)
    max_context = min(max_context, ref.text.max_position_embeddings)
    text = text_info(ref, max_context)  # refuses a layer kind we cannot run before any heavy work

    with BundleWriter(out, overwrite=overwrite) as writer:
        (writer.path("tokenizer.json")).write_bytes((ckpt / "tokenizer.json").read_bytes())
        job = ExportJob(ref, family, ckpt, writer.tmp, dtype, max_context, options, say)
        parts = resolve(fmt.exporter)(job)
        parts.update(export_tables(ref.vision_graph(), writer.tmp))  # learned arrays the feature packing reads
        manifest = Manifest(
            format=format, family=family.name, text=text, vision=vision_info(ref, 1 if format == "coreml" else 16),
            tokenizer=TokenizerInfo(**spec.tokenizer_record(ckpt / "tokenizer.json")),
            processor=spec.processor.to_dict(), layout=spec.layout.to_dict(),
            chat_template=spec.chat_template.to_dict(), parts=parts,
            generation={"max_new_tokens": 256, "temperature": 0.0, "recommended": spec.generation},
            source={"checkpoint": ckpt.name, "model_type": config.get("model_type"),
                    "version": config.get("version"), "edgevlm": __version__, "dtype": dtype},
            quantization={name: {"method": "none", "dtype": part.dtype} for name, part in parts.items()},
        )
        if validate:
            say("parity 1/4 with the PyTorch reference: preprocessing")
            manifest.validation = validate_export(ref, ckpt, writer.tmp, manifest, say)
        manifest.source["export_seconds"] = round(time.perf_counter() - started, 1)
        manifest = writer.commit(manifest)
    say(f"wrote {out} ({format}, {dtype}) in {time.perf_counter() - started:.1f} s")
    return manifest


def text_info(ref: Any, max_context: int) -> TextInfo:
    """The manifest's text section from the reference's text model."""
    t = ref.text
    types = list(t.extra.get("layer_types") or ["full_attention"] * t.num_layers)
    details = {k: v for k, v in t.extra.items() if k not in ("layer_types", "sliding_window")
               and isinstance(v, (int, float, str, bool, list))}
    unknown = sorted(set(types) - set(LAYER_TYPES))
    if unknown:
        raise CheckpointError(f"the text model's layer_types name {', '.join(map(repr, unknown))}, a layer kind this "
                              f"edgevlm cannot export (it knows {', '.join(LAYER_TYPES)}). Upgrade edgevlm.")
    vocab_rows = int(ref.language_model.lm_head.weight.shape[0])  # >= the tokenizer's when the table was padded
    return TextInfo(arch=t.arch, hidden_size=t.hidden_size, num_layers=t.num_layers, num_heads=t.num_heads,
                    num_kv_heads=t.num_kv_heads, head_dim=t.head_dim, vocab_size=vocab_rows,
                    max_context=int(max_context), layer_types=types,
                    sliding_window=t.extra.get("sliding_window") if "sliding_attention" in types else None,
                    position_offset=int(getattr(ref, "position_offset", 0)),
                    # M-RoPE (rotary sections over temporal, height, width): three position ids per token
                    position_streams=int(getattr(ref, "position_streams", 1)), details=details)


def vision_info(ref: Any, max_batch: int) -> VisionInfo:
    """The manifest's vision section from the family's vision graph."""
    graph = ref.vision_graph()
    record = graph.record
    return VisionInfo(kind=record["kind"], tokens_per_chunk=graph.tokens_per_chunk(), hidden_size=ref.text.hidden_size,
                      max_batch=max_batch, patch_size=int(record.get("patch_size", 14)),
                      image_size=record.get("image_size"),
                      params={k: v for k, v in record.items()
                              if k not in ("kind", "tokens_per_chunk", "patch_size", "image_size")})


def bare_manifest(ref: Any, format: str, parts: dict[str, Any], max_context: int, max_batch: int = 16) -> Manifest:
    """A manifest for parts written without the bundle around them (tests and benchmarks drive a backend
    with it): the sections a backend reads, no processing data."""
    return Manifest(format=format, family=ref.family, text=text_info(ref, max_context), vision=vision_info(ref, max_batch),
                    tokenizer=TokenizerInfo(file="tokenizer.json", vocab_size=ref.text.vocab_size,
                                            image_token_id=int(ref.image_token_id)),
                    processor={}, layout={}, chat_template={}, parts=parts)


def validate_export(ref: Any, ckpt: Path, root: Path, manifest: Any, say: Callable[[str], None]) -> dict[str, Any]:
    """The parity check of a bundle being written (``root``): through its format's backend, or on
    systems that cannot run the format (Core ML off macOS) through the converted modules."""
    from ..processing.tokenizer import Tokenizer
    from ..runtime import open_backend
    from .validate import validate_bundle

    if manifest.format == "coreml" and platform.system() != "Darwin":
        from .coreml.check import validate_with_modules

        return validate_with_modules(ref, ckpt, root, manifest, say)
    # Core ML keeps the KV cache in fp16 whatever the weights: use the fp16 tolerance.
    dtype = "fp16" if manifest.format == "coreml" else manifest.source["dtype"]
    backend = open_backend(root, manifest, device="cpu")
    try:
        tokenizer = Tokenizer.from_file(root / manifest.tokenizer.file)
        report = validate_bundle(ref, str(ckpt), backend, manifest, tokenizer, dtype, say, bundle=root)
    finally:
        backend.close()
    say("parity: vision cosine {:.6f}, logits max abs {:.2e}, greedy {}/{} tokens".format(
        report["vision"]["cosine"], report["logits"]["max_abs"], report["greedy"]["identical_prefix"],
        report["greedy"]["tokens"]))
    return report


from .._callable_module import make_callable  # noqa: E402

make_callable(__name__, "export")
