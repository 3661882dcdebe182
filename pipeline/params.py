"""params.yaml, the one source of every value, validated whole before any stage does work.

Each section's model lives beside its owner and the file is assembled here:

    data      pipeline/data/params.py        DataParams
    topology  pipeline/topology/params.py    TopologyParams (the recipes ImageRecipe, SignalRecipe)
    models    pipeline/models/params.py      ModelsParams (names checked without torch)
    train     pipeline/training/params.py    TrainParams
    distill   pipeline/distill/params.py     methods, anneal, teacher_cache + one block per method
    evaluate, export                         below (their owners import torch)

The schema declares types and limits but no defaults (pipeline.schema): a missing key fails
naming it, unknown keys and non-finite numbers fail too. Validation imports no torch, so every
stage, the data stages included, checks the whole file first: a bad `train.epochs` fails at
`prepare`, before anything is written.

    python -m pipeline.params check [FILE]      # validate a params file
"""
from __future__ import annotations

import argparse
import ast
import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, create_model, field_validator

from pipeline.data.params import DataParams
from pipeline.distill.params import DistillBase, distill_schema
from pipeline.errors import ParamsError
from pipeline.models.params import ModelsParams
from pipeline.schema import Section, read_yaml, validate_section
from pipeline.topology.params import TopologyParams
from pipeline.training.params import TrainParams

DEFAULT_PARAMS = Path("params.yaml")


class EvaluateParams(Section):
    checkpoint: Literal["last", "best"]
    batch_size: int = Field(gt=0)
    noise_std: list[float]
    ece_bins: int = Field(gt=0)
    latency_repeats: int = Field(gt=0)
    latency_batch: int = Field(gt=0)

    @field_validator("noise_std")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(s < 0 for s in value):
            raise ValueError(f"noise standard deviations must be >= 0, got {value}")
        return value


@functools.cache
def exporter_opsets() -> tuple[int, int] | None:
    """The opsets the installed PyTorch's TorchScript ONNX exporter supports, `(min, max)`, read
    from torch's own constants file (torch/onnx/_constants.py) without importing torch; None when
    that file is not found or not as expected (the export stage then checks with torch itself,
    pipeline.export.check_opset)."""
    try:
        spec = importlib.util.find_spec("torch")  # a top-level name: found, not imported
        folder = next(iter(spec.submodule_search_locations or []))
        tree = ast.parse(Path(folder, "onnx", "_constants.py").read_text())
    except (AttributeError, ImportError, OSError, SyntaxError, StopIteration, ValueError):
        return None
    found = {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
             and isinstance(node.value, ast.Constant) for t in node.targets if isinstance(t, ast.Name)}
    low, high = found.get("ONNX_MIN_OPSET"), found.get("ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET")
    return (low, high) if isinstance(low, int) and isinstance(high, int) else None


class ExportParams(Section):
    teachers: bool
    opset: int = Field(ge=7)
    max_abs_diff: float = Field(gt=0.0)
    min_top1_agreement: float = Field(ge=0.0, le=100.0)
    batch_size: int = Field(gt=0)

    @field_validator("opset")
    @classmethod
    def _exporter_supports(cls, value: int) -> int:
        supported = exporter_opsets()
        if supported and not supported[0] <= value <= supported[1]:
            raise ValueError(f"opset {value} is not supported by the installed PyTorch's ONNX exporter "
                             f"(opsets {supported[0]} to {supported[1]})")
        return value


class Params(Section):
    """The whole file; `schema()` is this class with the registry's `distill` section."""

    data: DataParams
    topology: TopologyParams
    models: ModelsParams
    train: TrainParams
    distill: DistillBase
    evaluate: EvaluateParams
    export: ExportParams


def schema() -> type[Params]:
    """Params whose `distill` section has a block for every registered method."""
    return _schema(distill_schema())


@functools.cache
def _schema(distill: type[DistillBase]) -> type[Params]:
    return create_model("Params", __base__=Params, distill=(distill, ...))


def validate(raw: dict[str, Any] | None, source: str = "params") -> Params:
    """Validate a params mapping; raise ParamsError with one line naming each bad key."""
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{source}: must be a mapping of sections, got {type(raw).__name__}")
    return validate_section(schema(), raw or {}, source)


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml, every section (a typo anywhere fails at once)."""
    return validate(read_yaml(path), str(path))


def section(params: Params, name: str) -> dict[str, Any]:
    """A section as a plain dict with params.yaml's own key names (e.g. `lambda`), for the library
    functions that take one (prepare, the topology stage)."""
    return getattr(params, name).model_dump(by_alias=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.params", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a params file")
    check.add_argument("file", nargs="?", default=str(DEFAULT_PARAMS))
    args = parser.parse_args(argv)
    try:
        load_params(args.file)
    except ParamsError as error:
        sys.exit(f"error: {error}")
    print(f"{args.file}: valid")


if __name__ == "__main__":
    main()
