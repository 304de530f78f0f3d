"""A/B of fused attention in an exported vision graph (a lever measured for issue 22, not shipped).

    python benchmarks/ab_vision_attention.py BUNDLE_FP32 [--threads 1] [--rounds 8] [--int8]

Rewrites every traced eager attention block of the bundle's vision graph (q/k/v MatMul + bias, Reshape,
Transpose, MatMul(q, k^T), scale, additive mask, Softmax, MatMul(., v), Transpose, Reshape) into one packed
q|k|v MatMul, a Split and onnxruntime's ``com.microsoft.MultiHeadAttention`` (the additive mask expanded
once to [B, 1, S, S] as its attention_bias), then runs both graphs alternately on the chunks of the suite's
1000x500 image (``encode_chunks``, as the runtime does): max abs difference of the features, median wall
and CPU time (``--threads 1``: this thread's CPU time, robust to other jobs). ``--int8`` compares the two
graphs after the int8 recipe (quantize/onnx.py). onnxruntime's own transformer optimizer (model types
vit / bert / clip) fuses LayerNorm and Gelu in this graph but no attention: the pattern has the navit mask.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fuse(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """(the model with its eager attention blocks fused, how many were fused); other nodes are kept."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consts = {}
    for n in g.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    producer = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    def value(name):
        if name in inits:
            return numpy_helper.to_array(inits[name])
        return consts.get(name)
    def prod(name, op):
        n = producer.get(name)
        return n if n is not None and n.op_type == op else None
    def linear(name):  # Add(bias, MatMul(x, W)) -> (x, W, b, nodes)
        add = prod(name, "Add")
        if add is None:
            return None
        mm = next((producer.get(i) for i in add.input if producer.get(i) is not None and producer[i].op_type == "MatMul"), None)
        if mm is None:
            return None
        b = next((value(i) for i in add.input if i not in mm.output), None)
        w = value(mm.input[1])
        if w is None or b is None:
            return None
        return mm.input[0], w, b, [add, mm]
    def heads_of(name, perm):  # Transpose(perm, Reshape(lin))
        t = prod(name, "Transpose")
        if t is None or list(t.attribute[0].ints) != perm:
            return None
        r = prod(t.input[0], "Reshape")
        if r is None:
            return None
        lin = linear(r.input[0])
        if lin is None:
            return None
        return (*lin, [t, r])
    remove, add_nodes, new_inits, fused = set(), [], [], 0
    expanded = {}
    for sm in [n for n in g.node if n.op_type == "Softmax"]:
        # MatMul(Softmax(Add(Mul(MatMul(q, kT), scale), mask)), v) -> Transpose(0,2,1,3) -> Reshape
        pv = consumers.get(sm.output[0], [None])[0]
        casts = []
        while pv is not None and pv.op_type == "Cast" and len(consumers.get(pv.output[0], [])) == 1:
            casts.append(pv)  # softmax(dtype=float32).to(float32): identity casts in a float32 graph
            pv = consumers[pv.output[0]][0]
        if pv is None or pv.op_type != "MatMul":
            continue
        x, mask = sm.input[0], None
        add = prod(x, "Add")
        if add is not None:
            mul = next((producer[i] for i in add.input if i in producer and producer[i].op_type in ("Mul", "Div")), None)
            if mul is None:
                continue
            mask = next(i for i in add.input if i not in mul.output)
        else:
            mul = prod(x, "Mul") or prod(x, "Div")
        if mul is None:
            continue
        qk = next((producer[i] for i in mul.input if i in producer and producer[i].op_type == "MatMul"), None)
        s = next((value(i) for i in mul.input if qk is None or i not in qk.output), None)
        if qk is None or s is None:
            continue
        scale = float(s) if mul.op_type == "Mul" else 1.0 / float(s)
        q = heads_of(qk.input[0], [0, 2, 1, 3])  # [B, H, S, hd]
        k = heads_of(qk.input[1], [0, 2, 3, 1])  # [B, H, hd, S]
        v = heads_of(pv.input[1], [0, 2, 1, 3])
        if not (q and k and v) or not (q[0] == k[0] == v[0]):
            continue
        out_t = consumers.get(pv.output[0], [None])[0]
        if out_t is None or out_t.op_type != "Transpose" or list(out_t.attribute[0].ints) != [0, 2, 1, 3]:
            continue
        out_r = consumers.get(out_t.output[0], [None])[0]
        if out_r is None or out_r.op_type != "Reshape":
            continue
        d = q[1].shape[1]  # q weight [D, D]
        # heads and head size from q's Reshape target [B, S, H, hd] (a constant, or a Concat of pieces)
        tgt = value(q[4][1].input[1])
        if tgt is not None: heads, hd = int(tgt[-2]), int(tgt[-1])
        else:
            cat = producer.get(q[4][1].input[1])
            dims = [value(i) for i in cat.input]
            heads, hd = int(np.asarray(dims[-2]).reshape(-1)[0]), int(np.asarray(dims[-1]).reshape(-1)[0])
        if heads <= 0:  # view(B, S, -1, head_dim)
            heads = d // hd
        fused += 1
        base = f"fused_attn_{fused}"
        w = np.concatenate([q[1], k[1], v[1]], axis=1).astype(np.float32)
        b = np.concatenate([q[2], k[2], v[2]]).astype(np.float32)
        new_inits += [numpy_helper.from_array(w, base + ".qkv_weight"), numpy_helper.from_array(b, base + ".qkv_bias"),
                      numpy_helper.from_array(np.array([d, d, d], np.int64), base + ".split")]
        qkv = base + ".qkv"
        add_nodes.append(helper.make_node("MatMul", [q[0], base + ".qkv_weight"], [qkv], name=base + ".matmul"))
        add_nodes.append(helper.make_node("Split", [qkv, base + ".split"], [base + ".q", base + ".k", base + ".v"], axis=-1, name=base + ".split_node"))
        inputs = [base + ".q", base + ".k", base + ".v", base + ".qkv_bias", ""]  # 4: key_padding_mask
        if mask is not None:
            if mask not in expanded:
                # additive [B, 1, 1, S] -> [B, 1, S, S]: MultiHeadAttention's attention_bias has the query dim
                sh, i0, i1 = mask + ".x_shape", mask + ".i0", mask + ".i1"
                new_inits += [numpy_helper.from_array(np.array([0], np.int64), i0),
                              numpy_helper.from_array(np.array([1], np.int64), i1)]
                add_nodes.append(helper.make_node("Shape", [q[0]], [sh], name=mask + ".shape"))  # [B, S, D]
                add_nodes.append(helper.make_node("Gather", [sh, i0], [mask + ".b"], axis=0, name=mask + ".gb"))
                add_nodes.append(helper.make_node("Gather", [sh, i1], [mask + ".s"], axis=0, name=mask + ".gs"))
                add_nodes.append(helper.make_node("Concat", [mask + ".b", i1, mask + ".s", mask + ".s"], [mask + ".target"],
                                                  axis=0, name=mask + ".cat"))
                add_nodes.append(helper.make_node("Expand", [mask, mask + ".target"], [mask + ".expanded"], name=mask + ".expand"))
                expanded[mask] = mask + ".expanded"
            inputs += [expanded[mask]]
        add_nodes.append(helper.make_node("MultiHeadAttention", inputs, [out_r.output[0]], domain="com.microsoft",
                                          num_heads=heads, scale=scale, name=base + ".mha"))
        remove |= {id(nn) for nn in q[3] + k[3] + v[3] + q[4] + k[4] + v[4]}
        remove |= {id(nn) for nn in (qk, mul, sm, pv, out_t, out_r, *casts)}
        if add is not None:
            remove.add(id(add))
    keep = [n for n in g.node if id(n) not in remove]
    nodes = keep + add_nodes  # put back in a topological order below
    del g.node[:]
    g.node.extend(topo(nodes, [i.name for i in g.input] + [t.name for t in g.initializer] + [t.name for t in new_inits]))
    g.initializer.extend(new_inits)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model, fused

