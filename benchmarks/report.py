"""Derived figures and the markdown report of a suite run (run_all.py writes the raw rows, this reads them).

- ``add_roofline``: each text row's fraction of the memory-bandwidth ceiling (roofline.py);
- ``targets``: issue 22's goals as ratios measured side by side in the run (TARGETS below);
- ``markdown``: the tables (machine, ISA flags and kernels first; then text, vision, TTFT, speculative
  decoding and targets per model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import roofline

# issue 22's goals
DECODE_VS_LLAMACPP = 1.2  # w4 decode tokens/s / llama.cpp Q4_0's, at context 128 and 1024
ROOFLINE = 0.75  # w4 decode / the bandwidth ceiling
VISION_VS_TORCH = 2.0  # PyTorch eager fp32 ms / ours fp32 ms
VISION_VS_MTMD = 1.5  # mtmd (f16 mmproj) ms / ours fp32 ms
TTFT_VS_MTMD = 1.5  # llama.cpp + mtmd TTFT / ours
RSS_VS_LLAMACPP = 1.0  # llama.cpp peak RSS / ours (>= 1: ours is not larger)

W4_ENGINES = (("ours-onnx-w4", "w4 ONNX (default recipe)"), ("ours-onnx-w4-head4", "w4 ONNX with a 4-bit head"),
              ("ours-onnx-w4-b64-sym", "w4 ONNX at Q4_0's bytes"))


def add_roofline(rows: list[dict[str, Any]], bandwidth: float) -> None:
    for r in rows:
        if "decode_tokens_per_s_ctx128" not in r or not r.get("weights_read_mb_per_token"):
            continue
        w, kv = r["weights_read_mb_per_token"] * 1e6, r["kv_bytes_per_position"]
        r["roofline"] = {}
        for ctx in (128, 1024):
            ceiling = roofline.ceiling_tokens_per_s(bandwidth, w, kv, ctx)
            r["roofline"][f"ceiling_ctx{ctx}"] = round(ceiling, 2)
            r["roofline"][f"ctx{ctx}"] = round(r[f"decode_tokens_per_s_ctx{ctx}"]["median"] / ceiling, 3)


def _target(name: str, goal: float, ratio: float, how: str) -> dict[str, Any]:
    row = {"target": name, "goal": goal, "ratio": round(ratio, 3), "met": ratio >= goal, "how": how}
    if not row["met"]:
        short = 100 * (1 - ratio / goal)
        row["missed_by"] = f"{short:.0f}% short of the goal" if short >= 1 else f"{short:.1f}% short of the goal"
    return row


def targets(text: list[dict[str, Any]], vision: list[dict[str, Any]], ttft: list[dict[str, Any]] = ()
            ) -> list[dict[str, Any]]:
    by_text = {r["engine"]: r for r in text if "decode_tokens_per_s_ctx128" in r}
    by_vision = {r["engine"]: r for r in vision if "chunks" in r}
    by_ttft = {r["engine"]: r for r in ttft if "ttft_ms" in r}
    out = []
    q4 = by_text.get("llamacpp-q4_0")
    for engine, what in W4_ENGINES:
        w4 = by_text.get(engine)
        if not (w4 and q4):
            continue
        for ctx in (128, 1024):
            key = f"decode_tokens_per_s_ctx{ctx}"
            out.append(_target(f"decode {what} / llama.cpp Q4_0, context {ctx}", DECODE_VS_LLAMACPP,
                               w4[key]["median"] / q4[key]["median"], "tokens/s over tokens/s"))
    for engine, what in W4_ENGINES[:1]:
        r = by_text.get(engine)
        if r and "roofline" in r:
            for ctx in (128, 1024):
                out.append(_target(f"decode {what} / bandwidth roofline, context {ctx}", ROOFLINE,
                                   r["roofline"][f"ctx{ctx}"], "tokens/s over the ceiling"))
    ours, torch, mtmd = by_vision.get("ours-onnx-fp32"), by_vision.get("torch-eager"), by_vision.get("mtmd")
    if ours and torch:
        for mode in ("batched", "sequential"):
            if f"{mode}_ms" in torch and f"{mode}_ms" in ours:
                out.append(_target(f"vision fp32 / PyTorch eager fp32 ({mode} chunks)", VISION_VS_TORCH,
                                   torch[f"{mode}_ms"]["median"] / ours[f"{mode}_ms"]["median"], "ms over ms"))
    if ours and mtmd and "sequential_ms" in mtmd and "batched_ms" in ours:
        out.append(_target("vision fp32 (batched) / llama.cpp mtmd f16", VISION_VS_MTMD,
                           mtmd["sequential_ms"]["median"] / ours["batched_ms"]["median"], "ms over ms"))
    peer = by_ttft.get("llamacpp-mtmd")
    for engine, r in by_ttft.items():
        if peer and engine != "llamacpp-mtmd":
            out.append(_target(f"TTFT {r['label']} / llama.cpp Q4_0 + mtmd", TTFT_VS_MTMD,
                               peer["ttft_ms"]["median"] / r["ttft_ms"]["median"], "ms over ms, end to end"))
            out.append(_target(f"peak RSS, image turn: {r['label']} vs llama.cpp + mtmd", RSS_VS_LLAMACPP,
                               peer["peak_rss_mb"] / r["peak_rss_mb"], "llama.cpp's MB over ours"))
    w4 = by_text.get("ours-onnx-w4")
    if w4 and q4:
        out.append(_target("peak RSS, text: w4 ONNX vs llama.cpp Q4_0", RSS_VS_LLAMACPP,
                           q4["peak_rss_mb"] / w4["peak_rss_mb"], "llama.cpp's MB over ours"))
    return out


# -- markdown -------------------------------------------------------------------------------------

def _mm(stats: dict[str, float], digits: int = 1) -> str:
    return f"{stats['median']:.{digits}f} ({stats['min']:.{digits}f}–{stats['max']:.{digits}f})"


def _why(r: dict[str, Any]) -> str:
    return (r.get("skipped") or r.get("error", ""))[:120]


def machine_lines(suite: dict[str, Any]) -> list[str]:
    k = suite.get("kernels") or {}
    if not k:
        return []
    ort, cpu = k["onnxruntime"], k["cpu"]
    return [f"CPU: {cpu['model']}; ISA: {cpu['isa']}.",
            f"onnxruntime kernels (MLAS): MatMulNBits → {ort['matmul_nbits']}; MatMulInteger → {ort['matmul_integer']}; "
            f"fp32 → {ort['sgemm']} ({ort['how']}).",
            f"llama.cpp build (llama_print_system_info): {k['llama_cpp']}."]


def text_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| engine | size MB | prefill tok/s (128) | decode tok/s @128 | decode tok/s @1024 | MB read/token | "
             "roofline @128 | roofline @1024 | peak RSS MB | load avg | kernel |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "decode_tokens_per_s_ctx128" not in r:
            lines.append(f"| {r.get('label', r['engine'])} | – | – | – | – | – | – | – | – | – | {_why(r)} |")
            continue
        roof = r.get("roofline", {})
        pct = lambda k: f"{100 * roof[k]:.0f}%" if k in roof else "–"  # noqa: E731
        lines.append(f"| {r['label']} | {r['size_mb']:.0f} | {_mm(r['prefill_tokens_per_s'], 0)} | "
                     f"{_mm(r['decode_tokens_per_s_ctx128'])} | {_mm(r['decode_tokens_per_s_ctx1024'])} | "
                     f"{r['weights_read_mb_per_token']:.4g} | {pct('ctx128')} | {pct('ctx1024')} | "
                     f"{r['peak_rss_mb']:.0f} | {r.get('load_1min_at_start', '–')} | {r.get('kernel', '–')} |")
    return lines


def vision_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| engine | preprocessing | sequential chunks | batched chunks | feature cosine vs fp32 | peak RSS MB | "
             "load avg | kernel |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "chunks" not in r:
            lines.append(f"| {r.get('label', r['engine'])} | {_why(r)} | | | | | | |")
            continue
        cell = lambda k: _mm(r[k], 0) if k in r else "–"  # noqa: E731
        cos = f"{r['feature_cosine_vs_fp32']:.5f}" if "feature_cosine_vs_fp32" in r else "–"
        lines.append(f"| {r['label']} | {cell('preprocessing_ms')} | {cell('sequential_ms')} | {cell('batched_ms')} | "
                     f"{cos} | {r['peak_rss_mb']:.0f} | {r.get('load_1min_at_start', '–')} | {r.get('kernel', '–')} |")
    return lines


def ttft_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| pipeline | TTFT ms (wall) | CPU ms | prompt tokens | stages (ours: load+preprocess / vision / "
             "prefill ms) | peak RSS MB | load avg |", "|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        if "ttft_ms" not in r:
            lines.append(f"| {r.get('label', r['engine'])} | {_why(r)} | | | | | |")
            continue
        st = r.get("stages_ms") or {}
        stages = " / ".join(f"{v:.0f}" for v in st.values()) if st else "inside mtmd_helper_eval_chunks"
        lines.append(f"| {r['label']} | {_mm(r['ttft_ms'], 0)} | {_mm(r['cpu_ms'], 0)} | {r['prompt_tokens']} | "
                     f"{stages} | {r['peak_rss_mb']:.0f} | {r.get('load_1min_at_start', '–')} |")
    return lines


def speculative_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| bundle | prompts | plain tok/s | prompt lookup tok/s | speed-up (wall, CPU) | drafts accepted | "
             "tokens per forward | same tokens as plain (runs) |", "|---|---|---:|---:|---|---:|---:|---|"]
    for r in rows:
        if "plain_tokens_per_s" not in r:
            lines.append(f"| {r.get('engine', '')} | {r.get('prompts', '')} | {_why(r)} | | | | | |")
            continue
        lines.append(f"| {r['engine']} | {r['prompts']} | {_mm(r['plain_tokens_per_s'])} | "
                     f"{_mm(r['lookup_tokens_per_s'])} | {r['speedup_wall']:.2f}×, {r['speedup_cpu']:.2f}× | "
                     f"{r['accepted']}/{r['drafted']} | {r['tokens_per_forward']:.2f} | "
                     f"{r.get('identical_runs', 'yes' if r['identical'] else 'NO')}"
                     f"{'' if r['identical'] else ' (first difference at token ' + str(r.get('first_difference_at')) + ')'} |")
    return lines


def targets_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| target | goal | measured ratio | met |", "|---|---:|---:|---|"]
    for t in rows:
        lines.append(f"| {t['target']} | ≥ {t['goal']:g} | {t['ratio']:.2f} | "
                     f"{'yes' if t['met'] else 'no: ' + t['missed_by']} |")
    return lines


def markdown(suite: dict[str, Any], images: str = "results/") -> str:
    """The results as markdown; ``images`` is the plots' directory relative to where the text goes."""
    m, bw = suite["machine"], suite["bandwidth"]
    lines = [f"Run {suite['started']} on {m['cpu']} ({m['cores']} cores, {m['memory_mb'] // 1024} GiB), "
             f"{suite['threads']} threads for every engine; commit `{suite['commit']['sha'][:10]}`"
             f"{' + uncommitted changes' if suite['commit']['dirty_files'] else ''}. "
             f"1-minute load average {suite['load_average']['start']} at start, {suite['load_average']['end']} at end"
             f"{' — **measured under load** (other jobs shared the cores)' if suite['under_load'] else ''}. "
             f"Suite wall time {suite['wall_s'] / 60:.1f} min"
             f"{'' if suite.get('complete', True) else ' (partial: the run was still going)'}.", "",
             *machine_lines(suite), "",
             f"Memory bandwidth: **{bw['read_gb_s']} GB/s** read (min–max {bw['read_gb_s_min_max'][0]}–"
             f"{bw['read_gb_s_min_max'][1]}), {bw['copy_gb_s']} GB/s copy; {bw['method']}.",
             "Figures are medians over runs, with min–max in parentheses."]
    for m_ in suite.get("merged", []):
        lines.append(f"Rows re-measured and merged at {m_['at']} (load {m_['load_average']}): "
                     f"{', '.join(m_['engines'] or [])}.")
    for model in suite["models"]:
        lines += ["", f"### {model['name']}", "", model["description"], "", *text_table(model["text"])]
        if model.get("vision"):
            lines += ["", f"Vision encoding of one {model['image_desc']}, ms:", "", *vision_table(model["vision"])]
        if model.get("ttft"):
            w, h = next((r["image"] for r in model["ttft"] if "image" in r), ("?", "?"))  # the rows' own image
            lines += ["", f"Time to first token for one {w}×{h} image, measured end to end (a PNG file in, the "
                      "first answer token out; ours through `VLM.generate`, llama.cpp through mtmd's own API):",
                      "", *ttft_table(model["ttft"])]
        if model.get("speculative"):
            lines += ["", "Speculative decoding with prompt lookup (`prompt_lookup=N`, exact greedy): its own rows, "
                      "**not the base decode speed**; answers that repeat their input vs answers that do not:", "",
                      *speculative_table(model["speculative"])]
        if model.get("targets"):
            lines += ["", "Targets (issue 22):", "", *targets_table(model["targets"])]
        for png in model.get("plots", []):
            lines += ["", f"![{Path(png).stem}]({images}{Path(png).name})"]
    return "\n".join(lines) + "\n"
