"""The text decoder as a stateful, multifunction Core ML package: KV cache as ``ct.StateType``, fixed shapes.

The Neural Engine compiles fixed (or enumerated) shapes only, so ``decoder.mlpackage`` holds two
functions of one module, sharing their weights (``ct.utils.save_multifunction`` deduplicates them)
and declaring the same two states:

  decode   T = 1                       one new token per call
  prefill  T in ``prefill_sizes``      enumerated (16 ... 2048 capped at max_context); the
                                        runtime pads a prompt chunk to the next size

Model contract of both (batch 1; C = max_context; T new rows, real or padding):
  inputs_embeds          float32 [1, T, hidden]
  attention_bias         float32 [1, 1, T, C]      additive mask over the WHOLE cache (0 / MASK_VALUE)
  attention_bias_sliding float32 [1, 1, T, C]      same for sliding-window layers (only if the model has them)
  rope_cos, rope_sin     float32 [1, T, head_dim]  rotary tables of the T positions (one pair per distinct rope)
  position               int32 [1]                 cache row of the first new token (the write position)
  logits_index           int32 [1]                 which of the T rows gets logits (the last real one)
states:
  key_cache, value_cache float16 [layers, 1, kv_heads, C, head_dim]  (Core ML states are fp16 only)
outputs:
  logits                 float32 [1, 1, vocab]

Why this shape:
- The write position is an input and every call attends over all C rows (the mask hides rows that
  are not in the context, padding included), so no shape depends on how full the cache is.
- Masks are inputs (as in the ONNX decoder), so causal, prefix-LM and bidirectional image blocks
  are one model; the runtime builds them from ``block_ids`` with numpy.
- RoPE cos/sin are inputs computed by the runtime in float32: with fp16 compute precision an
  in-model ``position * inv_freq`` cannot even represent positions above 2048 exactly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...manifest import Part
from .plumbing import (DEFAULT_COMPUTE_UNITS, MASK_VALUE, convert, ct, function_io_spec, package_manifest,
                            save_functions)
from ..text_graph import SLIDING, DecoderGraph, finish_layer, rotated_qkv

PREFILL_SIZES = (16, 64, 128, 256, 512, 1024, 2048)  # 2048: a 1024-row image in a bidirectional prefix is one call
DECODE, PREFILL = "decode", "prefill"


def prefill_sizes(max_context: int, sizes: tuple[int, ...] | list[int] = PREFILL_SIZES) -> list[int]:
    """The enumerated prefill lengths: ``sizes`` capped at max_context (a single token is ``decode``'s job)."""
    return sorted({min(int(s), int(max_context)) for s in sizes if min(int(s), int(max_context)) > 1})


def rope_tables(graph: DecoderGraph) -> dict[str, dict[str, Any]]:
    """Distinct rotary tables -> their input names and data; layer kinds that share a table share inputs.

    Returns {suffix: {"kinds": [...], "inv_freq": [...], "scale": float, "inputs": [cos_name, sin_name]}}.
    """
    tables: dict[str, dict[str, Any]] = {}
    for kind in sorted(graph.rope, key=lambda k: k == SLIDING):  # full attention first: it gets plain names
        inv, scale = graph.rope[kind]
        for table in tables.values():
            if table["scale"] == scale and np.array_equal(table["inv_freq"], inv.numpy()):
                table["kinds"].append(kind)
                break
        else:
            suffix = "" if not tables else f"_{len(tables)}"
            tables[suffix] = {"kinds": [kind], "inv_freq": inv.numpy().astype(np.float32), "scale": scale,
                              "inputs": [f"rope_cos{suffix}", f"rope_sin{suffix}"]}
    return tables


class StatefulDecoder(nn.Module):
    """Re-wires a transformers text model's own submodules (through DecoderGraph) around a KV cache held
    in two buffers, which the converter turns into Core ML states. One module serves both functions:
    only the declared shapes differ.

    ``cache_dtype`` float16 is what gets converted (Core ML states are fp16); float32 gives the exact
    math for parity tests of the wiring alone.
    """

    def __init__(self, language_model: nn.Module, max_context: int, cache_dtype: torch.dtype = torch.float16):
        super().__init__()
        self.core = DecoderGraph(language_model)
        g = self.core
        self.max_context = int(max_context)
        self.tables = rope_tables(g)
        # layer index -> index of its rope table among the forward's rope arguments
        suffixes = list(self.tables)
        self.layer_rope = [next(i for i, s in enumerate(suffixes) if kind in self.tables[s]["kinds"])
                           for kind in g.layer_types]
        shape = (g.num_layers, 1, g.num_kv_heads, self.max_context, g.head_dim)
        self.register_buffer("key_cache", torch.zeros(shape, dtype=cache_dtype))
        self.register_buffer("value_cache", torch.zeros(shape, dtype=cache_dtype))

    @property
    def hidden_size(self) -> int:
        return int(self.core.model.layers[0].self_attn.q_proj.in_features)

    def input_names(self) -> list[str]:
        names = ["inputs_embeds", "attention_bias"]
        if self.core.has_sliding:
            names.append("attention_bias_sliding")
        for table in self.tables.values():
            names += table["inputs"]
        return names + ["position", "logits_index"]

    def input_shapes(self, t: int) -> dict[str, list[int]]:
        """Input name -> shape for T = t new rows (``input_names()`` order)."""
        c, hd = self.max_context, self.core.head_dim
        shapes = {"inputs_embeds": [1, t, self.hidden_size], "attention_bias": [1, 1, t, c],
                  "attention_bias_sliding": [1, 1, t, c]}
        for table in self.tables.values():
            shapes.update({name: [1, t, hd] for name in table["inputs"]})
        shapes.update(position=[1], logits_index=[1])
        return {name: shapes[name] for name in self.input_names()}

    def reset(self) -> None:
        self.key_cache.zero_()
        self.value_cache.zero_()

    def _attention(self, i: int, attn: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   bias: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        g = self.core
        hd, nh, nkv = g.head_dim, g.num_heads, g.num_kv_heads
        t, c = x.shape[1], self.max_context
        begin = position[0]  # a traced value: the converter emits a dynamic slice_update into the state
        q, k, v = rotated_qkv(attn, x, nh, nkv, hd, cos, sin)
        # Write the T new rows at [position, position + T), then attend over all C rows (the mask
        # hides rows outside the context and padding rows).
        self.key_cache[i:i + 1, :, :, begin:begin + t, :] = k.transpose(1, 2)[None].to(self.key_cache.dtype)
        self.value_cache[i:i + 1, :, :, begin:begin + t, :] = v.transpose(1, 2)[None].to(self.value_cache.dtype)
        keys = self.key_cache[i].to(x.dtype)  # [1, nkv, C, hd]
        values = self.value_cache[i].to(x.dtype)  # [1, nkv, C, hd]
        # Query head h uses kv head h // group (transformers' repeat_kv order).
        qg = q.transpose(1, 2).reshape(1, nkv, -1, hd)  # [1, nkv, group*T, hd]
        scores = torch.matmul(qg, keys.transpose(2, 3)) * attn.scaling  # [1, nkv, group*T, C]
        cap = getattr(attn, "attn_logit_softcapping", None)
        if cap:
            scores = torch.tanh(scores / cap) * cap
        scores = scores.reshape(1, nh, t, c) + bias  # [1, nh, T, C]
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs.reshape(1, nkv, -1, c), values)  # [1, nkv, group*T, hd]
        out = out.reshape(1, nh, t, hd).transpose(1, 2).reshape(1, t, nh * hd)
        return attn.o_proj(out)

    def forward(self, inputs_embeds: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Arguments in ``input_names()`` order; returns logits [1, 1, vocab]."""
        g = self.core
        args = list(args)
        bias = args.pop(0)
        bias_sliding = args.pop(0) if g.has_sliding else bias
        ropes = [(args.pop(0)[:, :, None, :], args.pop(0)[:, :, None, :]) for _ in self.tables]  # [1, T, 1, hd]
        position, logits_index = args
        h = inputs_embeds  # [1, T, D]
        for i, layer in enumerate(g.model.layers):
            mask = bias_sliding if g.layer_types[i] == SLIDING else bias
            residual = h
            a = self._attention(i, layer.self_attn, layer.input_layernorm(h), *ropes[self.layer_rope[i]], mask,
                                position)
            h = finish_layer(layer, residual, a)
        h = torch.index_select(h, 1, logits_index)  # [1, 1, D]: the norm is per row, so gather first
        logits = g.lm_head(g.model.norm(h))
        if g.final_softcap:
            logits = torch.tanh(logits / g.final_softcap) * g.final_softcap
        return logits


def example_inputs(module: StatefulDecoder, t: int) -> tuple[torch.Tensor, ...]:
    """Trace inputs for T = t: zeros / ones of the declared shapes, written at a non-zero position."""
    args = []
    for name, shape in module.input_shapes(t).items():
        if name == "position":
            args.append(torch.tensor([min(2, module.max_context - t)], dtype=torch.int32))
        elif name == "logits_index":
            args.append(torch.tensor([t - 1], dtype=torch.int32))
        else:
            args.append(torch.ones(shape) if name.startswith("rope_cos") else torch.zeros(shape))
    return tuple(args)


def declared_functions(module: StatefulDecoder, sizes: list[int]) -> dict[str, dict[str, Any]]:
    """function -> {"tokens": [T...], "inputs": {name: {"dtype", "shape"[, "enumerated"]}}}, in the form
    ``io_spec`` reads back from a saved package (the enumerated default is the smallest size)."""
    def spec(name: str, shapes: list[list[int]]) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": "int32" if name in ("position", "logits_index") else "float32",
                               "shape": shapes[0]}
        if any(s != shapes[0] for s in shapes):
            out["enumerated"] = shapes
        return out

    functions = {DECODE: {"tokens": [1], "inputs": {n: spec(n, [s]) for n, s in module.input_shapes(1).items()}}}
    if sizes:
        per_size = [module.input_shapes(t) for t in sizes]
        functions[PREFILL] = {"tokens": list(sizes),
                              "inputs": {n: spec(n, [p[n] for p in per_size]) for n in module.input_names()}}
    return functions


def _tensor_types(declared: dict[str, Any]) -> list:
    coremltools = ct()
    types = []
    for name, spec in declared.items():
        shape = tuple(spec["shape"])
        if "enumerated" in spec:
            shape = coremltools.EnumeratedShapes(shapes=[tuple(s) for s in spec["enumerated"]], default=shape)
        types.append(coremltools.TensorType(name=name, shape=shape,
                                            dtype=np.int32 if spec["dtype"] == "int32" else np.float32))
    return types


def decoder_module(language_model: nn.Module, max_context: int, cache_dtype: torch.dtype = torch.float16) -> nn.Module:
    """The stateful module of a text model: KV caches only, or with recurrent states for linear-attention
    layers (decoder_hybrid.py)."""
    if "linear_attention" in (getattr(language_model.config, "layer_types", None) or ()):
        from .decoder_hybrid import StatefulHybridDecoder

        return StatefulHybridDecoder(language_model, max_context, cache_dtype)
    return StatefulDecoder(language_model, max_context, cache_dtype)


def state_names(module: nn.Module) -> list[str]:
    from .decoder_hybrid import STATES

    return [n for n in STATES if hasattr(module, n)]


def export_decoder(ref: Any, root: str | Path, dtype: str = "fp16", max_context: int = 2048,
                   package: str = "decoder.mlpackage", sizes: list[int] | None = None) -> Part:
    """Convert ``ref.language_model`` to the multifunction ``root/package`` and describe it."""
    coremltools = ct()
    module = decoder_module(ref.language_model, max_context).float().eval()
    sizes = module_sizes(module, max_context, sizes)
    declared = declared_functions(module, sizes)
    states = [coremltools.StateType(wrapped_type=coremltools.TensorType(shape=tuple(getattr(module, n).shape),
                                                                        dtype=np.float16), name=n)
              for n in state_names(module)]
    with tempfile.TemporaryDirectory(dir=root, prefix=".decoder-") as tmp:
        singles = {}
        for name, function in declared.items():
            # Each function is converted on its own, then the two are combined with shared weights.
            singles[name] = Path(tmp) / f"{name}.mlpackage"
            convert(module, example_inputs(module, function["tokens"][0]), _tensor_types(function["inputs"]),
                    [coremltools.TensorType(name="logits", dtype=np.float32)], singles[name], dtype, states=states)
            module.reset()  # tracing wrote example rows into the buffers
        save_functions(singles, Path(root) / package, default=DECODE)
    functions = {}
    for name, function in declared.items():
        ins, outs, sts = function_io_spec(Path(root) / package, name)
        functions[name] = {"tokens": function["tokens"], "inputs": ins, "outputs": outs, "states": sts}
    dec = functions[DECODE]
    return Part(file=package_manifest(package), format="mlpackage", inputs=dec["inputs"], outputs=dec["outputs"],
                dtype=dtype, data_files=[package], binding={"states": dec["states"],
                                                            **decoder_binding(module, sizes, functions)},
                runtime={"compute_units": DEFAULT_COMPUTE_UNITS, "kv_state_dtype": "float16"},
                info={"kv_layout": "LBNSH"})


def module_sizes(module: nn.Module, max_context: int, sizes: list[int] | None = None) -> list[int]:
    """The prefill lengths: enumerated for attention-only models; ONE fixed chunk for hybrid ones (64 rows, or
    the largest power of 2 up to 64 among ``sizes``: the chunk's triangular solve is traced at its size)."""
    if hasattr(module, "recurrent_state"):
        from .decoder_hybrid import CHUNK

        fits = [s for s in (sizes or [CHUNK]) if 2 <= s <= min(CHUNK, max_context) and s & (s - 1) == 0]
        return [max(fits)] if fits else []
    return prefill_sizes(max_context) if sizes is None else prefill_sizes(max_context, sizes)


def decoder_binding(module: StatefulDecoder, sizes: list[int] | None = None,
                    functions: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the runtime needs to drive the model. Without ``functions`` (read back from a saved
    package) the declared ones are recorded, so tests can drive the modules without converting."""
    sizes = module_sizes(module, module.max_context, sizes)
    if hasattr(module, "recurrent_state"):  # hybrid: one causal mask, partial / M-RoPE tables, recurrent states
        return {"default_function": DECODE, "functions": functions or declared_functions(module, sizes),
                "position_input": "position", "mask_width": module.max_context, "masks": {"attention_bias": None},
                "mask_value": MASK_VALUE, "logits_index": "logits_index", **module.binding(), "prefill_sizes": sizes}
    g = module.core
    masks = {"attention_bias": None}
    if g.has_sliding:
        masks["attention_bias_sliding"] = g.sliding_window
    return {
        # One state, shared by every function: the runtime makes it once (from the default function)
        # and passes it to each call. Rows [position, position + T) are written, all C rows attended.
        "default_function": DECODE, "functions": functions or declared_functions(module, sizes),
        "prefill_sizes": sizes, "position_input": "position", "mask_width": module.max_context,
        # mask input name -> sliding window (None = full attention); built from block_ids exactly as
        # for the ONNX decoder: allowed(q, k) = (k <= q or same block) and (window is None or q - k < window).
        "masks": masks, "mask_value": MASK_VALUE, "logits_index": "logits_index",
        "rope": [{"inputs": t["inputs"], "inv_freq": [float(x) for x in t["inv_freq"]], "scale": t["scale"],
                  "layer_kinds": t["kinds"],
                  # M-RoPE: the position stream of each frequency (positions [3, T]); absent for one stream
                  **({"streams": g.stream_of_freq.tolist()} if g.stream_of_freq is not None else {})}
                 for t in module.tables.values()],
    }
