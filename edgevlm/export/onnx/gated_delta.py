"""A Gated DeltaNet linear-attention layer (Qwen3.5, Qwen3-Next) as ONNX nodes, with its states as graph I/O.

Per layer i the graph takes ``past_conv.i`` [1, K-1, conv_dim] (the last K-1 inputs of the causal
depthwise convolution, time-major; transformers keeps it channel-major, [1, conv_dim, K-1]) and
``past_recurrent.i`` [1, v_heads, k_dim, v_dim] (the delta-rule state matrix of every value head),
and returns ``present_conv.i`` / ``present_recurrent.i``, the states
after the call's T tokens (the whole state, not a delta: a recurrent state cannot be appended to).

The gated delta rule over T tokens, one state S per value head (transformers'
``torch_recurrent_gated_delta_rule``, models/qwen3_5/modeling_qwen3_5.py):
    S <- S * exp(g_t);  S <- S + k_t (beta_t (v_t - S^T k_t))^T;  out_t = S^T q_t
is computed in one graph run for any T, by an ``If`` on T:
- T == 1 (decode): that recurrent step, ~15 small nodes.
- T > 1 (prefill): the chunked form (transformers' ``torch_chunk_gated_delta_rule``, the fla
  algorithm): tokens in chunks of C = min(T, 64); inside a chunk the delta-rule updates become a
  unit lower-triangular system (I + L) X = B solved for all chunks and heads at once, then one
  ``Loop`` over the chunks carries S (T/64 iterations, each a few [C, d] x [d, d] matmuls).
  ONNX has no triangular solve; (I + L)^-1 is built by block doubling (blocks of 1, 2, 4 .. 32:
  M <- M - M (L * mask_s) M, the block form of forward substitution). A Neumann-series product
  (I - L)(I + L^2)(I + L^4).. is exact in theory but overflows float32 for correlated keys (measured:
  errors of 1e7 where this form matches solve_triangular to 1e-6).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

CHUNK = 64  # tokens per chunk, as transformers and fla (the inverse masks below are built for it)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _doubling_masks(size: int = CHUNK) -> list[np.ndarray]:
    """mask_s [size, size] (s = 1, 2, 4 ..): rows of the odd s-block x columns of the even s-block of each 2s block."""
    rows = np.arange(size)
    masks, s = [], 1
    while s < size:
        rb, cb = rows[:, None] // s, rows[None, :] // s
        masks.append(((rb % 2 == 1) & (cb == rb - 1)).astype(np.float32))
        s *= 2
    return masks


class _SubgraphBuilder:
    """Nodes of an If/Loop body: constants and fresh names go to the parent builder (outer scope)."""

    def __init__(self, parent: Any):
        self.parent = parent
        self.nodes: list[Any] = []

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "", **attrs) -> Any:
        from onnx import helper

        if isinstance(outputs, int):
            outputs = [self.parent.fresh_name(op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.parent.fresh_name(op_type + "_node"),
                                           domain=domain, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def weight(self, name: str, array: np.ndarray) -> str:
        return self.parent.weight(name, array)

    def fresh_name(self, prefix: str) -> str:
        return self.parent.fresh_name(prefix)


class GatedDeltaWriter:
    """Writes layer i's ``linear_attn`` (a transformers Qwen3_5GatedDeltaNet) into ``writer``'s graph."""

    def __init__(self, writer: Any):
        self.w = writer  # the decoder writer: .b (builder), ._dims, ._linear
        self.b = writer.b
        self._consts: dict[str, str] = {}

    def _const(self, name: str, array: np.ndarray) -> str:
        """A constant shared by every layer (stored once as ``gdn.<name>``)."""
        if name not in self._consts:
            self._consts[name] = self.b.weight(f"gdn.{name}", array)
        return self._consts[name]

    def _i64(self, name: str, values: Any) -> str:
        return self._const(name, np.array(values, np.int64))

    def layer(self, i: int, x: str) -> str:
        """x [1, T, D] (normed) -> the mixer output [1, T, D]; writes present_conv.i and present_recurrent.i."""
        b, w = self.b, self.w
        la = w.g.model.layers[i].linear_attn
        p = f"layers.{i}.linear_attn"
        nk, nv, dk, dv = la.num_k_heads, la.num_v_heads, la.head_k_dim, la.head_v_dim
        conv_dim, kernel = la.conv_dim, la.conv_kernel_size
        packed = w._linear(x, [la.in_proj_qkv, la.in_proj_z, la.in_proj_b, la.in_proj_a], f"{p}.in_proj")
        sizes = b.weight(f"{p}.split", np.array([conv_dim, nv * dv, nv, nv], np.int64))
        mixed, z, beta_in, a = b.op("Split", [packed, sizes], 4, axis=-1)  # [1,T,conv_dim] [1,T,vd] [1,T,nv] x2
        # Causal depthwise conv over [past K-1 inputs, T new inputs], time-major; the last K-1 inputs are the
        # next state. Written as K shifted multiply-adds: onnxruntime's grouped Conv runs one tiny GEMM per
        # channel (measured 0.24 ms per call for 1024 channels at T = 1, more than the layer's matmuls).
        seq = b.op("Concat", [f"past_conv.{i}", mixed], axis=1)  # [1, K-1+T, conv_dim]
        int_max, axis1 = self._i64("int_max", [np.iinfo(np.int64).max]), self._i64("axis1", [1])
        b.op("Slice", [seq, self._i64("minus_k1", [-(kernel - 1)]), int_max, axis1], [f"present_conv.{i}"])
        weight = _np(la.conv1d.weight)[:, 0, :]  # [conv_dim, K]
        conv = None
        for j in range(kernel):  # output t reads inputs t .. t+K-1 of seq
            end = self._i64(f"conv_end{j - kernel + 1}", [j - kernel + 1]) if j < kernel - 1 else int_max
            tap = b.op("Mul", [b.op("Slice", [seq, self._i64(f"conv_start{j}", [j]), end, axis1]),
                               b.weight(f"{p}.conv1d.tap{j}", np.ascontiguousarray(weight[:, j]))])
            conv = tap if conv is None else b.op("Add", [conv, tap])
        conv = b.op("Mul", [conv, b.op("Sigmoid", [conv])])  # silu, [1, T, conv_dim]
        q, k, v = b.op("Split", [conv, b.weight(f"{p}.qkv_split", np.array([nk * dk, nk * dk, nv * dv], np.int64))],
                       3, axis=-1)
        q = self._heads(self._l2norm(self._to_heads(q, nk, dk), scale=dk ** -0.5), nk, nv, dk)  # [nv, T, dk]
        k = self._heads(self._l2norm(self._to_heads(k, nk, dk)), nk, nv, dk)
        v = self._to_heads(v, nv, dv)  # [nv, T, dv]
        axis0 = self._i64("axis0", [0])
        beta = b.op("Transpose", [b.op("Squeeze", [b.op("Sigmoid", [beta_in]), axis0])], perm=[1, 0])  # [nv, T]
        neg_a = b.weight(f"{p}.neg_A", _np(-la.A_log.float().exp()))  # as transformers computes it, in float32
        softplus = b.op("Softplus", [b.op("Add", [a, b.weight(f"{p}.dt_bias", _np(la.dt_bias))])])
        g = b.op("Transpose", [b.op("Squeeze", [b.op("Mul", [softplus, neg_a]), axis0])],
                 perm=[1, 0])  # [nv, T], log-space decay <= 0
        state = b.op("Reshape", [f"past_recurrent.{i}", w._dims(nv, dk, dv)])  # [nv, dk, dv]
        core, new_state = self._delta_rule(q, k, v, g, beta, state)
        b.op("Unsqueeze", [new_state, axis0], [f"present_recurrent.{i}"])
        # Gated RMSNorm per value head: norm(core) * weight * silu(z) (Qwen3_5RMSNormGated).
        core = b.op("Transpose", [core], perm=[1, 0, 2])  # [T, nv, dv]
        normed = b.op("RMSNormalization", [core, b.weight(f"{p}.norm.weight", _np(la.norm.weight))], axis=-1,
                      epsilon=float(la.norm.variance_epsilon))
        z = b.op("Reshape", [z, w._dims(-1, nv, dv)])
        gated = b.op("Mul", [normed, b.op("Mul", [z, b.op("Sigmoid", [z])])])
        return w._linear(b.op("Reshape", [gated, w._dims(1, -1, nv * dv)]), [la.out_proj], f"{p}.out_proj")

    def _to_heads(self, x: str, heads: int, dim: int) -> str:
        """[1, T, heads*dim] -> [heads, T, dim]."""
        return self.b.op("Transpose", [self.b.op("Reshape", [x, self.w._dims(-1, heads, dim)])], perm=[1, 0, 2])

    def _heads(self, x: str, nk: int, nv: int, dim: int) -> str:
        """Key heads repeated for the value heads they serve (repeat_interleave): [nk, T, d] -> [nv, T, d]."""
        if nk == nv:
            return x
        b = self.b
        rep = b.op("Expand", [b.op("Unsqueeze", [x, self._i64("axis1", [1])]),
                              self.w._dims(nk, nv // nk, 1, 1)])  # [nk, r, T, d]
        return b.op("Reshape", [rep, self.w._dims(nv, -1, dim)])

    def _l2norm(self, x: str, scale: float = 1.0) -> str:
        """x / sqrt(sum(x^2) + 1e-6) over the last axis (transformers' l2norm, eps 1e-6), times ``scale``."""
        b = self.b
        sq = b.op("ReduceSumSquare", [x, self._i64("axis_last", [-1])], keepdims=1)
        inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [sq, self._const("eps", np.array(1e-6, np.float32))])])])
        if scale != 1.0:
            inv = b.op("Mul", [inv, self._const(f"scale_{scale:.8g}", np.array(scale, np.float32))])
        return b.op("Mul", [x, inv])

    def _delta_rule(self, q: str, k: str, v: str, g: str, beta: str, state: str) -> tuple[str, str]:
        """q, k [nv, T, dk]; v [nv, T, dv]; g, beta [nv, T]; state [nv, dk, dv] -> (out [nv, T, dv], state)."""
        from onnx import TensorProto, helper

        b = self.b
        t = b.op("Gather", [b.op("Shape", [q]), self._i64("one", 1)])  # scalar T
        is_step = b.op("Equal", [t, self._i64("one", 1)])
        branches = []
        for build in (self._recurrent_step, self._chunked):
            sub = _SubgraphBuilder(b)
            out, new_state = build(sub, q, k, v, g, beta, state)
            outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in (out, new_state)]
            branches.append(helper.make_graph(sub.nodes, b.fresh_name("branch"), [], outs))
        return b.op("If", [is_step], 2, then_branch=branches[0], else_branch=branches[1])

    def _recurrent_step(self, s: Any, q: str, k: str, v: str, g: str, beta: str, state: str) -> tuple[str, str]:
        """One token (T == 1), as torch_recurrent_gated_delta_rule: S*e^g, then the delta update, then S^T q."""
        decay = s.op("Unsqueeze", [s.op("Exp", [g]), self._i64("axis_last", [-1])])  # [nv,1,1]
        decayed = s.op("Mul", [state, decay])  # [nv, dk, dv]
        memory = s.op("MatMul", [k, decayed])  # [nv, 1, dv]
        delta = s.op("Mul", [s.op("Sub", [v, memory]),
                             s.op("Unsqueeze", [beta, self._i64("axis_last", [-1])])])
        new_state = s.op("Add", [decayed, s.op("MatMul", [s.op("Transpose", [k], perm=[0, 2, 1]), delta])])
        return s.op("MatMul", [q, new_state]), new_state  # [nv, 1, dv]

    def _chunked(self, s: Any, q: str, k: str, v: str, g: str, beta: str, state: str) -> tuple[str, str]:
        """T > 1: chunks of C = min(T, 64) (see the module docstring)."""
        i64 = self._i64
        t = s.op("Slice", [s.op("Shape", [q]), i64("i1", [1]), i64("i2", [2])])  # [1]: T
        c = s.op("Min", [t, i64("chunk", [CHUNK])])  # [1]: C
        pad = s.op("Mod", [s.op("Sub", [c, s.op("Mod", [t, c])]), c])  # [1]: rows that fill the last chunk
        pads3 = s.op("Concat", [i64("zeros4", [0, 0, 0, 0]), pad, i64("zero1", [0])], axis=0)
        pads2 = s.op("Concat", [i64("zeros3", [0, 0, 0]), pad], axis=0)
        heads, neg1 = i64("dims_h", [0]), i64("neg1", [-1])  # Reshape: 0 keeps the head count

        def chunks(x: str, pads: str, last: bool) -> str:  # [nv, T(, d)] -> [nv, n, C(, d)], zero-padded
            padded = s.op("Pad", [x, pads])
            dims = [heads, neg1, c] + ([self._last_dim(s, x)] if last else [])
            return s.op("Reshape", [padded, s.op("Concat", dims, axis=0)])

        q, k, v = (chunks(x, pads3, True) for x in (q, k, v))
        g, beta = (chunks(x, pads2, False) for x in (g, beta))
        axis_last = i64("axis_last", [-1])
        beta_e = s.op("Unsqueeze", [beta, axis_last])
        kb, vb = s.op("Mul", [k, beta_e]), s.op("Mul", [v, beta_e])
        cum = s.op("CumSum", [g, self._i64("axis_scalar2", 2)])  # [nv, n, C]
        corner = s.op("Concat", [c, c], axis=0)

        def square(name: str, matrix: np.ndarray) -> str:  # a 64 x 64 constant's top-left C x C corner
            return s.op("Slice", [self._const(name, matrix), i64("zeros2", [0, 0]), corner])

        causal = square("tril_bool", np.tril(np.ones((CHUNK, CHUNK), bool)))
        strict = square("strict_lower", np.tril(np.ones((CHUNK, CHUNK), np.float32), -1))
        diff = s.op("Sub", [s.op("Unsqueeze", [cum, axis_last]), s.op("Unsqueeze", [cum, i64("axis_m2", [-2])])])
        pair = s.op("Exp", [s.op("Where", [causal, diff, self._const("neg_inf", np.array(-np.inf, np.float32))])])
        k_t = s.op("Transpose", [k], perm=[0, 1, 3, 2])  # [nv, n, dk, C]
        lower = s.op("Mul", [s.op("Mul", [s.op("MatMul", [kb, k_t]), pair]), strict])  # L, strictly lower
        # (I + L)^-1 by block doubling: M inverts the diagonal blocks of size s; M - M (L*mask_s) M inverts
        # those of size 2s ([[A, 0], [B, D]]^-1 = [[A^-1, 0], [-D^-1 B A^-1, D^-1]]). Starts from I (s = 1).
        inverse = square("eye", np.eye(CHUNK, dtype=np.float32))
        for level, mask in enumerate(_doubling_masks()):
            part = s.op("MatMul", [s.op("Mul", [lower, square(f"doubling{level}", mask)]), inverse])
            inverse = s.op("Sub", [inverse, s.op("MatMul", [inverse, part])])
        decay = s.op("Exp", [cum])
        decayed_kb = s.op("Mul", [kb, s.op("Unsqueeze", [decay, axis_last])])
        solved = s.op("MatMul", [inverse, s.op("Concat", [vb, decayed_kb], axis=-1)])
        dv = self._last_dim(s, v)
        new_values, k_cumdecay = s.op("Split", [solved, s.op("Concat", [dv, self._last_dim(s, k)], axis=0)], 2, axis=-1)
        intra = s.op("Mul", [s.op("MatMul", [q, k_t]), pair])  # [nv, n, C, C]
        q_dec = s.op("Mul", [q, s.op("Unsqueeze", [decay, axis_last])])
        last = s.op("Slice", [cum, neg1, i64("int_max", [np.iinfo(np.int64).max]), axis_last])  # [nv, n, 1]
        k_dec = s.op("Mul", [k, s.op("Unsqueeze", [s.op("Exp", [s.op("Sub", [last, cum])]), axis_last])])
        chunk_decay = s.op("Exp", [last])  # [nv, n, 1]
        n = s.op("Squeeze", [s.op("Gather", [s.op("Shape", [cum]), self._i64("one", 1)])])
        final, outs = self._scan(s, n, state, new_values, k_cumdecay, q_dec, k_dec, intra, chunk_decay)
        out = s.op("Transpose", [outs], perm=[1, 0, 2, 3])  # [nv, n, C, dv]
        out = s.op("Reshape", [out, s.op("Concat", [heads, neg1, dv], axis=0)])  # [nv, n*C, dv]
        return s.op("Slice", [out, i64("zero1", [0]), t, i64("i1", [1])]), final  # first T rows

    def _last_dim(self, s: Any, x: str) -> str:
        return s.op("Slice", [s.op("Shape", [x]), self._i64("neg1", [-1]),
                              self._i64("int_max", [np.iinfo(np.int64).max])])

    def _scan(self, s: Any, n: str, state: str, *per_chunk: str) -> tuple[str, str]:
        """Loop over the n chunks carrying S; returns (final S, outputs [n, nv, C, dv])."""
        from onnx import TensorProto, helper

        body = _SubgraphBuilder(self.b)
        it, cond_in, s_in = (self.b.fresh_name(x) for x in ("iter", "cond", "state"))
        chunk = (body.op("Gather", [x, it], axis=1) for x in per_chunk)  # chunk `it` of each [nv, n, ...]
        new_values, k_cumdecay, q_dec, k_dec, intra, chunk_decay = chunk
        v_new = body.op("Sub", [new_values, body.op("MatMul", [k_cumdecay, s_in])])  # [nv, C, dv]
        out = body.op("Add", [body.op("MatMul", [q_dec, s_in]), body.op("MatMul", [intra, v_new])])
        decay = body.op("Unsqueeze", [chunk_decay, self._i64("axis_last", [-1])])  # [nv,1,1]
        s_out = body.op("Add", [body.op("Mul", [s_in, decay]),
                                body.op("MatMul", [body.op("Transpose", [k_dec], perm=[0, 2, 1]), v_new])])
        cond_out = body.op("Identity", [cond_in])
        f32 = TensorProto.FLOAT
        graph = helper.make_graph(
            body.nodes, self.b.fresh_name("chunk_scan"),
            [helper.make_tensor_value_info(it, TensorProto.INT64, []),
             helper.make_tensor_value_info(cond_in, TensorProto.BOOL, []),
             helper.make_tensor_value_info(s_in, f32, None)],
            [helper.make_tensor_value_info(cond_out, TensorProto.BOOL, []),
             helper.make_tensor_value_info(s_out, f32, None), helper.make_tensor_value_info(out, f32, None)])
        final, outs = s.op("Loop", [n, "", state], 2, body=graph)
        return final, outs
