"""Benchmark models of real size: checkpoints, bundles and third-party builds, made once and cached.

Speed does not depend on weight values, so the MiniCPM-V-class and PaliGemma-class models are random
weights in the published checkpoints' layout and dimensions; Gemma 3 270M is the real model (text
from the published Q4_K_M GGUF, dequantized; a tiny random vision tower in front, since the 270M is
text-only). Everything lives under ``$EDGEVLM_BENCH_CACHE`` (default ~/.cache/edgevlm-bench/suite)
and is never committed. Each builder is idempotent: a complete directory is returned as is.

    checkpoint(name)        HF VLM checkpoint dir (what ``edgevlm export`` reads)
    text_checkpoint(name)   HF text-only dir of the same language model (genai builder, PyTorch eager)
    onnx_bundle(name, r, g) our ONNX bundle, r in fp32 | int8 | w4 | w4-head4, g the decoder graph (fused | portable)
    gguf_bundle(name, q)    our GGUF bundle, q in f32 | q8_0 | q4_0 (text GGUF quantized by llama.cpp)
    genai_model(name, p)    onnxruntime-genai model builder output, p in fp32 | int4
    published_gguf(name)    the model's published GGUF, if one exists (Gemma 3 270M Q4_K_M)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("EDGEVLM_BENCH_CACHE", Path.home() / ".cache" / "edgevlm-bench")) / "suite"
MAX_CONTEXT = 2048  # the default: covers the ctx-1024 decode measurement plus a one-tile image prompt

from benchmarks.model_dims import (  # noqa: E402  (published dimensions of every benchmark model)
    SIGLIP_400M_448, SIGLIP_SO400M_224, QWEN2_05B, QWEN2_15B, SIGLIP_SO400M_384_26, QWEN2_05B_LLAVA_OV,
    QWEN35_08B, SIGLIP_400M_WINDOW, QWEN2VL_VIT_675M, QWEN2VL_2B_TEXT, GEMMA_2B, SIGLIP_B16_512, SMOLLM2_135M,
    INTERNVIT_300M, QWEN25_05B,
)


@dataclass
class ModelSpec:
    name: str
    kind: str  # minicpmv | paligemma | gemma3-real | llava | idefics3 | internvl | minicpmv4_6 | qwen2vl
    description: str
    tiny: str = ""  # the make_tiny name whose layout the checkpoint takes (dims from text / vision)
    text: dict[str, Any] = field(default_factory=dict)
    vision: dict[str, Any] = field(default_factory=dict)
    default: bool = True  # part of the default suite (the 30-minute budget on 2 cores)
    genai: bool = True  # onnxruntime-genai's builder supports the text architecture
    # dtype of the written checkpoint's tensors. bfloat16 halves the disk and the exporters' peak memory
    # (the export loads it into fp32 modules; PyTorch eager loads it as fp32): speed does not depend on values.
    checkpoint_dtype: str = "float32"
    sizes: dict[str, Any] = field(default_factory=dict)  # other make_tiny sizes (e.g. SmolVLM's scale_factor)
    # Context of the exported bundles (and of llama.cpp's contexts on them): a tiled image's prompt can exceed
    # the default (LLaVA-OneVision's 1000x500 image is 4,039 tokens in ours, 5,133 in mtmd's own tiling).
    max_context: int = MAX_CONTEXT

    @property
    def real_text(self) -> bool:
        """Real language-model weights: answers mean something (prompt-lookup acceptance does)."""
        return self.kind == "gemma3-real"


MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("minicpmv-0.5b", "minicpmv", "MiniCPM-V 2.6 class: SigLIP-400M navit @448 + resampler (64 queries) "
              "+ Qwen2-0.5B-sized text (untied lm_head, as MiniCPM-V's LLMs)", "minicpmv-2.6", QWEN2_05B,
              SIGLIP_400M_448),
    ModelSpec("minicpmv-1.5b", "minicpmv", "MiniCPM-V 2.6 class: SigLIP-400M navit @448 + resampler "
              "+ Qwen2-1.5B-sized text", "minicpmv-2.6", QWEN2_15B, SIGLIP_400M_448, default=False),
    ModelSpec("paligemma-2b", "paligemma", "PaliGemma 1 class: SigLIP So400m @224 + Gemma-2B-sized text", "paligemma",
              GEMMA_2B, SIGLIP_SO400M_224, default=False, checkpoint_dtype="bfloat16"),
    # Mid-size, for interleaved A/B runs of one lever on a shared machine (bench_levers.py): real widths
    # (Qwen2-0.5B's 896 hidden and 151936-row head, SigLIP-400M's 1152 hidden) at a third of the depth.
    ModelSpec("mid-minicpmv", "minicpmv", "MiniCPM-V 2.6 class at real widths, 8 text and 6 vision layers (A/B runs)",
              "minicpmv-2.6", {**QWEN2_05B, "num_hidden_layers": 8}, {**SIGLIP_400M_448, "num_hidden_layers": 6},
              default=False, genai=False),
    ModelSpec("mid-paligemma", "paligemma", "PaliGemma class: SigLIP So400m @224 at real width, 6 layers, behind a "
              "small text model (vision A/B and profile)", "paligemma",
              {"hidden_size": 256, "num_hidden_layers": 2, "intermediate_size": 1024, "num_attention_heads": 4,
               "num_key_value_heads": 1, "head_dim": 64}, {**SIGLIP_SO400M_224, "num_hidden_layers": 6},
              default=False, genai=False),
    # The smoke test's model: the same code paths at toy size (tests/test_benchmarks_smoke.py).
    ModelSpec("tiny-minicpmv", "minicpmv", "tiny random MiniCPM-V 2.6 (smoke test only)", "minicpmv-2.6", default=False,
              genai=False),
    ModelSpec("tiny-paligemma", "paligemma", "tiny random PaliGemma (smoke test only)", "paligemma", default=False,
              genai=False),
    ModelSpec("llava-onevision-0.5b", "llava", "LLaVA-OneVision-0.5B class: SigLIP So400m @384 (26 layers, 729 "
              "tokens per tile, anyres_max_9) + 2-layer MLP + Qwen2-0.5B-sized text (tied head, vocab 152000)",
              "llava-onevision", QWEN2_05B_LLAVA_OV, SIGLIP_SO400M_384_26, default=False, max_context=8192),
    ModelSpec("tiny-llava-onevision", "llava", "tiny random LLaVA-OneVision (smoke test only)", "llava-onevision",
              default=False, genai=False),
    ModelSpec("minicpmv4.6-0.8b", "minicpmv4_6", "MiniCPM-V 4.6 class: SigLIP-400M navit @448 + window merger "
              "(16x) + Qwen3.5-0.8B hybrid text (18 Gated DeltaNet + 6 gated attention layers)", "minicpmv-4.6",
              QWEN35_08B, SIGLIP_400M_WINDOW, default=False, genai=False),
    ModelSpec("tiny-minicpmv4.6", "minicpmv4_6", "tiny random MiniCPM-V 4.6 (smoke test only)", "minicpmv-4.6",
              default=False, genai=False),
    ModelSpec("qwen2-vl-2b", "qwen2vl", "Qwen2-VL-2B class: 675M-class native-resolution ViT + 2x2 merger + "
              "Qwen2-1.5B-sized text with M-RoPE (tied head); checkpoint tensors in bf16", "qwen2-vl", QWEN2VL_2B_TEXT,
              QWEN2VL_VIT_675M, default=False, checkpoint_dtype="bfloat16"),
    ModelSpec("tiny-qwen2vl", "qwen2vl", "tiny random Qwen2-VL (smoke test only)", "qwen2-vl", default=False,
              genai=False),
    ModelSpec("gemma3-270m", "gemma3-real", "Gemma 3 270M (real weights, dequantized from the published Q4_K_M) "
              "behind a tiny random vision tower", "gemma3"),
    # Issue 18: tiled images with pixel shuffle (random weights at the published dimensions).
    ModelSpec("smolvlm-256m", "idefics3", "SmolVLM-256M class: SigLIP-B/16 @512 tiles + global image, pixel shuffle 4 "
              "(64 tokens per tile), linear projection, SmolLM2-135M-sized Llama text", "smolvlm", SMOLLM2_135M,
              SIGLIP_B16_512, default=False, sizes={"scale_factor": 4}),
    ModelSpec("internvl3-1b", "internvl", "InternVL3-1B class: InternViT-300M @448 tiles + thumbnail, pixel shuffle "
              "0.5 (256 tokens per tile), LayerNorm + MLP, Qwen2.5-0.5B-sized text (untied head: 0.94B in all)",
              "internvl", QWEN25_05B, INTERNVIT_300M, default=False, sizes={"tie_word_embeddings": False},
              max_context=8192),  # 1024x768 = 12 tiles + thumbnail = 3,328 image tokens
    ModelSpec("tiny-smolvlm", "idefics3", "tiny random SmolVLM (smoke test only)", "smolvlm", default=False,
              genai=False),
    ModelSpec("tiny-internvl", "internvl", "tiny random InternVL (smoke test only)", "internvl", default=False,
              genai=False),
)}


def log(*parts: Any) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


def spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise SystemExit(f"unknown benchmark model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


@contextlib.contextmanager
def _default_dtype(name: str):
    """Build modules (and so the written checkpoint) in ``name`` (a torch dtype name)."""
    import torch

    saved = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, name))
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def checkpoint(name: str) -> Path:
    """The HF VLM checkpoint directory of benchmark model ``name``."""
    s = spec(name)
    out = CACHE / name / "ckpt"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    from edgevlm.testing.tiny import make_tiny

    tmp = out.with_name("ckpt.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.time()
    log(f"{name}: building the checkpoint ({s.description}; tensors {s.checkpoint_dtype})")
    # fast_init: plain normal weights (~3x faster at 1B parameters; speed does not depend on the values).
    with _default_dtype(s.checkpoint_dtype):
        if s.kind == "gemma3-real":
            from edgevlm.testing.real_weights import gemma3_270m_checkpoint

            make_tiny("gemma3", tmp, text_model=gemma3_270m_checkpoint(CACHE / name / "text"), fast_init=True)
        else:
            sizes = {"text": s.text, "vision": s.vision, **s.sizes} if s.text else None
            make_tiny(s.tiny, tmp, sizes=sizes, fast_init=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log(f"{name}: checkpoint written in {time.time() - t0:.0f} s")
    return out


def text_checkpoint(name: str) -> Path:
    """An HF causal-LM directory holding just the language model (same tensors as the VLM's)."""
    s = spec(name)
    if s.kind == "gemma3-real":
        checkpoint(name)  # also writes the text checkpoint
        return CACHE / name / "text"
    out = CACHE / name / "text"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    from safetensors import safe_open
    from safetensors.torch import save_file

    from edgevlm.families.common.reference import read_config

    ckpt = checkpoint(name)
    config = read_config(ckpt)
    out.mkdir(parents=True, exist_ok=True)
    target = ""  # what the text model's prefix becomes in the causal-LM names
    if s.kind == "minicpmv":
        from edgevlm.families.minicpmv.reference import text_config

        prefix, text_cfg = "llm.", text_config(config).to_dict()
        text_cfg["architectures"] = ["Qwen2ForCausalLM"]
    elif s.kind == "qwen2vl":
        # The text half as a plain Qwen2: for text tokens M-RoPE's three streams carry the same id, which is
        # exactly RoPE, so Qwen2ForCausalLM on the same tensors computes the same thing at the same cost.
        prefix = ""
        text_cfg = {k: v for k, v in config.items() if k not in ("vision_config", "rope_scaling", "model_type")
                    and not k.startswith(("vision_", "image_", "video_"))}
        text_cfg.update(model_type="qwen2", architectures=["Qwen2ForCausalLM"])
    elif s.kind == "minicpmv4_6":  # the Qwen3.5 text model under model.language_model.*, head tied
        prefix, target, text_cfg = "model.language_model.", "model.", dict(config["text_config"])
        text_cfg["architectures"] = ["Qwen3_5ForCausalLM"]
    elif s.kind in TILED_TEXT:  # the text model's tensors under their causal-LM names
        prefix, target, architecture = TILED_TEXT[s.kind]
        text_cfg = dict(config["text_config"], architectures=[architecture])
    else:  # the "llava" key layout: language_model.model.* and language_model.lm_head.weight
        prefix, text_cfg = "language_model.", dict(config["text_config"])
        text_cfg["architectures"] = [_ARCHITECTURES[text_cfg.get("model_type", "gemma")]]
    tensors = {}
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        for key in f.keys():
            if key.startswith(prefix) and not key.startswith("visual."):  # (Qwen2-VL: prefix "", tower "visual.")
                tensors[target + key[len(prefix):]] = f.get_tensor(key)
            elif key == "lm_head.weight":  # SmolVLM keeps its (untied) head outside the text model
                tensors[key] = f.get_tensor(key)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(text_cfg, indent=2) + "\n")
    shutil.copy(ckpt / "tokenizer.json", out / "tokenizer.json")
    return out


