"""Topology-guided knowledge distillation (TGD, TPKD) as a reproducible DVC pipeline."""
