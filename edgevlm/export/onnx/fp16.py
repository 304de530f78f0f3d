"""fp16 conversion of an ONNX part that keeps its numerically fragile nodes in float32.

Used by ``edgevlm export --dtype fp16`` and by ``edgevlm quantize --recipe fp16``. Two kinds of nodes
stay float32, with explicit Casts around them (``_cast_around``):
- RMS norms. The fused decoder carries the residual stream through them (onnxruntime's
  SkipSimplifiedLayerNormalization adds the residual and returns the sum), so keeping them float32
  keeps the residual stream float32. Fully fp16, real Gemma 3 270M's logits were NaN at all 498
  positions of the quantization report (top-1 0.0 against fp32; a 64-token prompt stayed finite);
  with these nodes float32, top-1 0.996. Which value overflowed was not traced; a test reproduces the
  failure with a residual stream past fp16's 65504.
- The rotary angles: every node upstream of RotaryEmbedding's cos/sin inputs. position * inv_freq
  in fp16 is wrong beyond a few hundred positions.
Graph inputs and outputs stay float32 (``keep_io_types``), so the runtime and its KV buffers are the
same for every dtype. No torch here: the quantizer runs without it.
"""

from __future__ import annotations

from typing import Any

FLOAT32_OPS = ("RMSNormalization", "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization")


def float32_nodes(model: Any) -> list[str]:
    """Names of the nodes an fp16 conversion must keep in float32 (see the module doc)."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    keep = {node.name for node in graph.node if node.op_type in FLOAT32_OPS}
    pending = [name for node in graph.node if node.op_type == "RotaryEmbedding" for name in node.input[1:3]]
    while pending:  # walk up from cos/sin to the graph inputs
        node = producer.get(pending.pop())
        if node is not None and node.name not in keep:
            keep.add(node.name)
            pending.extend(node.input)
    return sorted(keep)


def to_fp16(model: Any) -> Any:
    """The model with fp16 weights and compute, float32 I/O and float32 norms and rotary angles."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    keep = set(float32_nodes(model))
    casts = _cast_around(model, keep)
    return convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True,
                                    node_block_list=sorted(keep | casts))


def _cast_around(model: Any, keep: set[str]) -> set[str]:
    """Insert explicit Casts where a kept (float32) node meets the fp16 rest of the graph: to float32 on
    its float inputs, to float16 on outputs that fp16 nodes read. The converter's own block-list casts
    need the intermediate tensors' types, which onnx shape inference cannot give for onnxruntime's
    contrib ops. Returns the names of the Casts (they are kept as written)."""
    from onnx import TensorProto, helper

    graph = model.graph
    float_sources = {t.name for t in graph.initializer if t.data_type == TensorProto.FLOAT}
    float_sources |= {i.name for i in graph.input if i.type.tensor_type.elem_type == TensorProto.FLOAT}
    producer = {out: node for node in graph.node for out in node.output}
    graph_outputs = {o.name for o in graph.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    added: set[str] = set()
    nodes = []
    for node in graph.node:
        if node.name not in keep:
            nodes.append(node)
            continue
        for i, name in enumerate(node.input):
            src = producer.get(name)
            if name and (src.name not in keep if src is not None else name in float_sources):
                cast = helper.make_node("Cast", [name], [f"{name}.fp32.{node.name}"], to=TensorProto.FLOAT,
                                        name=f"{node.name}.cast_in{i}")
                nodes.append(cast)
                added.add(cast.name)
                node.input[i] = cast.output[0]
        nodes.append(node)
        for name in node.output:
            readers = [c for c in consumers.get(name, []) if c.name not in keep]
            if not readers or name in graph_outputs:
                continue
            cast = helper.make_node("Cast", [name], [f"{name}.fp16"], to=TensorProto.FLOAT16, name=f"{name}.cast_out")
            nodes.append(cast)
            added.add(cast.name)
            for reader in readers:
                reader.input[:] = [cast.output[0] if x == name else x for x in reader.input]
    del graph.node[:]
    graph.node.extend(nodes)
    return added
