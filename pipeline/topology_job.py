"""Deprecated: the topology stage is the package pipeline.topology_stage (one module per job).

Kept only so that callers not yet updated (pipeline/bench.py) keep working; import from
pipeline.topology_stage instead. Remove once nothing imports it.
"""
from pipeline.topology_stage import compute_block, compute_topology, pi_shape  # noqa: F401

__all__ = ["compute_block", "compute_topology", "pi_shape"]
