"""The topology engines by name, known without loading them (numba, scipy, ripser, gudhi):
each entry is loaded from ``pipeline.topology.engines`` at its first lookup. A new engine is
its module plus its line here (docs/ARCHITECTURE.md)."""
from pipeline.registry import Registry

ENGINES = Registry("topology engine", lazy={
    "ripser": "pipeline.topology.engines:RIPSER",  # the reference: ripser / gudhi + persim
    "fast": "pipeline.topology.engines:FAST",      # numba, the same images to ~1e-10
})
