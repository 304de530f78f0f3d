"""A Gated DeltaNet (linear-attention) layer as torch ops Core ML converts: fixed shapes, states as arguments.

Used by the stateful hybrid decoder (decoder_hybrid.py) with T = 1 (decode: one recurrent step) or T = one
chunk of up to 64 tokens (prefill: transformers' ``torch_chunk_gated_delta_rule`` for a single chunk, the
triangular solve written as block-doubling matmuls, as the ONNX graph does: export/onnx/gated_delta.py).
Rows after the chunk's real ones (padding up to the fixed length) get beta = 0 and no decay, so they leave
the recurrent state untouched, and the conv state is taken from the last real inputs.

Per value head a state S [dk, dv]: S <- S * e^g; S <- S + k (beta (v - S^T k))^T; out = S^T q
(q, k L2-normalised, q scaled by dk^-1/2), then an RMSNorm per head gated by silu(z) and ``out_proj``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _l2norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + 1e-6)


def _doubling_masks(size: int) -> list[torch.Tensor]:
    """mask_s (s = 1, 2, 4 ..): rows of the odd s-block x columns of the even s-block of each 2s block."""
    rows = torch.arange(size)
    masks, s = [], 1
    while s < size:
        rb, cb = rows[:, None] // s, rows[None, :] // s
        masks.append(((rb % 2 == 1) & (cb == rb - 1)).float())
        s *= 2
    return masks


def unit_lower_inverse(lower: torch.Tensor) -> torch.Tensor:
    """(I + L)^-1 for a strictly lower L [..., C, C] (C a power of 2): M <- M - M (L * mask_s) M, blocks of 1, 2, 4 .."""
    size = lower.shape[-1]
    inverse = torch.eye(size, dtype=lower.dtype).expand_as(lower)
    for mask in _doubling_masks(size):
        inverse = inverse - inverse @ ((lower * mask) @ inverse)
    return inverse


def recurrent_step(q, k, v, g, beta, state):
    """T == 1: q, k [nv, 1, dk]; v [nv, 1, dv]; g, beta [nv, 1]; state [nv, dk, dv] -> (out [nv, 1, dv], state)."""
    state = state * g.exp()[..., None]  # [nv, dk, dv]
    delta = (v - k @ state) * beta[..., None]  # [nv, 1, dv]
    state = state + k.transpose(1, 2) @ delta
    return q @ state, state


def chunk(q, k, v, g, beta, state):
    """One chunk of T tokens (T a power of 2, <= 64): the same shapes with T rows."""
    t = q.shape[1]
    cum = g.cumsum(-1)  # [nv, T] log decay from the chunk's start
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
    pairwise = torch.where(causal, cum[:, :, None] - cum[:, None, :], torch.tensor(float("-inf"))).exp()  # [nv, T, T]
    k_beta, v_beta = k * beta[..., None], v * beta[..., None]
    lower = (k_beta @ k.transpose(1, 2)) * pairwise * torch.tril(torch.ones(t, t), -1)  # strictly lower
    inverse = unit_lower_inverse(lower)
    new_values = inverse @ v_beta  # [nv, T, dv]
    k_cumdecay = inverse @ (k_beta * cum.exp()[..., None])  # [nv, T, dk]
    v_new = new_values - k_cumdecay @ state
    out = (q * cum.exp()[..., None]) @ state + ((q @ k.transpose(1, 2)) * pairwise) @ v_new
    last = cum[:, -1:]  # [nv, 1]
    state = state * last.exp()[..., None] + (k * (last - cum).exp()[..., None]).transpose(1, 2) @ v_new
    return out, state


def gated_delta_layer(la: nn.Module, x: torch.Tensor, conv_state: torch.Tensor, state: torch.Tensor,
                      valid: torch.Tensor, n_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """transformers' Qwen3_5GatedDeltaNet ``la`` over x [1, T, D]; conv_state [1, K-1, conv_dim] (time-major),
    state [nv, dk, dv]; valid [T] (1 real, 0 padding), n_real [1] real rows.
    Returns (output [1, T, D], new conv state, new recurrent state)."""
    nk, nv, dk, dv = la.num_k_heads, la.num_v_heads, la.head_k_dim, la.head_v_dim
    kernel, t = la.conv_kernel_size, x.shape[1]
    mixed = la.in_proj_qkv(x)  # [1, T, conv_dim]
    seq = torch.cat([conv_state.to(x.dtype), mixed], 1)  # [1, K-1+T, conv_dim]
    weight = la.conv1d.weight[:, 0, :]  # [conv_dim, K]
    conv = sum(seq[:, j:j + t] * weight[:, j] for j in range(kernel))  # causal depthwise conv, [1, T, conv_dim]
    conv = F.silu(conv)
    # the next conv state: the last K-1 inputs up to the last real row
    new_conv = torch.index_select(seq, 1, n_real + torch.arange(kernel - 1))
    q, k, v = torch.split(conv[0], [nk * dk, nk * dk, nv * dv], dim=-1)
    q = _l2norm(q.reshape(t, nk, dk)).transpose(0, 1) * dk ** -0.5  # [nk, T, dk]
    k = _l2norm(k.reshape(t, nk, dk)).transpose(0, 1)
    if nv != nk:  # each key head serves nv / nk consecutive value heads
        q, k = q.repeat_interleave(nv // nk, 0), k.repeat_interleave(nv // nk, 0)
    v = v.reshape(t, nv, dv).transpose(0, 1)  # [nv, T, dv]
    beta = la.in_proj_b(x)[0].sigmoid().transpose(0, 1) * valid  # [nv, T]; padding rows: no update
    g = (-la.A_log.float().exp() * F.softplus(la.in_proj_a(x)[0].float() + la.dt_bias)).transpose(0, 1) * valid
    step = recurrent_step if t == 1 else chunk
    out, state = step(q, k, v, g, beta, state.to(x.dtype))
    z = la.in_proj_z(x).reshape(t, nv, dv)
    core = la.norm(out.transpose(0, 1).reshape(-1, dv), z.reshape(-1, dv))  # gated RMSNorm per head
    return la.out_proj(core.reshape(1, t, nv * dv)), new_conv, state
