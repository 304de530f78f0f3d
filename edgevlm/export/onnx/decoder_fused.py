"""The text decoder as a fused ONNX graph, written op by op from the transformers modules' weights.

Same contract as the traced graph (onnx/decoder.py) (inputs, outputs, sequence-major KV, new rows
only, masks and ``logits_index`` as inputs), so the runtime cannot tell them apart. Per layer:

    x ─ SkipSimplifiedLayerNorm ─ MatMul(qkv packed) ─ Split ─ [RMSNorm q/k] ─ RotaryEmbedding(q, k)
      ─ Concat(past, new) ─ Attention(mask input, grouped query rows, scale, softcap) ─ MatMul(o)
      ─ [RMSNorm] ─ SkipSimplifiedLayerNorm ─ MatMul(gate|up packed) ─ Split ─ act·up ─ MatMul(down) ─ [RMSNorm]

Why: a batch-1 decode step of a 4-bit model takes 10 to 20 ms on a CPU, and the traced graph spends
about half of it outside the matmuls, in ~1,300 small nodes (rotary, attention and norms as chains of
Mul/Concat/Reshape/Transpose). This graph has 22 to 36 nodes per layer (~600 in all after the
optimizer, against 1,300 to 1,500; docs/decoder_graph.md). The ops are standard ONNX
opset 23 (``Attention``, ``RotaryEmbedding``, ``RMSNormalization``: onnxruntime >= 1.23) plus
onnxruntime's ``SkipSimplifiedLayerNormalization`` and ``QuickGelu``. ``Attention`` takes an additive
mask, so prefix-LM and bidirectional image blocks stay one graph (the fused
GroupQueryAttention cannot: it is always causal on CPU).

Per-family differences are read from the modules as data: effective RMSNorm weights are probed (Gemma's
``1 + w`` needs no special case), the activation is identified numerically, q/k norms and sandwich
norms by their presence, ``attn.scaling`` and softcaps from the modules and config.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ...errors import EdgeVLMError

OPSET = 23
MS = "com.microsoft"


class _Builder:
    """Accumulates nodes and initializers; every helper returns the name of what it produced."""

    def __init__(self, data_file: Any = None, data_name: str = "") -> None:
        self.nodes: list[Any] = []
        self.weights: list[Any] = []
        self._count = 0
        self._data, self._data_name = data_file, data_name  # external weights: written as they come

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "", **attrs) -> Any:
        from onnx import helper

        if isinstance(outputs, int):
            outputs = [self.fresh_name(op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh_name(op_type + "_node"),
                                           domain=domain, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def weight(self, name: str, array: np.ndarray) -> str:
        """An initializer. With a data file, tensors of 1 kB and more go straight to it, so the model never
        holds a second copy of the weights in memory (a 1.5B fp32 decoder would need 4 copies, 24 GB)."""
        from onnx import TensorProto, helper, numpy_helper

        array = np.ascontiguousarray(array)
        if self._data is None or array.nbytes < 1024:
            self.weights.append(numpy_helper.from_array(array, name))
            return name
        offset = -self._data.tell() % 4096  # page-aligned, so onnxruntime can map the tensor
        self._data.write(b"\0" * offset)
        offset = self._data.tell()
        self._data.write(memoryview(array).cast("B"))
        tensor = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype), dims=array.shape,
                             data_location=TensorProto.EXTERNAL)
        for key, value in (("location", self._data_name), ("offset", str(offset)), ("length", str(array.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        self.weights.append(tensor)
        return name

    def fresh_name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def rms_weight(norm: torch.nn.Module) -> tuple[np.ndarray, float]:
    """The effective per-channel weight of any RMSNorm module and its epsilon.

    norm(ones) = rsqrt(1 + eps) * w_eff for every RMSNorm variant (Llama's ``w``, Gemma's ``1 + w``),
    so probing with ones recovers w_eff without knowing which variant it is.
    """
    eps = float(getattr(norm, "variance_epsilon", None) or getattr(norm, "eps"))
    dim = norm.weight.shape[-1]
    with torch.no_grad():
        probe = norm(torch.ones(1, dim, dtype=torch.float32)).double() * math.sqrt(1.0 + eps)
    return probe[0].float().numpy(), eps


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": torch.nn.functional.silu,
    "gelu_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    "gelu": torch.nn.functional.gelu,
}


def identify_activation(act: Callable[[torch.Tensor], torch.Tensor]) -> str:
    """Which known activation ``act`` computes, decided numerically (no class-name or config lookups)."""
    x = torch.linspace(-6, 6, 241)
    with torch.no_grad():
        y = act(x)
        for name, fn in _ACTIVATIONS.items():
            if torch.allclose(y, fn(x), atol=1e-6, rtol=0):
                return name
    raise EdgeVLMError(f"the decoder's MLP activation ({act}) is none of {sorted(_ACTIVATIONS)}; export with "
                       "--decoder-graph portable, which traces the module as it is")


def _activation(b: _Builder, x: str, kind: str) -> str:
    if kind == "silu":  # x * sigmoid(1.0 * x) in one onnxruntime op
        return b.op("QuickGelu", [x], domain=MS, alpha=1.0)
    return b.op("Gelu", [x], approximate="tanh" if kind == "gelu_tanh" else "none")


def _rope_tables(b: _Builder, graph: Any) -> dict[str, tuple[str, str]]:
    """cos/sin [1, T, head_dim/2] of this call's positions, per layer type, computed in the graph in float32
    exactly as transformers does (position * inv_freq, then cos/sin, times the attention scaling); with
    M-RoPE each frequency takes its position stream's ids first.

    Computing them per call (6 nodes, once per rope, not per layer) instead of storing a table keeps the
    file free of a max_positions x head_dim table (67 MB for Gemma 3 at 32k positions).
    """
    tables = {}
    if graph.stream_of_freq is None:
        pos = b.op("Unsqueeze", [b.op("Cast", ["position_ids"], to=1), b.weight("rope.axis", np.array([-1], np.int64))])
    else:
        # M-RoPE: position_ids [3, 1, T] -> [1, T, 3] -> each frequency's stream [1, T, hd/2]; the one
        # RotaryEmbedding op per layer then takes cos/sin of these angles like any other (exact: a gather)
        pos = b.op("Transpose", [b.op("Cast", ["position_ids"], to=1)], perm=[1, 2, 0])
        pos = b.op("Gather", [pos, b.weight("rope.stream_of_freq", graph.stream_of_freq.numpy())], axis=2)
    for kind, (inv, scale) in graph.rope.items():
        same = [k for k, (i, s) in graph.rope.items() if k in tables and s == scale and torch.equal(i, inv)]
        if same:  # Gemma 2's sliding and full layers share one table
            tables[kind] = tables[same[0]]
            continue
        freqs = b.op("Mul", [pos, b.weight(f"rope.{kind}.inv_freq", _np(inv)[None, None, :])])  # [1, T, hd/2]
        cos, sin = b.op("Cos", [freqs]), b.op("Sin", [freqs])
        if scale != 1.0:
            factor = b.weight(f"rope.{kind}.scale", np.array(scale, np.float32))
            cos, sin = b.op("Mul", [cos, factor]), b.op("Mul", [sin, factor])
        tables[kind] = (cos, sin)
    return tables


class FusedDecoderWriter:
    """Writes one ``DecoderGraph``'s modules (``text_graph.DecoderGraph``) as the fused graph."""

    def __init__(self, graph: Any, data_file: Any = None, data_name: str = ""):
        self.g = graph
        self.b = _Builder(data_file, data_name)
        self.nh, self.nkv, self.hd = graph.num_heads, graph.num_kv_heads, graph.head_dim
        self.act = identify_activation(graph.model.layers[0].mlp.act_fn)
        self.rope = _rope_tables(self.b, graph)
        self._shapes: dict[tuple[int, ...], str] = {}
        self._grouped_masks: dict[str, str] = {}

    def _shape(self, *dims: int) -> str:
        """A Reshape target [1, -1, *dims], stored once."""
        return self._dims(1, -1, *dims)

    def _dims(self, *dims: int) -> str:
        """An int64 constant (a shape or repeats), stored once."""
        if dims not in self._shapes:
            name = "dims." + "x".join(str(d) if d >= 0 else "n" for d in dims)
            self._shapes[dims] = self.b.weight(name, np.array(dims, np.int64))
        return self._shapes[dims]

    def _norm(self, x: str, norm: torch.nn.Module, name: str) -> str:
        w, eps = rms_weight(norm)
        return self.b.op("RMSNormalization", [x, self.b.weight(name, w)], axis=-1, epsilon=eps)

    def _skip_norm(self, x: str, residual: str, norm: torch.nn.Module, name: str) -> tuple[str, str]:
        """(norm(x + residual), x + residual) in one op."""
        w, eps = rms_weight(norm)
        outputs = [self.b.fresh_name("skipnorm"), "", "", self.b.fresh_name("residual")]  # mean, inv_std unused
        self.b.op("SkipSimplifiedLayerNormalization", [x, residual, self.b.weight(name, w)], outputs,
                  domain=MS, epsilon=eps)
        return outputs[0], outputs[3]

    def _head_norm(self, x: str, norm: torch.nn.Module, heads: int, name: str) -> str:
        """Qwen 3 / Gemma 3 q/k norm: RMSNorm over head_dim of each head."""
        b = self.b
        per_head = b.op("Reshape", [x, self._shape(heads, self.hd)])  # [1, T, heads, hd]
        return b.op("Reshape", [self._norm(per_head, norm, name), self._shape(heads * self.hd)])

    def _linear(self, x: str, modules: list[torch.nn.Module], name: str) -> str:
        """One MatMul for several projections of the same input (packed q|k|v, gate|up), bias if any."""
        b = self.b
        w = np.concatenate([_np(m.weight).T for m in modules], axis=1)  # [in, sum(out)]
        y = b.op("MatMul", [x, b.weight(f"{name}.weight", w)])
        if any(m.bias is not None for m in modules):
            bias = np.concatenate([_np(m.bias) if m.bias is not None else np.zeros(m.out_features, np.float32)
                                   for m in modules])
            y = b.op("Add", [y, b.weight(f"{name}.bias", bias)])
        return y

    def attention(self, i: int, x: str, mask: str) -> str:
        """Attention block of layer i: output [1, T, D]; its new keys/values are the graph outputs
        present_key.i / present_value.i."""
        b, g, nh, nkv, hd = self.b, self.g, self.nh, self.nkv, self.hd
        attn = g.model.layers[i].self_attn
        p = f"layers.{i}"
        qkv = self._linear(x, [attn.q_proj, attn.k_proj, attn.v_proj], f"{p}.qkv")  # [1, T, (nh+2nkv)*hd]
        split = b.weight(f"{p}.qkv.split", np.array([nh * hd, nkv * hd, nkv * hd], np.int64))
        q, k, v = b.op("Split", [qkv, split], 3, axis=-1)  # [1,T,nh*hd], [1,T,nkv*hd], [1,T,nkv*hd]
        if getattr(attn, "q_norm", None) is not None:
            q = self._head_norm(q, attn.q_norm, nh, f"{p}.q_norm")
            k = self._head_norm(k, attn.k_norm, nkv, f"{p}.k_norm")
        cos, sin = self.rope[g.layer_types[i]]
        q = b.op("RotaryEmbedding", [q, cos, sin], num_heads=nh)  # rotate-half layout (interleaved=0)
        k = b.op("RotaryEmbedding", [k, cos, sin], num_heads=nkv)
        kv4, kv3 = self._shape(nkv, hd), self._shape(nkv * hd)
        b.op("Reshape", [k, kv4], [f"present_key.{i}"])  # [1, T, nkv, hd]
        b.op("Reshape", [v, kv4], [f"present_value.{i}"])
        keys = b.op("Concat", [b.op("Reshape", [f"past_key.{i}", kv3]), k], axis=1)  # [1, P+T, nkv*hd]
        values = b.op("Concat", [b.op("Reshape", [f"past_value.{i}", kv3]), v], axis=1)
        cap = float(getattr(attn, "attn_logit_softcapping", None) or 0.0)
        group = nh // nkv
        if group > 1:
            # Grouped queries: the `group` query heads of one kv head become `group` x T query rows of
            # that head, so Attention runs as nkv heads over the unrepeated cache. onnxruntime 1.32's GQA
            # path is 1.5 to 1.9x slower per layer (174 vs 90 us at 1025 keys, 14/2 heads).
            q = b.op("Reshape", [q, self._shape(nkv, group, hd)])  # [1, T, nkv, group, hd]
            q = b.op("Transpose", [q], perm=[0, 3, 1, 2, 4])  # [1, group, T, nkv, hd]
            q = b.op("Reshape", [q, self._shape(nkv * hd)])  # [1, group*T, nkv*hd]: row g*T + t
            mask = self._grouped_mask(mask, group)  # [1, 1, group*T, P+T]
        out = b.op("Attention", [q, keys, values, mask], q_num_heads=nkv, kv_num_heads=nkv,
                   scale=float(attn.scaling), softcap=cap)  # [1, group*T, nkv*hd]
        if group > 1:
            out = b.op("Reshape", [out, self._dims(1, group, -1, nkv, hd)])  # [1, group, T, nkv, hd]
            out = b.op("Transpose", [out], perm=[0, 2, 3, 1, 4])  # [1, T, nkv, group, hd]
            out = b.op("Reshape", [out, self._shape(nh * hd)])  # [1, T, nh*hd]: head h = kv*group + g
        return self._linear(out, [attn.o_proj], f"{p}.o_proj")

    def _grouped_mask(self, mask: str, group: int) -> str:
        """The mask's rows repeated for each query group, [1, 1, group*T, S]; made once per mask input."""
        if mask not in self._grouped_masks:
            self._grouped_masks[mask] = self.b.op("Tile", [mask, self._dims(1, 1, group, 1)])
        return self._grouped_masks[mask]

    def mlp(self, i: int, x: str) -> str:
        b, mlp = self.b, self.g.model.layers[i].mlp
        p = f"layers.{i}.mlp"
        ff = mlp.gate_proj.out_features
        gate, up = b.op("Split", [self._linear(x, [mlp.gate_proj, mlp.up_proj], f"{p}.gate_up"),
                                  b.weight(f"{p}.split", np.array([ff, ff], np.int64))], 2, axis=-1)
        return self._linear(b.op("Mul", [_activation(b, gate, self.act), up]), [mlp.down_proj], f"{p}.down_proj")

    def build(self, mask_of_layer: Callable[[int], str]) -> tuple[list[Any], list[Any]]:
        """Nodes and initializers of the whole decoder; ``logits`` and ``present_*`` are the outputs."""
        b, g = self.b, self.g
        layers = g.model.layers
        residual = "inputs_embeds"  # [1, T, D]
        x = self._norm(residual, layers[0].input_layernorm, "layers.0.input_layernorm")
        for i, layer in enumerate(layers):
            a = self.attention(i, x, mask_of_layer(i))
            sandwich = hasattr(layer, "pre_feedforward_layernorm")  # sandwich norms (Gemma 2 and 3 text models)
            if sandwich:
                a = self._norm(a, layer.post_attention_layernorm, f"layers.{i}.post_attention_layernorm")
            pre_mlp = layer.pre_feedforward_layernorm if sandwich else layer.post_attention_layernorm
            x, residual = self._skip_norm(a, residual, pre_mlp, f"layers.{i}.pre_mlp_norm")
            m = self.mlp(i, x)
            if sandwich:
                m = self._norm(m, layer.post_feedforward_layernorm, f"layers.{i}.post_feedforward_layernorm")
            last = i + 1 == len(layers)
            x, residual = self._skip_norm(m, residual, g.model.norm if last else layers[i + 1].input_layernorm,
                                          "norm" if last else f"layers.{i + 1}.input_layernorm")
        rows = b.op("Gather", [x, "logits_index"], axis=1)  # [1, K, D]
        head = b.weight("lm_head.weight", _np(g.lm_head.weight).T)  # [D, vocab]
        if g.final_softcap:
            cap = b.weight("final_softcap", np.array(g.final_softcap, np.float32))
            z = b.op("Tanh", [b.op("Div", [b.op("MatMul", [rows, head]), cap])])
            b.op("Mul", [z, cap], ["logits"])
        else:
            b.op("MatMul", [rows, head], ["logits"])
        return b.nodes, b.weights


