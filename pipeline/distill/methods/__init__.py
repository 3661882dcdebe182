"""The distillation methods, one file each: importing this package registers every module of
it (``@register("name")``) in ``pipeline.distill.METHODS``. A new method is a file here plus
its block ``distill.<name>`` in params.yaml (docs/ARCHITECTURE.md)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):  # registration side effects
    importlib.import_module(f"{__name__}.{_module.name}")