# tiled kinds: (the text model's checkpoint prefix, its causal-LM prefix, the architecture for the genai builder)
TILED_TEXT = {"idefics3": ("model.text_model.", "model.", "LlamaForCausalLM"),
              "internvl": ("language_model.", "", "Qwen2ForCausalLM")}


def _edgevlm_cli(*args: str) -> None:
    """Run the edgevlm CLI in a child process (keeps this process's RSS and imports clean)."""
    cmd = [sys.executable, "-m", "edgevlm.cli", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def _cached(out: Path, build: Callable[[], None], what: str) -> Path:
    if (out / "manifest.json").is_file():
        return out
    t0 = time.time()
    log(f"building {what} -> {out}")
    build()
    log(f"built {what} in {time.time() - t0:.0f} s")
    return out


# recipe name in the cache -> extra `edgevlm quantize` arguments
RECIPE_ARGS = {"int8": ["--recipe", "int8"], "w4": ["--recipe", "w4"], "mixed": ["--recipe", "mixed"],
               "w4-head4": ["--recipe", "w4", "--head-bits", "4"],
               # Q4_0's bytes: 4.5 bits per body weight (symmetric blocks of 64 with fp32 scales vs Q4_0's 32
               # with fp16 scales) and an 8.5-bit head (8-bit blocks of 64 vs Q8_0's 32 with fp16 scales)
               "w4-b64-sym": ["--recipe", "w4", "--block-size", "64", "--symmetric"]}


def onnx_bundle(name: str, recipe: str = "fp32", graph: str = "fused") -> Path:
    """Our ONNX bundle: the fp32 export (parity check skipped: random weights, speed only), or a quantized copy.

    ``graph``: the decoder graph (``edgevlm export --decoder-graph``): "fused" (the default product) or
    "portable" (elementary ops), side by side to show what the fused graph buys."""
    prefix = "onnx" if graph == "fused" else f"onnx-{graph}"
    base = CACHE / name / f"{prefix}-fp32"

    context = str(spec(name).max_context)

    def export() -> Path:
        return _cached(base, lambda: _edgevlm_cli("export", str(checkpoint(name)), "-o", str(base), "--max-context",
                                                  context, "--decoder-graph", graph, "--no-validate", "--overwrite"),
                       f"{name} ONNX fp32 ({graph} decoder)")
    if recipe == "fp32":
        return export()
    out = CACHE / name / f"{prefix}-{recipe}"  # a cached quantized bundle does not need its fp32 base any more
    return _cached(out, lambda: _edgevlm_cli("quantize", str(export()), "-o", str(out), *RECIPE_ARGS[recipe],
                                             "--overwrite"), f"{name} ONNX {recipe} ({graph} decoder)")


def gguf_bundle(name: str, quant: str = "q4_0") -> Path:
    """Our GGUF bundle: f32 export (its ONNX vision part is then fp32: an fp16 one crashes onnxruntime 1.32 at session creation), or its text GGUF quantized by llama.cpp (llama_model_quantize)."""
    base = CACHE / name / "gguf-f32"
    context = str(spec(name).max_context)

    def export() -> Path:
        return _cached(base, lambda: _edgevlm_cli("export", str(checkpoint(name)), "-o", str(base), "--format", "gguf",
                                                  "--dtype", "f32", "--max-context", context, "--no-validate",
                                                  "--overwrite"), f"{name} GGUF f32")
    if quant == "f32":
        return export()
    out = CACHE / name / f"gguf-{quant}"
    return _cached(out, lambda: _edgevlm_cli("quantize", str(export()), "-o", str(out), "--recipe", quant,
                                             "--overwrite"), f"{name} GGUF {quant}")


def genai_model(name: str, precision: str = "fp32") -> Path | None:
    """onnxruntime-genai's model builder on the same text weights (CPU, fp32 or int4); None if unsupported."""
    if not spec(name).genai:
        return None
    out = CACHE / name / f"genai-{precision}"
    failed = out.with_name(out.name + ".failed")  # a builder failure is cached too (reason inside)
    if (out / "genai_config.json").is_file():
        return out
    if failed.is_file():
        return None
    src = _with_architectures(text_checkpoint(name))
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(src), "-o", str(out), "-p", precision,
           "-e", "cpu", "-c", str(CACHE / "genai-cache")]
    t0 = time.time()
    log(f"building onnxruntime-genai {precision} for {name}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if not (out / "genai_config.json").is_file():
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        log(f"genai builder failed (exit {proc.returncode}): {reason}")
        failed.write_text(reason + "\n")
        return None
    log(f"built genai {precision} in {time.time() - t0:.0f} s")
    return out


_ARCHITECTURES = {"gemma3_text": "Gemma3ForCausalLM", "qwen2": "Qwen2ForCausalLM", "gemma": "GemmaForCausalLM",
                  "gemma2": "Gemma2ForCausalLM", "llama": "LlamaForCausalLM"}


def _with_architectures(src: Path) -> Path:
    """The genai builder dispatches on config.architectures[0]; a config saved from a GGUF-loaded model
    (Gemma 3 270M) has none. Give it one in a sibling directory of symlinks (weights are not copied)."""
    config = json.loads((src / "config.json").read_text())
    if config.get("architectures"):
        return src
    out = src.with_name(src.name + "-genai")
    out.mkdir(exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "config.json" and not (out / f.name).exists():
            (out / f.name).symlink_to(f.resolve())
    config["architectures"] = [_ARCHITECTURES[config["model_type"]]]
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


def genai_failure(name: str, precision: str) -> str | None:
    """Why the genai builder could not build this model (its last error line), if it failed."""
    failed = CACHE / name / f"genai-{precision}.failed"
    return failed.read_text().strip() if failed.is_file() else None


def published_gguf(name: str) -> Path | None:
    if spec(name).kind != "gemma3-real":
        return None
    from edgevlm.testing.real_weights import gemma3_270m_gguf

    return gemma3_270m_gguf(CACHE / name / "published")


# text engine (compare_text.ENGINES) -> what it needs built; vision engines reuse the fp32 ONNX bundle and
# the GGUF bundle's mmproj
ENGINE_BUILDS: dict[str, Callable[[str], Any]] = {
    "ours-onnx-fp32": lambda n: onnx_bundle(n, "fp32"),
    "ours-onnx-int8": lambda n: onnx_bundle(n, "int8"),
    "ours-onnx-w4": lambda n: onnx_bundle(n, "w4"),
    "ours-onnx-w4-head4": lambda n: onnx_bundle(n, "w4-head4"),
    "ours-onnx-mixed": lambda n: onnx_bundle(n, "mixed"),  # TTFT only (compare_ttft.py): text w4, vision int8
    "ours-onnx-w4-b64-sym": lambda n: onnx_bundle(n, "w4-b64-sym"),
    "ours-onnx-w4-portable": lambda n: onnx_bundle(n, "w4", graph="portable"),
    "ours-gguf-q4_0": lambda n: gguf_bundle(n, "q4_0"),
    "llamacpp-q4_0": lambda n: gguf_bundle(n, "q4_0"),
    "llamacpp-published": published_gguf,
    "genai-fp32": lambda n: genai_model(n, "fp32"),
    "genai-int4": lambda n: genai_model(n, "int4"),
    "torch-eager": text_checkpoint,
}


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Build (or find) the benchmark models in the cache.")
    ap.add_argument("models", nargs="*", default=[n for n, s in MODELS.items() if s.default])
    ap.add_argument("--engines", nargs="+", help="build only what these text engines need (default: all)")
    args = ap.parse_args()
    for name in args.models:
        for engine in args.engines or list(ENGINE_BUILDS):
            ENGINE_BUILDS[engine](name)
        log(f"{name}: ready under {CACHE / name}")


if __name__ == "__main__":
    main()
