"""ONNX part quantization with onnxruntime's own quantizers (one method per part).

The runtime's I/O contract does not change: inputs and outputs stay float32, so a quantized bundle
runs through exactly the same backend code as its source.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import onnx
import onnx.numpy_helper

from ..errors import EdgeVLMError
from ..manifest import EXTERNAL_DATA_THRESHOLD


def _save(model: onnx.ModelProto, path: Path) -> None:
    large = model.ByteSize() > EXTERNAL_DATA_THRESHOLD
    onnx.save_model(model, str(path), save_as_external_data=large, all_tensors_to_one_file=True,
                    location=path.name + ".data" if large else None)


def _load(path: Path) -> onnx.ModelProto:
    return onnx.load_model(str(path), load_external_data=True)


def _files_size(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)


def _initializer_bytes(model: onnx.ModelProto) -> dict[str, tuple[int, int]]:
    """name -> (element type, bytes) of every weight."""
    return {t.name: (t.data_type, len(onnx.numpy_helper.to_array(t).tobytes())) for t in model.graph.initializer}


def quantized_weights_ratio(src: onnx.ModelProto, dst: onnx.ModelProto) -> float:
    """Bytes of the weights that changed, after / before (unchanged weights such as norms excluded)."""
    before, after = _initializer_bytes(src), _initializer_bytes(dst)
    unchanged = sum(size for name, (kind, size) in before.items() if after.get(name) == (kind, size))
    return round((sum(s for _, s in after.values()) - unchanged) / max(sum(s for _, s in before.values()) - unchanged, 1), 4)


def quantize_gather_rows(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every Gather over a float table -> Gather over an int8 table times a per-row scale.

    Per-row (per token) symmetric int8: each embedding row keeps its own range. onnxruntime's
    dynamic quantizer uses one scale for the whole table, which on Gemma 3 270M cost 6 points of
    top-1 agreement; per row costs none measurable (docs/quantization.md).
    """
    from onnx import helper, numpy_helper
    import numpy as np

    graph = model.graph
    tables = {t.name: t for t in graph.initializer}
    nodes = []
    for node in graph.node:
        table = tables.get(node.input[0]) if node.op_type == "Gather" else None
        if table is None or table.data_type != onnx.TensorProto.FLOAT or len(table.dims) != 2:
            nodes.append(node)
            continue
        rows = numpy_helper.to_array(table)  # [V, D]
        scale = np.maximum(np.abs(rows).max(axis=1, keepdims=True), 1e-12) / 127.0  # [V, 1]
        q = np.clip(np.rint(rows / scale), -127, 127).astype(np.int8)  # [V, D]
        base = node.name or node.output[0]
        graph.initializer.remove(table)
        graph.initializer.extend([numpy_helper.from_array(q, table.name + "_int8"),
                                  numpy_helper.from_array(scale.astype(np.float32), table.name + "_scale")])
        nodes += [helper.make_node("Gather", [table.name + "_int8", node.input[1]], [base + "_q"], axis=0),
                  helper.make_node("Cast", [base + "_q"], [base + "_qf"], to=onnx.TensorProto.FLOAT),
                  helper.make_node("Gather", [table.name + "_scale", node.input[1]], [base + "_s"], axis=0),
                  helper.make_node("Mul", [base + "_qf", base + "_s"], list(node.output))]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


ACCURACY_LEVEL = 4  # MatMulNBits computes with int8 activations (see the w4/w8 branch below)


def _matmul_nbits(model: onnx.ModelProto, bits: int, block_size: int, symmetric: bool, accuracy_level: int,
                  exclude: list[str] | None = None, include: list[str] | None = None) -> onnx.ModelProto:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=block_size, is_symmetric=symmetric,
                                     accuracy_level=accuracy_level,
                                     op_types_to_quantize=("MatMul",), nodes_to_exclude=exclude or [],
                                     nodes_to_include=include)
    quantizer.process()
    return quantizer.model.model


def output_heads(model: onnx.ModelProto) -> list[str]:
    """MatMul nodes that produce the ``logits`` output's last dimension from a weight (the LM head)."""
    logits = [o for o in model.graph.output if o.name == "logits"]
    if not logits:
        return []
    vocab = logits[0].type.tensor_type.shape.dim[-1].dim_value
    weights = {t.name: t for t in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and len(n.input) > 1
            and n.input[1] in weights and vocab and weights[n.input[1]].dims[-1] == vocab]


