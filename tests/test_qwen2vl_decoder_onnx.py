"""Qwen2-VL / Qwen2.5-VL end to end in ONNX (vision, embedding, M-RoPE decoder) against transformers.

A small numpy generation loop stands in for the runtime (which gets M-RoPE after the family
contract): preprocess with numpy + Pillow, features from the vision graph, placeholder rows replaced,
positions from ``edgevlm.processing.mrope``, prefill then one token per step with the KV cache.
Compared with transformers' own model (eager attention) on the processor's inputs: first-step
logits within 1e-3 and 32 greedy tokens equal to ``generate``, with one image, two images of
different sizes, and a two-turn chat fed in two pieces vs one prompt holding both turns.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from qwen2vl_hf import chat, hf_processor, synthetic_image  # noqa: E402

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")

from edgevlm.export.onnx_embedding import export_embedding  # noqa: E402
from edgevlm.export.onnx_mrope_decoder import export_mrope_decoder  # noqa: E402
from edgevlm.families.qwen2_vl.reference import load_reference  # noqa: E402
from edgevlm.families.qwen2_vl.vision import export_vision_onnx, packed_vit_spec  # noqa: E402
from edgevlm.processing.mrope import MropePositions, mrope_positions, text_positions  # noqa: E402
from edgevlm.processing.native_resolution import (  # noqa: E402
    NativeResolutionConfig,
    concat_images,
    preprocess_native_resolution,
)
from edgevlm.processing.packed_vit import packed_vit_inputs  # noqa: E402

NAMES = ["qwen2-vl", "qwen2.5-vl"]
BUDGET = NativeResolutionConfig(max_pixels=28 * 28 * 128)
SIZE = {"shortest_edge": BUDGET.min_pixels, "longest_edge": BUDGET.max_pixels}
MASK = float(np.finfo(np.float32).min)


class OnnxQwen:
    """The three graphs and a greedy loop over them (batch 1, the cache grows by concatenation)."""

    def __init__(self, ref, root: Path):
        self.ref = ref
        export_vision_onnx(ref, root / "vision.onnx")
        export_embedding(ref, root / "embedding.onnx")
        part = export_mrope_decoder(ref, root, ref.text.extra["mrope_section"])
        self.layers = part.extra["num_layers"]
        self.empty = np.zeros((1, 0, part.extra["num_kv_heads"], part.extra["head_dim"]), np.float32)
        make = lambda name: ort.InferenceSession(str(root / name), providers=["CPUExecutionProvider"])  # noqa: E731
        self.vision, self.embedding, self.decoder = make("vision.onnx"), make("embedding.onnx"), make(part.file)
        self.spec = packed_vit_spec(ref.hf.model.visual.config)
        self.reset()

    def reset(self) -> None:
        """A new conversation: empty cache, positions from 0."""
        self.past: list[np.ndarray] = []
        self.position = 0

    def features(self, images) -> np.ndarray:
        pixel_values, grids = concat_images([preprocess_native_resolution(image, BUDGET) for image in images])
        tables = packed_vit_inputs(grids, self.spec)
        names = [i.name for i in self.vision.get_inputs()]
        return self.vision.run(None, {"pixel_values": pixel_values, **{n: tables[n] for n in names[1:]}})[0]

    def feed(self, ids: np.ndarray, features: np.ndarray | None, positions: MropePositions) -> np.ndarray:
        """Run ``ids`` (after the cached tokens) through the decoder; returns the last row's logits."""
        embeds = self.embedding.run(None, {"input_ids": ids[None]})[0]  # [1, T, D]
        if features is not None:
            embeds[0, ids == self.ref.image_token_id] = features
        t, p = ids.shape[0], (self.past[0].shape[1] if self.past else 0)
        bias = np.triu(np.full((t, p + t), MASK, np.float32), k=p + 1)[None, None]  # causal over past + new
        feeds = {"inputs_embeds": embeds, "position_ids": positions.position_ids, "attention_bias": bias,
                 "logits_index": np.array([t - 1], np.int64)}
        past = self.past or [self.empty] * (2 * self.layers)
        feeds.update({f"past_{kind}.{i}": past[2 * i + j] for i in range(self.layers)
                      for j, kind in enumerate(("key", "value"))})
        logits, *presents = self.decoder.run(None, feeds)
        self.past = [np.concatenate([old, new], axis=1) for old, new in zip(past, presents)]
        self.position = positions.next_position
        return logits[0, -1]

    def greedy(self, first_logits: np.ndarray, n: int, eos: tuple[int, ...] = ()) -> list[int]:
        """Up to n tokens, through the first ``eos`` one (as ``generate``); the last one is not fed."""
        tokens = [int(first_logits.argmax())]
        while len(tokens) < n and tokens[-1] not in eos:
            step = MropePositions(text_positions(1, self.position), self.position + 1)
            tokens.append(int(self.feed(np.array(tokens[-1:]), None, step).argmax()))
        return tokens


