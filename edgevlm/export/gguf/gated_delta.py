"""Linear-attention (Gated DeltaNet) layers in llama.cpp's GGUF layout: tensor transforms and hyper-parameters.

What llama.cpp's own converter does for these layers (vendored ``conversion/qwen.py``:
``Qwen3NextModel.set_gguf_parameters`` / ``modify_tensors`` and ``_LinearAttentionVReorderBase``),
applied to the transformers module names before gguf-py's name map:
- ``A_log`` is stored as ``A = -exp(A_log)`` (``ssm_a``); ``dt_bias`` is renamed ``dt_proj.bias`` (``ssm_dt.bias``);
- the depthwise conv kernel [conv_dim, 1, K] is squeezed to [conv_dim, K] (``ssm_conv1d``);
- the gated norm (``linear_attn.norm``) keeps its plain weight (the arch's other norms store 1 + w);
- when value heads outnumber key heads, every value-head-indexed row or column (the V rows of
  ``in_proj_qkv``, ``in_proj_z``, ``in_proj_a``/``b``, ``A_log``, ``dt_bias``, the V channels of the conv,
  the columns of ``out_proj``) goes from grouped order (the r value heads of key head 0, then of key head 1 ..)
  to tiled order (value head 0 of every key head, then value head 1 ..), so ggml can broadcast the keys.
Checked against the converter's output tensor by tensor (a GGUF test of the hybrid family).
"""

from __future__ import annotations

from typing import Any

import numpy as np

LINEAR = "linear_attention"


def _tiled(x: np.ndarray, axis: int, nk: int, per_k: int, head_dim: int) -> np.ndarray:
    """Value heads along ``axis`` from grouped [nk, per_k, head_dim] order to tiled [per_k, nk, head_dim] order."""
    x = np.moveaxis(x, axis, 0)
    rest = x.shape[1:]
    x = x.reshape(nk, per_k, head_dim, *rest).swapaxes(0, 1).reshape(nk * per_k * head_dim, *rest)
    return np.ascontiguousarray(np.moveaxis(x, 0, axis))


def transform(hf_name: str, data: np.ndarray, cfg: Any) -> tuple[str, np.ndarray]:
    """(name for gguf-py's map, llama.cpp's array) of one ``*.linear_attn.*`` tensor."""
    nk, nv = int(cfg.linear_num_key_heads), int(cfg.linear_num_value_heads)
    dk, dv = int(cfg.linear_key_head_dim), int(cfg.linear_value_head_dim)
    per_k = nv // nk
    if hf_name.endswith(".A_log"):
        import torch  # torch's float32 exp, as the converter computes it (numpy's differs in the last bit)

        data = (-torch.exp(torch.from_numpy(data))).numpy()
    elif hf_name.endswith(".dt_bias"):
        hf_name = hf_name[: -len(".dt_bias")] + ".dt_proj.bias"
    elif ".conv1d." in hf_name:
        data = data.reshape(data.shape[0], data.shape[-1])  # [conv_dim, K]
    if per_k == 1:
        return hf_name, data
    if ".in_proj_qkv." in hf_name or ".conv1d." in hf_name:
        qk = 2 * nk * dk  # q and k rows/channels stay; the V part is reordered
        data = np.concatenate([data[:qk], _tiled(data[qk:], 0, nk, per_k, dv)])
    elif ".in_proj_z." in hf_name:
        data = _tiled(data, 0, nk, per_k, dv)
    elif ".in_proj_a." in hf_name or ".in_proj_b." in hf_name or hf_name.endswith((".A_log", ".dt_proj.bias")):
        data = _tiled(data, 0, nk, per_k, 1)
    elif ".out_proj." in hf_name:
        data = _tiled(data, 1, nk, per_k, dv)
    return hf_name, data


def write_hparams(writer: Any, cfg: Any, layer_types: list[str]) -> None:
    """The ``{arch}.ssm.*`` keys, which layers are recurrent, and the full-attention interval."""
    if int(cfg.linear_key_head_dim) != int(cfg.linear_value_head_dim):
        from ...errors import CheckpointError

        raise CheckpointError(f"linear attention with key head dim {cfg.linear_key_head_dim} != value head dim "
                              f"{cfg.linear_value_head_dim}: llama.cpp reads one state size for both. Export to ONNX.")
    writer.add_ssm_conv_kernel(int(cfg.linear_conv_kernel_dim))
    writer.add_ssm_state_size(int(cfg.linear_key_head_dim))
    writer.add_ssm_group_count(int(cfg.linear_num_key_heads))
    writer.add_ssm_time_step_rank(int(cfg.linear_num_value_heads))
    writer.add_ssm_inner_size(int(cfg.linear_value_head_dim) * int(cfg.linear_num_value_heads))
    writer.add_array(f"{writer.arch}.attention.recurrent_layers", [t == LINEAR for t in layer_types])
    writer.add_full_attention_interval(int(getattr(cfg, "full_attention_interval", 4)))
