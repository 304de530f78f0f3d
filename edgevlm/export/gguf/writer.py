"""Writing tensors into a GGUF file (shared by the text model and the families' mmproj writers)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def write_tensors(writer: Any, tensors: dict[str, np.ndarray], to_f16: Callable[[str, np.ndarray], bool]) -> None:
    """Add every tensor (f16 where ``to_f16(name, data)`` says so), write the file and close it."""
    for name, data in tensors.items():
        writer.add_tensor(name, data.astype(np.float16) if to_f16(name, data) else data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
