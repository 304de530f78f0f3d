"""The text decoder as a stateful Core ML model: the KV cache lives in the model as ``ct.StateType``.

Model contract (batch 1; T new tokens, S = tokens in the cache after this call = n_past + T):
  inputs_embeds          float32 [1, T, hidden]
  attention_bias         float32 [1, 1, T, S]      additive mask (0 / MASK_VALUE), full-attention layers
  attention_bias_sliding float32 [1, 1, T, S]      same for sliding-window layers (only if the model has them)
  rope_cos, rope_sin     float32 [1, T, head_dim]  rotary tables of the T positions (one pair per distinct rope)
  logits_index           int32 [K]                 rows of the T positions whose logits are computed
states:
  key_cache, value_cache float16 [layers, 1, kv_heads, max_context, head_dim]  (Core ML states are fp16 only)
outputs:
  logits                 float32 [1, K, vocab]

Why this shape:
- The write position is not an input: it is ``S - T``, read from the mask's and the embeddings' shapes
  (the pattern of Apple's stateful Llama example), so one function with ranged T and S serves both
  prefill (T > 1) and decode (T = 1), and the model writes the new rows into its own state in place.
- Masks are inputs (as in the ONNX decoder), so causal, PaliGemma's prefix-LM and Gemma 3's
  bidirectional image blocks are one model; the runtime builds them from ``block_ids`` with numpy.
- RoPE cos/sin are inputs computed by the runtime in float32: with fp16 compute precision an
  in-model ``position * inv_freq`` cannot even represent positions above 2048 exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..manifest import Part
from .coreml_common import DEFAULT_COMPUTE_UNITS, MASK_VALUE, convert, ct, io_spec, package_manifest
from .onnx_decoder import SLIDING, DecoderGraph, _position_offset, finish_layer, rotated_qkv


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
    in two buffers, which the converter turns into Core ML states.

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

    def input_names(self) -> list[str]:
        names = ["inputs_embeds", "attention_bias"]
        if self.core.has_sliding:
            names.append("attention_bias_sliding")
        for table in self.tables.values():
            names += table["inputs"]
        return names + ["logits_index"]

    def reset(self) -> None:
        self.key_cache.zero_()
        self.value_cache.zero_()

    def _attention(self, i: int, attn: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   bias: torch.Tensor) -> torch.Tensor:
        g = self.core
        hd, nh, nkv = g.head_dim, g.num_heads, g.num_kv_heads
        t = x.shape[1]
        end = bias.shape[-1]  # S = n_past + T
        begin = end - t
        q, k, v = rotated_qkv(attn, x, nh, nkv, hd, cos, sin)
        # Write the T new rows into the cache state, then attend over rows [0, S).
        self.key_cache[i:i + 1, :, :, begin:end, :] = k.transpose(1, 2)[None].to(self.key_cache.dtype)
        self.value_cache[i:i + 1, :, :, begin:end, :] = v.transpose(1, 2)[None].to(self.value_cache.dtype)
        keys = self.key_cache[i, :, :, :end, :].to(x.dtype)  # [1, nkv, S, hd]
        values = self.value_cache[i, :, :, :end, :].to(x.dtype)  # [1, nkv, S, hd]
        # Query head h uses kv head h // group (transformers' repeat_kv order).
        qg = q.transpose(1, 2).reshape(1, nkv, -1, hd)  # [1, nkv, group*T, hd]
        scores = torch.matmul(qg, keys.transpose(2, 3)) * attn.scaling  # [1, nkv, group*T, S]
        cap = getattr(attn, "attn_logit_softcapping", None)
        if cap:
            scores = torch.tanh(scores / cap) * cap
        scores = scores.reshape(1, nh, t, end) + bias  # [1, nh, T, S]
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs.reshape(1, nkv, -1, end), values)  # [1, nkv, group*T, hd]
        out = out.reshape(1, nh, t, hd).transpose(1, 2).reshape(1, t, nh * hd)
        return attn.o_proj(out)

    def forward(self, inputs_embeds: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Arguments in ``input_names()`` order; returns logits [1, K, vocab]."""
        g = self.core
        args = list(args)
        bias = args.pop(0)
        bias_sliding = args.pop(0) if g.has_sliding else bias
        ropes = [(args.pop(0)[:, :, None, :], args.pop(0)[:, :, None, :]) for _ in self.tables]  # [1, T, 1, hd]
        logits_index = args.pop(0)
        h = inputs_embeds  # [1, T, D]
        for i, layer in enumerate(g.model.layers):
            mask = bias_sliding if g.layer_types[i] == SLIDING else bias
            residual = h
            a = self._attention(i, layer.self_attn, layer.input_layernorm(h), *ropes[self.layer_rope[i]], mask)
            h = finish_layer(layer, residual, a)
        h = g.model.norm(h)
        h = torch.index_select(h, 1, logits_index)  # [1, K, D]
        logits = g.lm_head(h)
        if g.final_softcap:
            logits = torch.tanh(logits / g.final_softcap) * g.final_softcap
        return logits


