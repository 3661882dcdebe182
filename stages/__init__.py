"""Thin DVC stage commands: read params, call pipeline/, write outputs (see dvc.yaml)."""
