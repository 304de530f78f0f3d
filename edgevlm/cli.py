"""The ``edgevlm`` command: a thin layer over the public functions (heavy imports happen inside commands)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import EdgeVLMError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Export, quantize and run vision-language models on devices.")


PIXELS_HELP = ("native-resolution bundles (Qwen2-VL): pixel budget per image, e.g. 200704 = 256 image tokens "
               "of 28x28 px (fewer: faster, coarser)")


def _pixels(max_pixels: int | None, min_pixels: int | None) -> dict[str, int]:
    """The per-request pixel budget options that were given (runtime/images.py request_processor)."""
    return {k: v for k, v in (("max_pixels", max_pixels), ("min_pixels", min_pixels)) if v is not None}


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command()
def export(checkpoint: Path = typer.Argument(..., help="Hugging Face checkpoint directory"),
           out: Path = typer.Option(..., "-o", "--out", help="bundle directory to write"),
           format: str = typer.Option("onnx", "--format", help="onnx | gguf | coreml"),
           dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32 | fp16 (default: fp32; coreml: fp16)"),
           max_context: int = typer.Option(2048, "--max-context", help="KV cache capacity in tokens"),
           overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing bundle"),
           no_validate: bool = typer.Option(False, "--no-validate", help="skip the parity check (not advised)"),
           decoder_graph: Optional[str] = typer.Option(None, "--decoder-graph",
                                                       help="onnx: fused (default; onnxruntime >= 1.23, fastest) | portable (elementary ops, for NPU providers and older runtimes)"),
           mmproj_dtype: Optional[str] = typer.Option(None, "--mmproj-dtype", help="gguf: fp16 (default) | fp32"),
           slice_patches: Optional[str] = typer.Option(None, "--slice-patches",
                                                       help="coreml: enumerated chunk patch counts, e.g. 768,1024,1280")):
    """Export CHECKPOINT to a bundle, checked stage by stage against PyTorch."""
    from .export import export as run_export

    try:
        patches = [int(n) for n in slice_patches.split(",")] if slice_patches else None
        manifest = run_export(checkpoint, out, format=format, dtype=dtype, max_context=max_context,
                              overwrite=overwrite, validate=not no_validate, decoder_graph=decoder_graph,
                              mmproj_dtype=mmproj_dtype, slice_patches=patches)
    except ValueError:
        _fail(EdgeVLMError(f"--slice-patches {slice_patches!r}: give comma-separated whole numbers"))
    except EdgeVLMError as exc:
        _fail(exc)
    typer.echo(json.dumps({"bundle": str(out), "validation": manifest.validation}, indent=2))


@app.command()
def quantize(bundle: Path, out: Path = typer.Option(..., "-o", "--out"),
             recipe: str = typer.Option("w4", "--recipe", help="fp16 | int8 | w4 | mixed (gguf: q8_0, q4_k_m ...)"),
             vision: Optional[str] = typer.Option(None, "--vision", help="override the vision part's recipe"),
             decoder: Optional[str] = typer.Option(None, "--decoder", help="override the decoder's recipe"),
             embedding: Optional[str] = typer.Option(None, "--embedding", help="override the embedding's recipe"),
             part: List[str] = typer.Option([], "--part", help="override any part: NAME=METHOD (gguf: text=q8_0, mmproj=q8_0); repeat"),
             block_size: Optional[int] = typer.Option(None, "--block-size", help="onnx, coreml: weights per quantization block (32)"),
             symmetric: bool = typer.Option(False, "--symmetric", help="onnx w4/w8 without zero points (default: asymmetric)"),
             head_bits: Optional[int] = typer.Option(None, "--head-bits", help="onnx w4: bits of the output head, 8 (default, accuracy) or 4 (speed)"),
             report: bool = typer.Option(False, "--report", help="print and store an accuracy report"),
             calibration: Optional[Path] = typer.Option(None, "--calibration",
                                                        help="folder of images + prompts.txt (static qdq recipes)"),
             overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing output bundle")):
    """Write a quantized copy of BUNDLE (never in place)."""
    from .quantize import quantize as run_quantize

    overrides = {k: v for k, v in (("vision", vision), ("decoder", decoder), ("embedding", embedding)) if v}
    for item in part:
        name, _, method = item.partition("=")
        if not name or not method:
            _fail(EdgeVLMError(f"--part {item!r}: write NAME=METHOD, e.g. --part mmproj=q8_0"))
        overrides[name] = method
    try:
        manifest = run_quantize(bundle, out, recipe=recipe, overrides=overrides, block_size=block_size, symmetric=symmetric,
                                report=report, calibration=str(calibration) if calibration else None,
                                overwrite=overwrite, head_bits=head_bits)
    except EdgeVLMError as exc:
        _fail(exc)
    typer.echo(json.dumps({"bundle": str(out), "quantization": manifest.quantization}, indent=2))


@app.command()
def run(bundle: Path, prompt: str = typer.Option(..., "--prompt", "-p"),
        image: List[Path] = typer.Option([], "--image", "-i", help="repeat for several images"),
        max_tokens: int = typer.Option(256, "--max-tokens", min=0, help="tokens to generate (0: prefill only)"),
        temperature: float = typer.Option(0.0, "--temperature"),
        top_k: int = typer.Option(0, "--top-k"), top_p: float = typer.Option(1.0, "--top-p"),
        seed: Optional[int] = typer.Option(None, "--seed"), device: str = typer.Option("auto", "--device", help="cpu | auto | coreml | qnn | nnapi | xnnpack | cuda | dml"),
        as_json: bool = typer.Option(False, "--json", help="print text, token_ids and stats as JSON"),
        raw: bool = typer.Option(False, "--raw", help="complete PROMPT as written (BOS + prompt, no chat template): for base models"),
        max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help=PIXELS_HELP),
        min_pixels: Optional[int] = typer.Option(None, "--min-pixels", help="native-resolution bundles: the smallest size an image is enlarged to"),
        prompt_lookup: int = typer.Option(0, "--prompt-lookup", min=0, help="greedy only: verify up to N tokens drafted from the prompt per step (same tokens, faster when the answer repeats the prompt; 0: off)")):
    """Answer PROMPT about the images, streaming to the terminal."""
    import edgevlm

    try:
        vlm = edgevlm.load(str(bundle), device=device)
        chat = vlm.chat()
        options = dict(max_new_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                       raw=raw, prompt_lookup=prompt_lookup, **_pixels(max_pixels, min_pixels))
        if as_json:
            typer.echo(json.dumps(chat.send(prompt, [str(p) for p in image], **options).to_dict(), indent=2))
            return
        for delta in chat.stream(prompt, [str(p) for p in image], **options):
            typer.echo(delta.text, nl=False)
        typer.echo()
        s = chat.last_result.stats
        typer.echo(f"[{s.prompt_tokens} prompt tokens, TTFT {s.time_to_first_token_ms:.0f} ms (slicing "
                   f"{s.slicing_ms:.0f}, vision {s.vision_ms:.0f}, prefill {s.prefill_ms:.0f}), "
                   f"decode {s.decode_tokens_per_s:.1f} tok/s, peak RSS {s.peak_rss_mb:.0f} MB]", err=True)
    except EdgeVLMError as exc:
        _fail(exc)


@app.command()
def chat(bundle: Path, device: str = typer.Option("auto", "--device", help="cpu | auto | coreml | qnn | nnapi | xnnpack | cuda | dml"),
         system: Optional[str] = typer.Option(None, "--system"),
         max_tokens: int = typer.Option(256, "--max-tokens", min=1),
         temperature: float = typer.Option(0.0, "--temperature"),
         raw: bool = typer.Option(False, "--raw", help="each line continues the text as written (no chat template)"),
         max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help=PIXELS_HELP)):
    """Multi-turn chat. Commands: /image PATH (attach to the next message), /reset, /quit."""
    import edgevlm

    try:
        vlm = edgevlm.load(str(bundle), device=device)
    except EdgeVLMError as exc:
        _fail(exc)
    session, images = vlm.chat(system), []
    typer.echo("edgevlm chat: /image PATH attaches an image, /reset starts over, /quit leaves", err=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line == "/reset":
            session, images = vlm.chat(system), []
            continue
        if line.startswith("/image "):
            images.append(line[len("/image "):].strip())
            typer.echo(f"(image attached: {images[-1]})", err=True)
            continue
        try:
            for delta in session.stream(line, images, max_new_tokens=max_tokens, temperature=temperature, raw=raw,
                                        **_pixels(max_pixels, None)):
                typer.echo(delta.text, nl=False)
            typer.echo()
        except EdgeVLMError as exc:
            typer.echo(f"error: {exc}", err=True)
        images = []


@app.command()
def inspect(bundle: Path, as_json: bool = typer.Option(False, "--json")):
    """Check a bundle (files, hashes, schema) and print its manifest."""
    from .manifest import read_manifest

    try:
        manifest = read_manifest(bundle)
    except EdgeVLMError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(manifest.to_dict(), indent=2))
        return
    typer.echo(f"{bundle}: {manifest.family} ({manifest.source.get('model_type')}), format {manifest.format}, "
               f"attention {manifest.attention}, schema {manifest.schema_version}")
    t = manifest.text
    typer.echo(f"  text: {t.arch} hidden {t.hidden_size} layers {t.num_layers} kv heads {t.num_kv_heads} "
               f"max context {t.max_context}")
    for name, part in manifest.parts.items():
        size = manifest.part_bytes(name)
        quant = manifest.quantization.get(name, {})
        typer.echo(f"  part {name:9s} {part.file:34s} {size / 1e6:8.1f} MB  {quant.get('method', 'none')}")
    parity = manifest.validation.get("source", manifest.validation)  # a quantized bundle keeps its source's
    if {"vision", "logits", "greedy"} <= parity.keys():
        origin = " (of the source bundle)" if "source" in manifest.validation else ""
        typer.echo(f"  parity{origin}: vision cosine {parity['vision']['cosine']:.6f}, logits max abs "
                   f"{parity['logits']['max_abs']:.2e}, greedy {parity['greedy']['identical_prefix']}/"
                   f"{parity['greedy']['tokens']}")
    report = manifest.quantization.get("report")
    if report:
        from .quantize import format_report

        typer.echo(f"  accuracy vs {manifest.quantization.get('source_bundle')}:\n{format_report(report)}")
    typer.echo("  all files present, sizes and sha256 verified")


@app.command()
def bench(bundle: Path, image: Optional[Path] = typer.Option(None, "--image"),
          prompt: str = typer.Option("Describe the image in detail.", "--prompt"),
          runs: int = typer.Option(3, "--runs", min=1), max_tokens: int = typer.Option(64, "--max-tokens", min=1),
          device: str = typer.Option("auto", "--device", help="cpu | auto | coreml | qnn | nnapi | xnnpack | cuda | dml"), as_json: bool = typer.Option(False, "--json")):
    """Time preprocessing, vision, prefill and decode on BUNDLE (medians over runs)."""
    from .bench import bench_bundle

    try:
        result = bench_bundle(bundle, image=image, prompt=prompt, runs=runs, max_tokens=max_tokens, device=device)
    except EdgeVLMError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        for key, value in result["median"].items():
            typer.echo(f"{key:28s} {value}")


@app.command()
def serve(bundle: Path, host: str = typer.Option("127.0.0.1", "--host", help="address to bind (off loopback, also set --api-key)"),
          port: int = typer.Option(8080, "--port"), api_key: Optional[str] = typer.Option(None, "--api-key", help="required as 'Authorization: Bearer KEY' on every route but /health"),
          device: str = typer.Option("auto", "--device", help="cpu | auto | coreml | qnn | nnapi | xnnpack | cuda | dml"),
          allow_file_urls: bool = typer.Option(False, "--allow-file-urls", help="accept image_url file:///local/paths"),
          max_queue: int = typer.Option(16, "--max-queue", help="requests waiting for the model before 429"),
          max_body_mb: int = typer.Option(32, "--max-body-mb"), max_images: int = typer.Option(8, "--max-images", help="per request"),
          conversations: int = typer.Option(8, "--conversations", help="live conversations kept for reuse (0: off)"),
          vision_cache_mb: int = typer.Option(256, "--vision-cache-mb", help="image features kept across requests (0: off)"),
          model_name: Optional[str] = typer.Option(None, "--model-name", help="id in /v1/models (default: the bundle folder's name)"),
          threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads of the backend (default: the backend's own)")):
    """Serve BUNDLE over an OpenAI-compatible API (POST /v1/chat/completions) until Ctrl-C."""
    from .serve import serve as run_serve

    try:
        run_serve(bundle, host=host, port=port, api_key=api_key, device=device, allow_file_urls=allow_file_urls,
                  max_queue=max_queue, max_body_mb=max_body_mb, max_images=max_images, conversations=conversations,
                  vision_cache_mb=vision_cache_mb, model_name=model_name, threads=threads)
    except EdgeVLMError as exc:
        _fail(exc)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
