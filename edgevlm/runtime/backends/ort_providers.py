"""``device`` names -> onnxruntime execution providers, with a clear error for unavailable ones."""

from __future__ import annotations

from ...errors import DeviceError

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
}
# ``auto`` takes the first available: discrete accelerators, then NPUs, then XNNPACK, then CPU.
AUTO_ORDER = ("cuda", "dml", "coreml", "qnn", "nnapi", "xnnpack", "cpu")


def resolve_providers(device: str, available: list[str] | None = None) -> list[str]:
    """Provider list for onnxruntime sessions; the CPU provider is always last as the fallback for
    operators the accelerator does not take."""
    import onnxruntime as ort

    available = list(ort.get_available_providers() if available is None else available)
    device = (device or "cpu").lower()
    if device == "auto":
        chosen = next(PROVIDERS[d] for d in AUTO_ORDER if PROVIDERS[d] in available)
    elif device in PROVIDERS:
        chosen = PROVIDERS[device]
        if chosen not in available:
            offered = ", ".join(d for d, p in PROVIDERS.items() if p in available)
            raise DeviceError(f"device {device!r} ({chosen}) is not available in this onnxruntime build, which "
                              f"offers: {', '.join(available)} (devices: {offered}). Use one of those, or install "
                              f"an onnxruntime package built with {chosen}.")
    else:
        raise DeviceError(f"unknown device {device!r}; choose one of auto, {', '.join(PROVIDERS)}.")
    return [chosen] + (["CPUExecutionProvider"] if chosen != "CPUExecutionProvider" else [])
