"""Test scaffolding: tiny checkpoints, real-weight helpers and the Android golden writer (never used at run time)."""