def quantize_onnx_part(src: Path, dst: Path, method: str, block_size: int = 32, symmetric: bool = False,
                       calibration: Any = None, part: str = "", head_bits: int = 8) -> dict[str, Any]:
    """Write ``dst`` from ``src`` with ``method``; return the manifest record of what was done."""
    size_before = _files_size(src)
    record: dict[str, Any] = {"method": method}
    if method == "none":
        _save(_load(src), dst)
    elif method == "fp16":
        from ..export.onnx.fp16 import to_fp16

        # float32 I/O (the runtime feeds and reads float32 exactly as for the source bundle), and float32
        # norms and rotary angles: fp16 ones turned real Gemma 3 270M's logits into NaN (export/onnx/fp16.py)
        _save(to_fp16(_load(src)), dst)
    elif method == "rows8":
        _save(quantize_gather_rows(_load(src)), dst)
        record.update(weights="int8 per row (token)")
    elif method == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / src.name
            _save(_load(src), staged)  # quantize_dynamic wants a path; stage to resolve external data
            # reduce_range (7-bit weights): without AVX-512 VNNI, onnxruntime's u8s8 kernel multiplies
            # with VPMADDUBSW, whose int16 sums saturate. On an AVX2-only EPYC (Zen 3) full-range int8
            # gave Gemma 3 270M top-1 0.207 (KL 3.06) against 0.763 with reduce_range, the figure a
            # VNNI machine gets either way; an int8 bundle must be right on whatever CPU runs it.
            quantize_dynamic(str(staged), str(dst), per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gather"],
                             use_external_data_format=_files_size(staged) > EXTERNAL_DATA_THRESHOLD,
                             # onnx shape inference types no onnxruntime contrib op's output (the fused
                             # decoder's norms), so MatMul activations default to float32
                             extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})
        record.update(weights="int8 per output channel (7-bit range)", activations="dynamic int8")
    elif method in ("w4", "w8"):
        # accuracy_level 4 = int8 activations inside MatMulNBits. onnxruntime 1.32's 8-bit kernel is
        # only usable that way (0.8 vs 27.8 decode tok/s on Gemma 3 270M), and for 4-bit it is ~4x
        # faster at no measured cost (top-1 0.727 vs 0.725 on Gemma 3 270M; docs/quantization.md).
        bits = 8 if method == "w8" else 4
        model = _load(src)
        heads = output_heads(model) if bits == 4 and head_bits == 8 else []
        # The output head stays at 8 bits by default, as llama.cpp's Q4_0 files keep it at Q8_0. On
        # Gemma 3 270M top-1 agreement is 0.727 with it, 0.661 with a 4-bit head (docs/quantization.md).
        model = _matmul_nbits(model, bits, block_size, symmetric, ACCURACY_LEVEL, exclude=heads)
        if heads:
            model = _matmul_nbits(model, 8, block_size, True, ACCURACY_LEVEL, include=heads)
        _save(model, dst)
        # Free the source proto before the check below loads it again: a 2.5B-parameter fp32 decoder
        # (10 GB) would otherwise be held twice, and the w4 quantize of the PaliGemma-2B-class bundle was
        # OOM-killed at 19.5 GB on a 24 GB machine.
        del model
        record.update(bits=bits, block_size=block_size, symmetric=symmetric, head_bits=8 if heads else bits,
                      activations="int8 inside MatMulNBits (accuracy_level 4)")
    elif method in ("qdq8", "qdq16"):
        if calibration is None:
            raise EdgeVLMError(f"{method} is static quantization and needs calibration data: pass "
                               "--calibration DIR (a folder of images plus prompts.txt)")
        from .qdq import quantize_qdq

        record.update(quantize_qdq(src, dst, method, calibration, part))
    else:
        raise EdgeVLMError(f"unknown ONNX quantization method {method!r}")
    written = onnx.load_model(str(dst), load_external_data=True)
    ops = Counter(node.op_type for node in written.graph.node)
    record["quantized_weights_ratio"] = quantized_weights_ratio(_load(src), written)
    record.update(size_before=size_before, size_after=_files_size(dst),
                  ratio=round(_files_size(dst) / max(size_before, 1), 4),
                  quantized_ops={k: v for k, v in ops.items()
                                 if k in ("MatMulNBits", "MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear",
                                          "QuantizeLinear", "GatherBlockQuantized", "ConvInteger", "Cast")})
    return record