def _eos(hf) -> tuple[int, ...]:
    eos = hf.generation_config.eos_token_id
    return tuple(eos) if isinstance(eos, list) else (eos,)


@pytest.fixture(scope="module")
def setups(tiny, tmp_path_factory):
    from transformers import AutoModelForImageTextToText

    out = {}
    for name in NAMES:
        ckpt = tiny(name)
        hf = AutoModelForImageTextToText.from_pretrained(str(ckpt), attn_implementation="eager").eval()
        ref = load_reference(ckpt)
        out[name] = (hf_processor(ckpt), hf, ref, OnnxQwen(ref, tmp_path_factory.mktemp(name)))
    return out


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sizes", [[(300, 200)], [(300, 200), (123, 457)]], ids=["one image", "two images"])
def test_logits_and_32_greedy_tokens_equal_transformers(setups, name, sizes):
    processor, hf, ref, engine = setups[name]
    engine.reset()
    images = [synthetic_image(w, h, seed) for seed, (w, h) in enumerate(sizes)]
    parts = ["IMAGE"] * len(images) + ["What is in the image?"]
    text = processor.apply_chat_template(chat(("user", parts)), add_generation_prompt=True)
    inputs = processor(text=[text], images=images, images_kwargs={"size": SIZE}, return_tensors="pt")
    with torch.no_grad():
        want_logits = hf(**inputs).logits[0, -1].numpy()
        want = hf.generate(**inputs, max_new_tokens=32, do_sample=False)[0, inputs["input_ids"].shape[1]:].tolist()
    ids = inputs["input_ids"][0].numpy()
    grids = inputs["image_grid_thw"].numpy()
    logits = engine.feed(ids, engine.features(images), mrope_positions(ids, ref.image_token_id, grids, 2))
    assert np.abs(logits - want_logits).max() <= 1e-3
    assert engine.greedy(logits, 32, _eos(hf)) == want


@pytest.mark.parametrize("name", NAMES)
def test_two_turn_chat_in_two_pieces_equals_one_prompt(setups, name):
    processor, hf, ref, engine = setups[name]
    engine.reset()
    image_a, image_b = synthetic_image(300, 200, 0), synthetic_image(123, 457, 1)
    first_text = processor.apply_chat_template(chat(("user", ["IMAGE", "What is this?"])), add_generation_prompt=True)
    first = processor(text=[first_text], images=[image_a], images_kwargs={"size": SIZE}, return_tensors="pt")
    ids_1 = first["input_ids"][0].numpy()
    grids = first["image_grid_thw"].numpy()
    answer = engine.greedy(engine.feed(ids_1, engine.features([image_a]),
                                       mrope_positions(ids_1, ref.image_token_id, grids, 2)), 8)
    assert not set(answer) & set(_eos(hf))  # a full answer: turn 2 follows a real assistant turn
    # turn 2 as the chat template renders it after the answer; its image expanded by the processor
    second_text = "<|im_end|>\n<|im_start|>user\nAnd this one?<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n" \
                  "<|im_start|>assistant\n"
    second = processor(text=[second_text], images=[image_b], images_kwargs={"size": SIZE}, return_tensors="pt")
    ids_2 = np.concatenate([answer[-1:], second["input_ids"][0].numpy()])  # the last answer token is not fed yet
    grid_b = second["image_grid_thw"].numpy()
    piece = mrope_positions(ids_2, ref.image_token_id, grid_b, 2, start=engine.position)
    tokens = engine.greedy(engine.feed(ids_2, engine.features([image_b]), piece), 32, _eos(hf))

    whole_ids = np.concatenate([ids_1, answer, second["input_ids"][0].numpy()])
    whole = {"input_ids": torch.from_numpy(whole_ids)[None], "attention_mask": torch.ones(1, whole_ids.shape[0],
                                                                                          dtype=torch.long),
             "pixel_values": torch.cat([first["pixel_values"], second["pixel_values"]]),
             "image_grid_thw": torch.cat([first["image_grid_thw"], second["image_grid_thw"]]),
             "mm_token_type_ids": torch.from_numpy((whole_ids == ref.image_token_id).astype(np.int64))[None]}
    with torch.no_grad():
        want = hf.generate(**whole, max_new_tokens=32, do_sample=False)[0, whole_ids.shape[0]:].tolist()
    assert tokens == want and len(want) >= 16
