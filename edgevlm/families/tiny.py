"""Alias kept for users and later issues: ``edgevlm.families.tiny.make_tiny`` (lives in edgevlm.testing.tiny)."""

from ..testing.tiny import make_tiny  # noqa: F401

__all__ = ["make_tiny"]
