"""A hybrid text decoder (Qwen3.5: Gated DeltaNet linear-attention layers + gated full-attention layers) as ONNX.

Chosen by onnx/decoder.py for a text model whose ``layer_types`` name ``linear_attention`` layers.
Graph contract (float32 at the boundary, batch 1), the fused decoder's (onnx/decoder.py) plus states:
  inputs_embeds        [1, T, hidden]
  position_ids         int64 [1, T] ("1d"), or [3, 1, T] ("mrope": temporal / height / width streams)
  attention_bias       [1, 1, T, P+T]   additive mask of the full-attention layers (0 / -large)
  logits_index         int64 [K]        rows of the T positions whose logits are computed
  full-attention layer i:   past_key.i / past_value.i [1, P, kv_heads, head_dim]   (sequence-major)
  linear-attention layer i: past_conv.i [1, conv_kernel-1, conv_dim], past_recurrent.i [1, v_heads, k_dim, v_dim]
outputs:
  logits               [1, K, vocab]
  present_key.i / present_value.i [1, T, kv_heads, head_dim]   the T new rows only
  present_conv.i / present_recurrent.i                          the whole states after the T tokens

Layer numbers are the model's: a 4-layer [linear, full, linear, full] model has past_conv.0,
past_key.1, past_conv.2, past_key.3. The KV rows go into one preallocated buffer per layer as today;
a state is replaced, not appended, so the runtime keeps two buffers per state and swaps them (binding
the past one as input and the other as output) and must snapshot them to go back (NOTES.md).

Qwen3.5's full attention differs from Qwen 3's in ways read here from the modules: q_proj gives
[query | gate] per head and the output is multiplied by sigmoid(gate); q/k RMSNorm weights are
zero-centred (1 + w; rms_weight probes them); rotary covers the first ``partial_rotary_factor`` of
each head (RotaryEmbedding's rotary_embedding_dim); positions are interleaved M-RoPE streams (with
1-D positions the three streams are equal and it is plain RoPE). The layers reuse the fused decoder's
writer (packed matmuls, skip norms, the MLP); linear layers are written by gated_delta.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import CheckpointError
from ...processing.mrope import stream_of_frequency
from .decoder_fused import MS, OPSET, FusedDecoderWriter, _np
from .gated_delta import GatedDeltaWriter

LINEAR, FULL = "linear_attention", "full_attention"
POSITIONS = ("1d", "mrope")


def layer_kinds(layer_types: list[str] | None, num_layers: int) -> list[str]:
    """The config's ``layer_types``, each checked to be a kind this exporter writes."""
    if not layer_types or len(layer_types) != num_layers:
        raise CheckpointError(f"text config layer_types {layer_types!r} does not name all {num_layers} layers; "
                              "a hybrid decoder needs one entry per layer")
    for index, kind in enumerate(layer_types):
        if kind not in (LINEAR, FULL):
            raise CheckpointError(f"text config layer_types[{index}] is {kind!r}, a layer kind edgevlm cannot "
                                  f"export; known kinds: {LINEAR!r}, {FULL!r}. Check config.json's text_config.")
    return list(layer_types)


class HybridTextGraph:
    """The text model's modules as the decoder writers read them (no weight copies): ``language_model`` has
    ``.model`` (layers, norm, rotary_emb), ``.lm_head`` and ``.config``."""

    def __init__(self, language_model: torch.nn.Module, positions: str = "1d"):
        if positions not in POSITIONS:
            raise ValueError(f"positions {positions!r} is not one of {POSITIONS}")
        self.model, self.lm_head = language_model.model, language_model.lm_head
        self.config, self.positions = language_model.config, positions
        text_model, config = self.model, self.config
        self.num_layers = len(text_model.layers)
        self.layer_types = layer_kinds(getattr(config, "layer_types", None), self.num_layers)
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.head_dim
        rotary = text_model.rotary_emb
        self.inv_freq = rotary.inv_freq.detach().float().clone()  # [rotary_dim / 2]
        self.rope_scale = float(rotary.attention_scaling)
        self.mrope_section = list(getattr(rotary, "mrope_section", None) or [len(self.inv_freq), 0, 0])
        # FusedDecoderWriter writes the rope tables from ``rope``; with M-RoPE each frequency first gathers its
        # stream's position (interleaved sections, processing/mrope.stream_of_frequency), as for Qwen2-VL.
        self.rope = {FULL: (self.inv_freq, self.rope_scale)}
        self.stream_of_freq = (torch.from_numpy(stream_of_frequency(self.mrope_section, True, len(self.inv_freq)))
                               if positions == "mrope" else None)
        self.final_softcap = None

    def parameters(self):
        yield from self.model.parameters()
        yield self.lm_head.weight

    def linear_layer(self, i: int) -> Any:
        return self.model.layers[i].linear_attn