def example_inputs(module: StatefulDecoder, t: int = 3, past: int = 2) -> tuple[torch.Tensor, ...]:
    g = module.core
    bias = torch.zeros(1, 1, t, past + t)
    args: list[torch.Tensor] = [torch.zeros(1, t, g.model.layers[0].self_attn.q_proj.in_features), bias]
    if g.has_sliding:
        args.append(bias.clone())
    for _ in module.tables:
        args += [torch.ones(1, t, g.head_dim), torch.zeros(1, t, g.head_dim)]
    return (*args, torch.tensor([t - 1], dtype=torch.int32))


def export_decoder(ref: Any, root: str | Path, dtype: str = "fp16", max_context: int = 2048,
                   package: str = "decoder.mlpackage") -> Part:
    """Convert ``ref.language_model`` to ``root/package`` and describe it."""
    coremltools = ct()
    module = StatefulDecoder(ref.language_model, max_context).float().eval()
    g = module.core
    hidden = g.model.layers[0].self_attn.q_proj.in_features
    seq = coremltools.RangeDim(lower_bound=1, upper_bound=max_context, default=1)
    total = coremltools.RangeDim(lower_bound=1, upper_bound=max_context, default=1)
    n_logits = coremltools.RangeDim(lower_bound=1, upper_bound=max_context, default=1)
    f32 = np.float32
    specs = {"inputs_embeds": ((1, seq, hidden), f32), "attention_bias": ((1, 1, seq, total), f32),
             "attention_bias_sliding": ((1, 1, seq, total), f32), "logits_index": ((n_logits,), np.int32)}
    for table in module.tables.values():
        for name in table["inputs"]:
            specs[name] = ((1, seq, g.head_dim), f32)
    inputs = [coremltools.TensorType(name=n, shape=specs[n][0], dtype=specs[n][1]) for n in module.input_names()]
    cache_shape = tuple(module.key_cache.shape)
    states = [coremltools.StateType(wrapped_type=coremltools.TensorType(shape=cache_shape, dtype=np.float16), name=n)
              for n in ("key_cache", "value_cache")]
    example = example_inputs(module)
    model = convert(module, example, inputs, [coremltools.TensorType(name="logits", dtype=f32)],
                    Path(root) / package, dtype, states=states)
    module.reset()  # tracing wrote example rows into the buffers
    ins, outs, sts = io_spec(model)
    return Part(file=package_manifest(package), format="mlpackage", inputs=ins, outputs=outs, dtype=dtype,
                extra={"package": package, "compute_units": DEFAULT_COMPUTE_UNITS, "states": sts,
                       **decoder_extra(module, ref)})


def decoder_extra(module: StatefulDecoder, ref: Any) -> dict[str, Any]:
    """What the runtime needs to drive the model (no conversion needed to compute it)."""
    g = module.core
    masks = {"attention_bias": None}
    if g.has_sliding:
        masks["attention_bias_sliding"] = g.sliding_window
    return {
        "num_layers": g.num_layers, "num_kv_heads": g.num_kv_heads, "head_dim": g.head_dim,
        "hidden_size": g.model.layers[0].self_attn.q_proj.in_features, "vocab_size": int(g.lm_head.weight.shape[0]),
        "kv_layout": "LBNSH", "kv_state_dtype": "float16", "kv_write_position": "S - T",
        "max_context": module.max_context, "position_offset": _position_offset(ref),
        # mask input name -> sliding window (None = full attention); built from block_ids exactly as
        # for the ONNX decoder: allowed(q, k) = (k <= q or same block) and (window is None or q - k < window).
        "masks": masks, "mask_value": MASK_VALUE, "logits_index_input": "logits_index",
        "rope": [{"inputs": t["inputs"], "inv_freq": [float(x) for x in t["inv_freq"]], "scale": t["scale"],
                  "layer_kinds": t["kinds"]} for t in module.tables.values()],
    }
