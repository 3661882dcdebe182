"""params.yaml, validated by a typed schema before any work is done.

Every section is a pydantic model that forbids unknown keys, so a typo such as
`topology.image.resolutoin` fails at once with one line naming the key and what is allowed,
instead of being silently ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ParamsError

DEFAULT_PARAMS = Path("params.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, populate_by_name=True)


class DataParams(_Section):
    name: str = "digits"
    root: Optional[str] = None
    split_seed: int = 0
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    cinic10_valid_into_train: bool = False
    pamap2_test_subject: int = Field(101, ge=101, le=109)
    limit_train: Optional[int] = Field(None, gt=0)
    limit_test: Optional[int] = Field(None, gt=0)
    skip_corrupt: bool = False
    shard_size: int = Field(4096, gt=0)

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


class ImageRecipe(_Section):
    threshold: float = Field(0.02, ge=0.0)
    resolution: int = Field(50, gt=0)
    sigma: float = Field(0.01, gt=0.0)
    birth_range: list[float] = [0.0, 0.3]
    pers_range: list[float] = [0.0, 0.3]
    orders: list[Literal["row", "column"]] = ["row", "column"]
    normalize: bool = True

    _check_birth = field_validator("birth_range")(classmethod(lambda cls, v: _range(v)))
    _check_pers = field_validator("pers_range")(classmethod(lambda cls, v: _range(v)))

    @field_validator("orders")
    @classmethod
    def _orders(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"must be a non-empty list of distinct orders (row, column), got {value}")
        return value


class SignalRecipe(_Section):
    threshold: float = Field(0.01, ge=0.0)
    resolution: int = Field(64, gt=0)
    sigma: float = Field(0.015, gt=0.0)
    birth_range: list[float] = [-1.0, 1.0]
    pers_range: list[float] = [-1.0, 1.0]
    normalize: bool = True

    _check_birth = field_validator("birth_range")(classmethod(lambda cls, v: _range(v)))
    _check_pers = field_validator("pers_range")(classmethod(lambda cls, v: _range(v)))


class TopologyParams(_Section):
    engine: Literal["ripser", "fast"] = "ripser"
    n_jobs: int = -1
    shards_per_task: Optional[int] = Field(None, gt=0)  # null: about three tasks per worker
    backend: Literal["loky", "dask"] = "loky"
    scheduler: Optional[str] = None
    dtype: Literal["float32", "float16"] = "float32"  # stored PIs; the engine computes in float64
    image: ImageRecipe = ImageRecipe()
    signal: SignalRecipe = SignalRecipe()

    @field_validator("n_jobs")
    @classmethod
    def _n_jobs(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError(f"must be a positive number of workers or -1 (all cores), got {value}")
        return value


class ModelsParams(_Section):
    teacher_image: str = "wrn16_3"
    teacher_topology: str = "wrn16_3"
    student: str = "wrn16_1"

    @field_validator("teacher_image", "teacher_topology", "student")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from pipeline.models import build_model

        try:  # building is cheap and is the one place that knows the names
            build_model(value, in_channels=1, num_classes=2)
        except ParamsError as error:
            raise ValueError(str(error)) from None
        return value


class TrainParams(_Section):
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(0.0005, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    epochs: int = Field(20, gt=0)
    batch_size: int = Field(64, gt=0)
    schedule: Literal["none", "cosine", "step"] = "none"
    milestones: list[int] = []
    lr_decay: float = Field(0.2, gt=0.0, le=1.0)
    augment: bool = False
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = Field(0, ge=0)
    nproc: int = Field(1, gt=0)  # processes (ranks) on this node; > 1 relaunches under torchrun

    @model_validator(mode="after")
    def _milestones(self) -> "TrainParams":
        bad = [m for m in self.milestones if not 0 < m < self.epochs]
        if bad:
            raise ValueError(f"milestones must lie in (0, epochs={self.epochs}), got {bad}")
        return self


class DistillParams(_Section):
    methods: list[str] = ["kd", "sp", "tgd", "tpkd"]
    lambda_: float = Field(0.9, alias="lambda", ge=0.0, le=1.0)
    temperature: float = Field(4.0, gt=0.0)
    alpha: float = Field(0.7, ge=0.0, le=1.0)
    gamma: float = Field(1000.0, ge=0.0)
    beta: float = Field(200.0, ge=0.0)
    anneal: bool = True
    kl_reduction: Literal["batchmean", "mean"] = "batchmean"

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        from pipeline.distill import METHODS

        # "scratch" is the train_student stage itself, not a distillation method
        unknown = [m for m in value if m not in METHODS or m == "scratch"]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {', '.join(sorted(set(METHODS) - {'scratch'}))}")
        if len(set(value)) != len(value):
            raise ValueError(f"methods must be distinct, got {value}")
        return value


class EvaluateParams(_Section):
    checkpoint: Literal["last", "best"] = "last"
    batch_size: int = Field(256, gt=0)
    noise_std: list[float] = [0.0, 0.05, 0.1, 0.2, 0.3]
    ece_bins: int = Field(15, gt=0)
    latency_repeats: int = Field(20, gt=0)

    @field_validator("noise_std")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(s < 0 for s in value):
            raise ValueError(f"noise standard deviations must be >= 0, got {value}")
        return value


class Params(_Section):
    data: DataParams = DataParams()
    topology: TopologyParams = TopologyParams()
    models: ModelsParams = ModelsParams()
    train: TrainParams = TrainParams()
    distill: DistillParams = DistillParams()
    evaluate: EvaluateParams = EvaluateParams()


def _one_line(error: ValidationError, source: str, within: tuple = ()) -> str:
    """The first problem of a pydantic error as `source: key.path: what is allowed`; `within`
    is the section path of a section validated on its own."""
    lines = []
    for problem in error.errors():
        loc = (*within, *problem["loc"])
        key = ".".join(str(part) for part in loc)
        if problem["type"] == "extra_forbidden":
            section = _section_of(loc[:-1])
            allowed = ", ".join(sorted(f.alias or n for n, f in section.model_fields.items()))
            lines.append(f"{source}: {key}: unknown key (allowed here: {allowed})")
        else:
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: {key}={problem.get('input')!r}: {message}")
    return "; ".join(lines)


def _section_of(loc: tuple) -> type[BaseModel]:
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields[str(part)]
        model = field.annotation  # type: ignore[assignment]
    return model


def validate(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a params mapping; raise ParamsError with one line naming each bad key."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as error:
        raise ParamsError(_one_line(error, source)) from None


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    return raw or {}


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml (every section, so a typo anywhere fails early)."""
    path = Path(path)
    return validate(_read(path), str(path))


def load_section(name: str, path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """One section of params.yaml validated on its own, as `section` returns it. The data
    stages (prepare, topology) use it: validating `models` and `distill` imports torch."""
    path = Path(path)
    raw = _read(path)
    if name not in raw:
        raise ParamsError(f"{path}: section {name!r} is missing")
    model = Params.model_fields[name].annotation
    try:
        return model.model_validate(raw[name]).model_dump(by_alias=True)
    except ValidationError as error:
        raise ParamsError(_one_line(error, str(path), within=(name,))) from None


def section(params: Params, name: str) -> dict[str, Any]:
    """A section as a plain dict with params.yaml's own key names (e.g. `lambda`)."""
    return getattr(params, name).model_dump(by_alias=True)