def build_fused_model(graph: Any, input_names: list[str], data_file: Any = None, data_name: str = "") -> Any:
    """The fused decoder as an in-memory ``onnx.ModelProto`` with the traced graph's I/O contract."""
    from onnx import TensorProto, helper

    from ..text_graph import SLIDING

    writer = FusedDecoderWriter(graph, data_file, data_name)
    nodes, weights = writer.build(lambda i: "attention_bias_sliding"
                                  if graph.layer_types[i] == SLIDING else "attention_bias")
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    hidden = graph.model.layers[0].self_attn.q_proj.in_features
    shapes = {"inputs_embeds": (f32, [1, "seq", hidden]),
              "position_ids": (i64, [1, "seq"] if graph.position_streams == 1 else [graph.position_streams, 1, "seq"]),
              "attention_bias": (f32, [1, 1, "seq", "total"]), "attention_bias_sliding": (f32, [1, 1, "seq", "total"]),
              "logits_index": (i64, ["n_logits"])}
    kv = [1, "past", graph.num_kv_heads, graph.head_dim]
    inputs = [helper.make_tensor_value_info(n, *shapes[n]) for n in input_names if n in shapes]
    outputs = [helper.make_tensor_value_info("logits", f32, [1, "n_logits", int(graph.lm_head.weight.shape[0])])]
    for i in range(graph.num_layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_{kind}.{i}", f32, kv))
            outputs.append(helper.make_tensor_value_info(f"present_{kind}.{i}", f32, [1, "seq", *kv[2:]]))
    model = helper.make_model(helper.make_graph(nodes, "edgevlm_decoder", inputs, outputs, weights),
                              opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
                              producer_name="edgevlm")
    model.ir_version = 11  # opset 23's IR version: onnxruntime >= 1.23 loads it
    return model


def write_fused_decoder(graph: Any, path: Path, input_names: list[str], dtype: str) -> Path:
    """``path`` (+ ``<name>.data`` holding every weight above manifest.EXTERNAL_DATA_THRESHOLD)."""
    import onnx

    from . import plumbing as onnx_plumbing

    path = Path(path)
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    weight_bytes = sum(p.numel() * p.element_size() for p in graph.parameters()) // (2 if dtype == "fp16" else 1)
    if dtype == "fp32" and weight_bytes > onnx_plumbing.EXTERNAL_DATA_THRESHOLD:
        with open(data, "wb") as data_file:  # weights stream to disk while the graph is built
            model = build_fused_model(graph, input_names, data_file=data_file, data_name=data.name)
        onnx.save_model(model, str(path))
        return path
    model = build_fused_model(graph, input_names)
    if dtype == "fp16":
        from .fp16 import to_fp16

        model = to_fp16(model)  # float32 I/O, norms and rotary angles (why: fp16.py)
    onnx_plumbing.save_model(model, path, large=weight_bytes > onnx_plumbing.EXTERNAL_DATA_THRESHOLD)
    return path