class HybridDecoderWriter(FusedDecoderWriter):
    """Writes a ``HybridTextGraph`` as one ONNX graph (see the module docstring)."""

    def __init__(self, graph: HybridTextGraph, data_file: Any = None, data_name: str = ""):
        super().__init__(graph, data_file, data_name)
        self.delta = GatedDeltaWriter(self)
        self.rotary_dim = 2 * len(graph.inv_freq)

    @property
    def graph_spec(self) -> HybridTextGraph:
        return self.g

    def attention(self, i: int, x: str, mask: str) -> str:
        """Gated full attention of layer i (q_proj gives [query | gate] per head): output [1, T, D]; writes
        present_key.i / present_value.i. Plain attention layers go to the fused writer's."""
        b, nh, nkv, hd = self.b, self.nh, self.nkv, self.hd
        attn = self.g.model.layers[i].self_attn
        if attn.q_proj.out_features != 2 * nh * hd:
            return super().attention(i, x, mask)
        p = f"layers.{i}.self_attn"
        qkv = self._linear(x, [attn.q_proj, attn.k_proj, attn.v_proj], f"{p}.qkv")
        split = b.weight(f"{p}.qkv.split", np.array([2 * nh * hd, nkv * hd, nkv * hd], np.int64))
        q_gate, k, v = b.op("Split", [qkv, split], 3, axis=-1)
        q, gate = b.op("Split", [b.op("Reshape", [q_gate, self._shape(nh, 2 * hd)]),
                                 b.weight(f"{p}.q_gate.split", np.array([hd, hd], np.int64))], 2, axis=-1)
        q = b.op("Reshape", [self._norm(q, attn.q_norm, f"{p}.q_norm"), self._shape(nh * hd)])  # [1, T, nh*hd]
        k = self._head_norm(k, attn.k_norm, nkv, f"{p}.k_norm")
        cos, sin = self.rope[FULL]
        q = b.op("RotaryEmbedding", [q, cos, sin], num_heads=nh, rotary_embedding_dim=self.rotary_dim)
        k = b.op("RotaryEmbedding", [k, cos, sin], num_heads=nkv, rotary_embedding_dim=self.rotary_dim)
        kv4, kv3 = self._shape(nkv, hd), self._shape(nkv * hd)
        b.op("Reshape", [k, kv4], [f"present_key.{i}"])
        b.op("Reshape", [v, kv4], [f"present_value.{i}"])
        keys = b.op("Concat", [b.op("Reshape", [f"past_key.{i}", kv3]), k], axis=1)  # [1, P+T, nkv*hd]
        values = b.op("Concat", [b.op("Reshape", [f"past_value.{i}", kv3]), v], axis=1)
        out = b.op("Attention", [q, keys, values, mask], q_num_heads=nh, kv_num_heads=nkv, scale=float(attn.scaling))
        gated = b.op("Mul", [out, b.op("Sigmoid", [b.op("Reshape", [gate, self._shape(nh * hd)])])])
        return self._linear(gated, [attn.o_proj], f"{p}.o_proj")

    def build_hybrid(self) -> tuple[list[Any], list[Any]]:
        """Nodes and initializers of the whole decoder; ``logits``, ``present_*`` are the outputs."""
        b, g = self.b, self.g
        layers = g.model.layers
        residual = "inputs_embeds"  # [1, T, D]
        x = self._norm(residual, layers[0].input_layernorm, "layers.0.input_layernorm")
        for i, layer in enumerate(layers):
            mixed = self.delta.layer(i, x) if g.layer_types[i] == LINEAR else self.attention(i, x, "attention_bias")
            x, residual = self._skip_norm(mixed, residual, layer.post_attention_layernorm, f"layers.{i}.pre_mlp_norm")
            last = i + 1 == len(layers)
            next_norm = g.model.norm if last else layers[i + 1].input_layernorm
            x, residual = self._skip_norm(self.mlp(i, x), residual, next_norm,
                                          "norm" if last else f"layers.{i + 1}.input_layernorm")
        rows = b.op("Gather", [x, "logits_index"], axis=1)  # [1, K, D]
        b.op("MatMul", [rows, b.weight("lm_head.weight", _np(g.lm_head.weight).T)], ["logits"])
        return b.nodes, b.weights