def topo(nodes: list, available: list[str]) -> list:
    """``nodes`` in an order where every input is produced (or a graph input / initializer) before use."""
    avail = set(available) | {""}
    out, pending = [], list(nodes)
    while pending:
        progressed = False
        rest = []
        for n in pending:
            if all(i in avail for i in n.input):
                out.append(n); avail |= set(n.output); progressed = True
            else:
                rest.append(n)
        if not progressed:
            raise RuntimeError(f"cycle or missing input: {rest[0].op_type} {list(rest[0].input)}")
        pending = rest
    return out


def encode_all(session, prepared, vision, derived):
    from edgevlm.runtime.backends.ort_vision import encode_chunks

    return encode_chunks(lambda feeds: session.run(None, feeds)[0], prepared.inputs, vision, derived)


def main() -> None:
    import logging

    import onnxruntime as ort

    from edgevlm.export.validate import test_image
    from edgevlm.manifest import read_manifest
    from edgevlm.processing.config import ProcessorConfig
    from edgevlm.quantize.onnx import quantize_onnx_part
    from edgevlm.runtime.images import prepare_image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--int8", action="store_true")
    args = ap.parse_args()
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    bundle = Path(args.bundle)
    manifest = read_manifest(bundle, verify=False)
    part = manifest.parts["vision"]
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {"traced": bundle / part.file, "fused": Path(tmp) / "fused.onnx"}
        model, n = fuse(onnx.load(str(graphs["traced"])))
        print(f"fused {n} attention blocks", flush=True)
        onnx.save(model, str(graphs["fused"]), save_as_external_data=True, location="fused.onnx.data")
        if args.int8:
            for name in list(graphs):
                out = Path(tmp) / f"{name}-int8.onnx"
                quantize_onnx_part(graphs[name], out, "int8")
                graphs[name] = out
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
        sessions = {k: ort.InferenceSession(str(v), so, providers=["CPUExecutionProvider"]) for k, v in graphs.items()}
        prepared = prepare_image(test_image(1000, 500), ProcessorConfig.from_dict(manifest.processor))
        derived = part.binding.get("derived_inputs", {})
        out = {k: encode_all(s, prepared, manifest.vision, derived) for k, s in sessions.items()}
        print(f"features max abs diff {float(np.abs(out['fused'] - out['traced']).max()):.3g}")
        clock = time.thread_time if args.threads == 1 else time.process_time
        wall = {k: [] for k in sessions}
        cpu = {k: [] for k in sessions}
        for r in range(args.rounds):
            for k, s in (list(sessions.items()) if r % 2 == 0 else list(sessions.items())[::-1]):
                w0, c0 = time.perf_counter(), clock()
                encode_all(s, prepared, manifest.vision, derived)
                wall[k].append(time.perf_counter() - w0)
                cpu[k].append(clock() - c0)
    base = statistics.median(wall["traced"]), statistics.median(cpu["traced"])
    for k in sessions:
        w, c = statistics.median(wall[k]), statistics.median(cpu[k])
        print(f"{k:>7}: wall {w * 1e3:7.0f} ms ({base[0] / w:.3f}x)  CPU {c * 1e3:7.0f} ms ({base[1] / c:.3f}x)")


if __name__ == "__main__":
    main()
