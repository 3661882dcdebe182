"""params.yaml, validated by a typed schema before any work is done.

params.yaml is the one source of every value: the schema declares types and limits but no
defaults, so a missing key or section fails naming it instead of quietly taking a value that
differs from the file. Every section forbids unknown keys (a typo such as
`topology.image.resolutoin` fails with the allowed keys) and non-finite numbers (`.inf`, `.nan`).

The `distill` section is gathered from the method registry: each method class declares the
hyperparameters it reads (pipeline.distill), and the section's schema is their union plus
`methods`, `anneal` and `teacher_cache`. Stages receive the validated models, never dicts.

    python -m pipeline.params preset presets/paper-cifar10.yaml   # prints -S flags for dvc exp run
"""
from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from pipeline.errors import ParamsError

DEFAULT_PARAMS = Path("params.yaml")


class Section(BaseModel):
    """A params section: every key given, no unknown key, no inf or NaN."""

    model_config = ConfigDict(extra="forbid", strict=False, populate_by_name=True,
                              allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _every_key_given(cls, data: Any) -> Any:
        if isinstance(data, dict):
            missing = [f.alias or n for n, f in cls.model_fields.items()
                       if (f.alias or n) not in data and n not in data]
            if missing:
                raise PydanticCustomError("missing_keys", "missing {keys}", {"keys": missing})
        return data


class DataParams(Section):
    name: str
    root: Optional[str]
    split_seed: int
    test_fraction: float = Field(gt=0.0, lt=1.0)
    digits_size: int = Field(ge=8)
    cinic10_valid_into_train: bool
    pamap2_test_subject: int = Field(ge=101, le=109)
    limit_train: Optional[int] = Field(gt=0)
    limit_test: Optional[int] = Field(gt=0)
    skip_corrupt: bool
    shard_size: int = Field(gt=0)

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        from pipeline.data import DATASETS  # late import: the registry fills on import

        if value not in DATASETS:
            raise ValueError(f"unknown data set {value!r}; known: {', '.join(sorted(DATASETS))}")
        return value


def _range(value: list[float]) -> list[float]:
    if len(value) != 2 or not value[0] < value[1]:
        raise ValueError(f"must be [low, high] with low < high, got {value}")
    return value


class ImageRecipe(Section):
    """topology.image: the persistence-image recipe of images (docs/topology.md)."""

    filtrations: list[Literal["sequence", "cubical"]]  # = pipeline.topology.FILTRATIONS
    threshold: float = Field(ge=0.0)
    resolution: int = Field(gt=0)
    sigma: float = Field(gt=0.0)
    birth_range: list[float]                    # sequence
    pers_range: list[float]                     # sequence
    orders: list[Literal["row", "column"]]      # sequence
    cubical_range: list[float]                  # cubical: birth and persistence axes
    normalize: bool
    min_max: float = Field(ge=0.0)              # a PI whose raw maximum is below it is stored as zeros

    _check_birth = field_validator("birth_range")(classmethod(lambda cls, v: _range(v)))
    _check_pers = field_validator("pers_range")(classmethod(lambda cls, v: _range(v)))

    @field_validator("orders")
    @classmethod
    def _orders(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"must be a non-empty list of distinct orders (row, column), got {value}")
        return value

    @field_validator("filtrations")
    @classmethod
    def _filtrations(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"must be a non-empty list of distinct filtrations (sequence, cubical), got {value}")
        return value

    @field_validator("cubical_range")
    @classmethod
    def _cubical_range(cls, value: list[float]) -> list[float]:
        if not all(abs(v) < float("inf") for v in value):  # NaN fails too
            raise ValueError(f"must be finite, got {value}")
        return _range(value)


class SignalRecipe(Section):
    threshold: float = Field(ge=0.0)
    resolution: int = Field(gt=0)
    sigma: float = Field(gt=0.0)
    birth_range: list[float]
    pers_range: list[float]
    normalize: bool

    _check_birth = field_validator("birth_range")(classmethod(lambda cls, v: _range(v)))
    _check_pers = field_validator("pers_range")(classmethod(lambda cls, v: _range(v)))


class TopologyParams(Section):
    engine: str
    n_jobs: int
    shards_per_task: Optional[int] = Field(gt=0)  # null: about three tasks per worker
    backend: Literal["loky", "dask"]
    scheduler: Optional[str]
    dtype: Literal["float32", "float16"]  # stored PIs; the engine computes in float64
    image: ImageRecipe
    signal: SignalRecipe

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        from pipeline.topology import ENGINES  # the engine registry is the list of choices

        if value not in ENGINES:
            raise ValueError(f"unknown engine {value!r}; known: {', '.join(sorted(ENGINES))}")
        return value

    @field_validator("n_jobs")
    @classmethod
    def _n_jobs(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError(f"must be a positive number of workers or -1 (all cores), got {value}")
        return value


class ModelsParams(Section):
    teacher_image: str
    teacher_topology: str
    student: str

    @field_validator("teacher_image", "teacher_topology", "student")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from pipeline.models import build_model

        try:  # building is cheap and is the one place that knows the names
            build_model(value, in_channels=1, num_classes=2)
        except ParamsError as error:
            raise ValueError(str(error)) from None
        return value


class TrainParams(Section):
    optimizer: Literal["adam", "sgd"]
    lr: float = Field(gt=0.0)
    weight_decay: float = Field(ge=0.0)
    momentum: float = Field(ge=0.0, lt=1.0)
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    schedule: Literal["none", "cosine", "step"]
    milestones: list[int]
    lr_decay: float = Field(gt=0.0, le=1.0)
    augment: bool
    seed: int
    device: Literal["auto", "cpu", "cuda"]
    num_workers: int = Field(ge=0)
    nproc: int = Field(gt=0)  # processes (ranks) on this node; > 1 relaunches under torchrun
    threads: int = Field(ge=0)  # torch threads per process; 0 = torch's default (pipeline.runtime)
    channels_last: bool         # persistence images in NHWC memory
    amp: bool                   # bf16 autocast of the forward passes on CUDA (ignored on CPU)
    compile: bool               # torch.compile the models

    @model_validator(mode="after")
    def _milestones(self) -> "TrainParams":
        bad = [m for m in self.milestones if not 0 < m < self.epochs]
        if bad:
            raise ValueError(f"milestones must lie in (0, epochs={self.epochs}), got {bad}")
        return self


class DistillBase(Section):
    """The keys of `distill` that belong to no method; the methods' own keys are added to it
    from the registry (`distill_schema`)."""

    methods: list[str]
    anneal: bool  # initialise students from the scratch student
    teacher_cache: bool  # read the teachers stage's stored outputs when exact (pipeline.teacher_cache)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        from pipeline.distill import METHODS

        known = ", ".join(sorted(set(METHODS) - {"scratch"}))
        if not value:
            raise ValueError(f"must name at least one distillation method ({known})")
        if "scratch" in value:  # the train_student stage, not a distillation method
            raise ValueError(f"scratch is the train_student stage (always run), not a "
                             f"distillation method; known methods: {known}")
        unknown = [m for m in value if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {known}")
        if len(set(value)) != len(value):
            raise ValueError(f"methods must be distinct, got {value}")
        return value


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


class ExportParams(Section):
    teachers: bool
    opset: int = Field(ge=7)
    max_abs_diff: float = Field(gt=0.0)
    min_top1_agreement: float = Field(ge=0.0, le=100.0)
    batch_size: int = Field(gt=0)


class Params(Section):
    """The whole file; `schema()` is this class with the registry's `distill` section."""

    data: DataParams
    topology: TopologyParams
    models: ModelsParams
    train: TrainParams
    distill: DistillBase
    evaluate: EvaluateParams
    export: ExportParams


def method_fields(methods: dict[str, type]) -> dict[str, tuple[Any, Any]]:
    """The union of the methods' declared hyperparameters (`params_model`) as pydantic field
    definitions; a key that two methods declare differently is a programming error."""
    fields: dict[str, tuple[Any, Any]] = {}
    owner: dict[str, str] = {}
    for name, cls in sorted(methods.items()):
        for key, field in cls.params_model.model_fields.items():
            if key in fields and repr(fields[key][1]) != repr(field):
                raise TypeError(f"distill.{field.alias or key} is declared differently by methods "
                                f"{owner[key]!r} and {name!r}")
            fields.setdefault(key, (field.annotation, field))
            owner.setdefault(key, name)
    return fields


def schema() -> type[Params]:
    """Params whose `distill` section holds the keys of every registered method (a method
    registered later, e.g. in a test, gets a new schema)."""
    from pipeline.distill import METHODS

    return _schema(tuple(sorted(METHODS.items())))


@functools.cache
def _schema(methods: tuple[tuple[str, type], ...]) -> type[Params]:
    distill = create_model("DistillParams", __base__=DistillBase, **method_fields(dict(methods)))
    return create_model("Params", __base__=Params, distill=(distill, ...))


def _key(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def _describe(problem: dict, source: str, root: type[BaseModel], prefix: tuple = ()) -> str:
    loc = (*prefix, *problem["loc"])
    key = _key(loc)
    where = f"{source}: {key}" if key else source
    if problem["type"] == "missing_keys":
        section = _section_of(root, problem["loc"])
        named = [_key((*loc, k)) for k in problem["ctx"]["keys"]]
        kinds = {"section" if _is_section(section, k) else "key" for k in problem["ctx"]["keys"]}
        return (f"{source}: missing {' and '.join(sorted(kinds))} {', '.join(named)} "
                "(every key must be given in the file)")
    if problem["type"] == "extra_forbidden":
        section = _section_of(root, problem["loc"][:-1])
        allowed = ", ".join(sorted(f.alias or n for n, f in section.model_fields.items()))
        return f"{where}: unknown key (allowed here: {allowed})"
    message = problem["msg"].removeprefix("Value error, ")
    return f"{where}={problem.get('input')!r}: {message}"


def _is_section(model: type[BaseModel], key: str) -> bool:
    fields = {f.alias or n: f for n, f in model.model_fields.items()}
    annotation = fields[key].annotation if key in fields else None
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _section_of(root: type[BaseModel], loc: tuple) -> type[BaseModel]:
    model = root
    for part in loc:
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        model = fields[str(part)].annotation  # type: ignore[assignment]
    return model


def validate_section(model: type[BaseModel], raw: Any, source: str = "params",
                     prefix: tuple = ()) -> Any:
    """`model` validated from `raw`; ParamsError with one line naming each bad key, as
    `source: <prefix>.<key>...`."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ParamsError("; ".join(_describe(p, source, model, prefix) for p in error.errors())) from None


def validate(raw: dict[str, Any] | None, source: str = "params") -> Params:
    """Validate a params mapping; raise ParamsError with one line naming each bad key."""
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{source}: must be a mapping of sections, got {type(raw).__name__}")
    return validate_section(schema(), raw or {}, source)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A params-like YAML file as a mapping; ParamsError names the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    return raw or {}


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml (every section, so a typo anywhere fails early)."""
    return validate(read_yaml(path), str(path))


def load_section(name: str, path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """One section of params.yaml validated on its own, as `section` returns it. The data
    stages (prepare, topology) use it: validating `models` and `distill` imports torch."""
    path = Path(path)
    raw = read_yaml(path)
    if name not in raw:
        raise ParamsError(f"{path}: missing section {name} (every key must be given in the file)")
    model = Params.model_fields[name].annotation
    return validate_section(model, raw[name], str(path), (name,)).model_dump(by_alias=True)


def section(params: Params, name: str) -> dict[str, Any]:
    """A section as a plain dict with params.yaml's own key names (e.g. `lambda`), for the library
    functions that still take one (prepare, the topology job, the metrics of evaluate)."""
    return getattr(params, name).model_dump(by_alias=True)


# -- presets: files of overrides on top of params.yaml --------------------------------------

def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"epochs": 20}} -> {"train.epochs": 20} (lists are values, not branches)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def apply_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with every dotted key of `overrides` set (what `dvc exp run -S` does)."""
    merged = json.loads(json.dumps(base))
    for dotted, value in flatten(overrides).items():
        *path, last = dotted.split(".")
        node = merged
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return merged


def _yaml_value(value: Any) -> str:
    """A value as `dvc exp run -S` parses it (YAML), without spaces so that the shell's
    `$(...)` splits flags only between them: plain strings stay plain, the rest compact JSON."""
    if isinstance(value, str) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, separators=(",", ":"))


def preset_flags(preset: str | Path, params: str | Path = DEFAULT_PARAMS) -> list[str]:
    """`-S key=value` arguments applying a preset's overrides; the merged params must validate."""
    overrides = read_yaml(preset)
    validate(apply_overrides(read_yaml(params), overrides), f"{params} + {preset}")
    flags = []
    for key, value in flatten(overrides).items():
        flag = f"{key}={_yaml_value(value)}"
        flags += ["-S", flag if flag.split() == [flag] else shlex.quote(flag)]
    return flags


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.params", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a params file")
    check.add_argument("file", nargs="?", default=str(DEFAULT_PARAMS))
    preset = commands.add_parser("preset", help="print the -S flags that apply a preset")
    preset.add_argument("file", help="a preset: a YAML file of overrides, e.g. presets/paper-cifar10.yaml")
    preset.add_argument("--params", default=str(DEFAULT_PARAMS), help="the params file it overrides")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            load_params(args.file)
            print(f"{args.file}: valid")
        else:
            print(" ".join(preset_flags(args.file, args.params)))
    except ParamsError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
