"""PyTorch pieces every family's reference uses (imports torch)."""