def state_shapes(graph: HybridTextGraph) -> dict[str, list[int]]:
    """Shapes of a linear layer's states: {"conv": [1, K-1, conv_dim], "recurrent": [1, v_heads, k_dim, v_dim]}."""
    shapes = []
    for i, kind in enumerate(graph.layer_types):
        if kind == LINEAR:
            la = graph.linear_layer(i)
            shapes.append({"conv": [1, la.conv_kernel_size - 1, la.conv_dim],
                           "recurrent": [1, la.num_v_heads, la.head_k_dim, la.head_v_dim]})
    if any(s != shapes[0] for s in shapes):
        raise CheckpointError("the linear-attention layers have different state shapes; edgevlm exports one shape")
    return shapes[0]


def build_hybrid_model(graph: HybridTextGraph, data_file: Any = None, data_name: str = "") -> Any:
    """The whole graph as an in-memory ``onnx.ModelProto`` (see the module docstring for its I/O)."""
    from onnx import TensorProto, helper

    writer = HybridDecoderWriter(graph, data_file, data_name)
    nodes, weights = writer.build_hybrid()
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    positions = [1, "seq"] if graph.positions == "1d" else [3, 1, "seq"]
    inputs = [helper.make_tensor_value_info("inputs_embeds", f32, [1, "seq", graph.config.hidden_size]),
              helper.make_tensor_value_info("position_ids", i64, positions)]
    if FULL in graph.layer_types:
        inputs.append(helper.make_tensor_value_info("attention_bias", f32, [1, 1, "seq", "total"]))
    inputs.append(helper.make_tensor_value_info("logits_index", i64, ["n_logits"]))
    outputs = [helper.make_tensor_value_info("logits", f32, [1, "n_logits", int(graph.lm_head.weight.shape[0])])]
    shapes = state_shapes(graph) if LINEAR in graph.layer_types else {}
    for i, kind in enumerate(graph.layer_types):
        if kind == FULL:
            kv = [graph.num_kv_heads, graph.head_dim]
            for name in ("key", "value"):
                inputs.append(helper.make_tensor_value_info(f"past_{name}.{i}", f32, [1, "past", *kv]))
                outputs.append(helper.make_tensor_value_info(f"present_{name}.{i}", f32, [1, "seq", *kv]))
        else:
            for name, shape in shapes.items():
                inputs.append(helper.make_tensor_value_info(f"past_{name}.{i}", f32, shape))
                outputs.append(helper.make_tensor_value_info(f"present_{name}.{i}", f32, shape))
    model = helper.make_model(helper.make_graph(nodes, "edgevlm_hybrid_decoder", inputs, outputs, weights),
                              opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
                              producer_name="edgevlm")
    model.ir_version = 11  # opset 23's IR version: onnxruntime >= 1.23 loads it
    return model


def write_hybrid_decoder(graph: HybridTextGraph, path: Path, dtype: str) -> dict[str, Any]:
    """Write ``path`` (+ ``<name>.data`` above the external-data threshold); returns the state binding."""
    import onnx

    from . import plumbing as onnx_plumbing

    if dtype != "fp32":
        raise CheckpointError(f"a hybrid (linear-attention) decoder exports as fp32 only, not {dtype}: its recurrent "
                              "states must stay float32. Export fp32, then quantize (w4, w8, int8 keep them float32).")
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    weight_bytes = sum(p.numel() * p.element_size() for p in graph.parameters())
    if weight_bytes > onnx_plumbing.EXTERNAL_DATA_THRESHOLD:
        with open(data, "wb") as data_file:  # weights stream to disk while the graph is built
            onnx.save_model(build_hybrid_model(graph, data_file, data.name), str(path))
    else:
        onnx_plumbing.save_model(build_hybrid_model(graph), path, large=False)
    shapes = state_shapes(graph) if LINEAR in graph.layer_types else {}
    return {kind: {"past": f"past_{kind}.%d", "present": f"present_{kind}.%d", "shape": shape}
            for kind, shape in shapes.items()}
