"""Errors a user can act on.

Every error edgevlm raises on purpose is an ``EdgeVLMError`` whose message names the problem and the
fix, so the CLI can print it as one line instead of a library traceback.
"""


class EdgeVLMError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class BundleError(EdgeVLMError):
    """A bundle directory or its manifest is missing, damaged, tampered with or of an unknown version."""


class ImageError(EdgeVLMError):
    """An input image cannot be decoded, is empty, or is larger than the configured pixel limit."""


class CheckpointError(EdgeVLMError):
    """A Hugging Face checkpoint directory is missing files or is of a family edgevlm does not know."""


class PromptError(EdgeVLMError):
    """A prompt does not fit the context, or has a different number of image places than images."""


class DeviceError(EdgeVLMError):
    """The requested execution provider / device is not available in this build."""


class ParityError(EdgeVLMError):
    """An exported part does not reproduce the PyTorch reference within tolerance."""
