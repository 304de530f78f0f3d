"""PNG plots of a suite result (matplotlib, headless): decode tokens/s, measured TTFT, vision encoding.

``write_plots(suite, out_dir) -> [paths]``: ``suite`` is the dict run_all.py writes to suite.json.
Bars are medians; error bars span min-max over runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI / this machine
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _err(stats: list[dict[str, float]]) -> np.ndarray:
    """[2, n] distances from the median to min and max, as matplotlib's yerr wants."""
    return np.array([[s["median"] - s["min"] for s in stats], [s["max"] - s["median"] for s in stats]])


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_decode(model: dict[str, Any], path: Path) -> Path:
    rows = [r for r in model["text"] if "decode_tokens_per_s_ctx128" in r]
    labels = [r["label"] for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.6))
    for i, (ctx, color) in enumerate(((128, "#4c72b0"), (1024, "#dd8452"))):
        stats = [r[f"decode_tokens_per_s_ctx{ctx}"] for r in rows]
        ax.barh(y + (i - 0.5) * 0.38, [s["median"] for s in stats], 0.38, xerr=_err(stats), color=color,
                label=f"context {ctx}", capsize=2)
        for j, r in enumerate(rows):
            frac = r.get("roofline", {}).get(f"ctx{ctx}")
            if frac is not None:
                ax.text(stats[j]["max"] * 1.01, y[j] + (i - 0.5) * 0.38, f"{100 * frac:.0f}% of roofline",
                        va="center", fontsize=7)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("decode tokens/s (greedy, batch 1)")
    ax.set_title(f"{model['name']}: decode speed, {model['threads']} threads")
    ax.legend(loc="lower right")
    ax.margins(x=0.25)
    return _save(fig, path)


def plot_ttft(model: dict[str, Any], path: Path) -> Path:
    """Measured end-to-end TTFT per pipeline (median, min-max)."""
    rows = [r for r in model.get("ttft", []) if "ttft_ms" in r]
    labels = [r["label"] for r in rows]
    stats = [{k: v / 1e3 for k, v in r["ttft_ms"].items() if k != "n"} for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.6))
    ax.barh(labels, [s["median"] for s in stats], xerr=_err(stats), color="#55a868", capsize=2)
    for i, (s, r) in enumerate(zip(stats, rows)):  # prompts differ where a peer tiles the image its own way
        tokens = f", {r['prompt_tokens']} prompt tokens" if r.get("prompt_tokens") else ""
        ax.text(s["max"] * 1.01, i, f"{s['median']:.1f} s{tokens}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time to first token, s (measured end to end)")
    ax.set_title(f"{model['name']}: time to first token, one {model.get('image_short', 'image')}")
    ax.margins(x=0.45)
    return _save(fig, path)


def plot_vision(model: dict[str, Any], path: Path) -> Path:
    rows = [r for r in model.get("vision", []) if "skipped" not in r and "error" not in r]
    labels = [r["label"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, (mode, color) in enumerate((("sequential", "#c44e52"), ("batched", "#55a868"))):
        have = [j for j, r in enumerate(rows) if f"{mode}_ms" in r]
        if not have:  # PaliGemma: one chunk per image, one call ("batched") only
            continue
        stats = [rows[j][f"{mode}_ms"] for j in have]
        ax.bar(x[have] + (i - 0.5) * 0.38, [s["median"] / 1e3 for s in stats], 0.38,
               yerr=_err(stats) / 1e3, color=color, label=f"{mode} chunks", capsize=2)
    ax.set_xticks(x, labels, rotation=15, ha="right")
    ax.set_ylabel("seconds per image")
    ax.set_title(f"{model['name']}: vision encoding, one {model.get('image_short', 'image')}")
    ax.legend()
    return _save(fig, path)


def write_plots(suite: dict[str, Any], out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for model in suite["models"]:
        name = model["name"]
        if model.get("text"):
            written.append(plot_decode(model, out / f"{name}-decode.png"))
        if any("ttft_ms" in r for r in model.get("ttft", [])):
            written.append(plot_ttft(model, out / f"{name}-ttft.png"))
        if model.get("vision"):
            written.append(plot_vision(model, out / f"{name}-vision.png"))
    return written
