"""Golden records for prompt texts (``prompts.json``): every family's layout and chat template, as the
families write them into manifests, over opening turns, follow-up turns and prompts that must fail."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from edgevlm.errors import EdgeVLMError
from edgevlm.processing.config import ChatTemplate, ImageLayout
from edgevlm.processing.prompt import IMAGE, build_prompt
from edgevlm.runtime.turn import Conversation, turn_text


def family_specs() -> dict[str, dict[str, Any]]:
    """name -> {processor, layout, chat_template} dicts, from the family code itself."""
    from edgevlm.families import FAMILIES
    from edgevlm.families.gemma3.tiny import random_config as gemma3_config
    from edgevlm.families.idefics3.tiny import random_config as idefics3_config
    from edgevlm.families.internvl.tiny import random_config as internvl_config
    from edgevlm.families.minicpmv.tiny import random_config as minicpmv_config
    from edgevlm.families.paligemma.tiny import random_config as paligemma_config

    minicpmv, paligemma, gemma3 = FAMILIES["minicpmv"], FAMILIES["paligemma"], FAMILIES["gemma3"]
    specs = {f"minicpmv-{v}": minicpmv.bundle_spec(None, minicpmv_config(v, 600, {})) for v in (2.5, 2.6, 4.5)}
    for mode in ("16x", "4x"):  # MiniCPM-V 4.6: per-chunk feature rows (processor kind slice_merge)
        specs[f"minicpmv-4.6-{mode}"] = FAMILIES["minicpmv4_6"].bundle_spec(None, {"model_type": "minicpmv4_6",
                                                                                 "downsample_mode": mode})
    specs["paligemma"] = paligemma.bundle_spec(None, paligemma_config(1, 600, 5))
    specs["gemma3"] = gemma3.bundle_spec(None, gemma3_config(600, {"boi": 1, "eoi": 2, "image": 3}))
    tiled_ids = {"bos": 1, "eos": 2, "pad": 3, "image": 4}
    for name in ("smolvlm", "idefics3"):  # text_first_prefix, {row}/{col} tiles, the global image last
        specs[name] = FAMILIES["idefics3"].bundle_spec(None, idefics3_config(name, 600, tiled_ids))
    specs["internvl"] = FAMILIES["internvl"].bundle_spec(None, internvl_config(600, tiled_ids))  # <img> ... </img>
    from edgevlm.families.llava.tiny import random_config as llava_config

    ids = {t: i for i, t in enumerate(["<unk>", "<s>", "</s>", "<image>", "<pad>", "<|im_end|>", "<video>"])}
    specs.update({name: FAMILIES["llava"].bundle_spec(None, llava_config(name, 600, ids))
                  for name in ("llava", "llava-onevision")})  # Vicuna USER:/ASSISTANT: and ChatML without a system
    return {name: {"processor": s.processor.to_dict(), "layout": s.layout.to_dict(),
                   "chat_template": s.chat_template.to_dict()} for name, s in specs.items()}


def _messages_json(messages: Any) -> Any:
    """IMAGE parts become {"image": true} in JSON."""
    if isinstance(messages, str):
        return messages
    out = []
    for m in messages:
        content = m["content"]
        if not isinstance(content, str):
            content = [{"image": True} if part is IMAGE else part for part in content]
        out.append({"role": m["role"], "content": content})
    return out


def prompt_cases(marker: str) -> list[dict[str, Any]]:
    nbsp = "\u00a0"
    return [
        {"messages": "What is in the picture?", "grids": [None]},
        {"messages": "Describe both.", "grids": [[2, 1], [3, 3]]},
        {"messages": "  padded text \n", "grids": [[1, 4]]},
        {"messages": f"{nbsp}nbsp and tabs\t", "grids": []},
        {"messages": f"Look: {marker} and then {marker} ok", "grids": [None, [2, 2]]},
        {"messages": "No image here.", "grids": []},
        {"messages": [{"role": "user", "content": [IMAGE, " What is it? ", IMAGE]}], "grids": [[3, 1], None]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": " Hello! "}, {"role": "user", "content": [IMAGE, "And this?"]}],
         "grids": [[1, 2]]},
        {"messages": "Explain.", "grids": [[4, 2]], "system": "You are a vision expert."},
        {"messages": "Caption.", "grids": [None], "add_generation_prompt": False},
        {"messages": "caption en", "grids": [None], "suffix": "a cat"},
        {"messages": f"{marker}{marker}", "grids": [None]},  # error: 2 markers, 1 image
        {"messages": [{"role": "assistant", "content": "only me"}], "grids": [None]},  # error: no user turn
        {"messages": [{"role": "robot", "content": "beep"}], "grids": []},  # error: unknown role
    ]


def followup_cases() -> list[dict[str, Any]]:
    """Later turns of a chat; ``images_before``: images of earlier turns (image ids continue after them)."""
    return [{"text": "And the colour?", "grids": [], "images_before": 1},
            {"text": "  Compare with this one. ", "grids": [[2, 1]], "images_before": 1},
            {"text": "Two more", "grids": [None, None], "images_before": 3},
            {"text": "First picture now.", "grids": [[1, 3]], "images_before": 0}]


# Prompts whose images are given by size (the processor kind plans each chunk's feature rows from it).
SIZED_CASES = [{"messages": "What is in the picture?", "sizes": [[700, 500]]},
               {"messages": "Compare.", "sizes": [[1200, 400], [300, 200]]},
               {"messages": [{"role": "user", "content": [IMAGE, "Read it.", IMAGE]}], "sizes": [[900, 1600], [448, 448]]}]
SIZED_FOLLOWUPS = [{"text": "And this one?", "sizes": [[1344, 1344]], "images_before": 2}]


def sized_records(name: str, spec: dict[str, Any], layout: ImageLayout, template: ChatTemplate) -> list[dict[str, Any]]:
    """Prompts over images given by size, for kinds whose chunks give different row counts (plans, not grids)."""
    from edgevlm.processing.config import ProcessorConfig
    from edgevlm.runtime.images import image_kind

    cfg = ProcessorConfig.from_dict(spec["processor"])
    plan = lambda sizes: [image_kind(cfg).plan(tuple(s), cfg, layout.tokens_per_chunk, len(sizes)) for s in sizes]  # noqa: E731
    out = []
    for case in SIZED_CASES:
        prompt = build_prompt(case["messages"], plan(case["sizes"]), layout, template)
        out.append({"family": name, **case, "messages": _messages_json(case["messages"]), "text": prompt.text,
                    "suffix_text": prompt.suffix})
    model = SimpleNamespace(layout=layout, template=template)
    for case in SIZED_FOLLOWUPS:
        conv = Conversation(turns=1, images=case["images_before"])
        out.append({"family": name, "followup": True, **case, "text_out": turn_text(model, conv, case["text"],
                                                                                   plan(case["sizes"]))})
    return out


def prompt_records() -> dict[str, Any]:
    specs = family_specs()
    records = []
    for name, spec in specs.items():
        layout, template = ImageLayout.from_dict(spec["layout"]), ChatTemplate.from_dict(spec["chat_template"])
        if spec["processor"]["kind"] == "slice_merge":
            records += sized_records(name, spec, layout, template)
        for case in prompt_cases(layout.marker):
            record = {"family": name, **case, "messages": _messages_json(case["messages"])}
            try:
                prompt = build_prompt(case["messages"], case["grids"], layout, template, system=case.get("system"),
                                      add_generation_prompt=case.get("add_generation_prompt", True),
                                      suffix=case.get("suffix"))
                record.update(text=prompt.text, suffix_text=prompt.suffix)
            except EdgeVLMError as exc:
                record.update(error=type(exc).__name__, message=str(exc))
            records.append(record)
        # a follow-up turn of a chat (runtime/turn.py turn_text after the first turn)
        model = SimpleNamespace(layout=layout, template=template)
        for case in followup_cases():
            conv = Conversation(turns=1, images=case["images_before"])
            records.append({"family": name, "followup": True, **case,
                            "text_out": turn_text(model, conv, case["text"], case["grids"])})
    return {"specs": specs, "cases": records}
