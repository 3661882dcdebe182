"""The distillation methods, one file each, named as the method it registers
(``@register("name")``): ``pipeline.distill.METHODS`` lists the files without importing them and
loads one on first lookup. A new method is a file here plus its block ``distill.<name>`` in
params.yaml (docs/ARCHITECTURE.md)."""
