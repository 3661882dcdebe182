"""params.yaml's `topology` section: the persistence-image recipes and how the stage runs.

``topology.image`` and ``topology.signal`` are the recipes (docs/topology.md); the library
functions of ``pipeline.topology`` validate a recipe passed to them with these same models.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator

from pipeline.schema import Section, valid_range
from pipeline.topology.engine_names import ENGINES

# The absurd bound on `resolution`: one 1024 x 1024 float32 PI is 4 MB a channel a sample (the
# paper's is 50 x 50, 10 kB). Whether a resolution below it fits depends on the sample count, the
# channels and the machine: the topology stage checks that before it creates the stores
# (pipeline.topology_stage.checks.check_sizes).
MAX_RESOLUTION = 1024


def _resolution(value: int) -> int:
    if value > MAX_RESOLUTION:
        raise ValueError(f"must be at most {MAX_RESOLUTION} (a {MAX_RESOLUTION} x {MAX_RESOLUTION} persistence image "
                         "is 4 MB a channel a sample; the paper's is 50)")
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

    _check_resolution = field_validator("resolution")(classmethod(lambda cls, v: _resolution(v)))
    _check_birth = field_validator("birth_range")(classmethod(lambda cls, v: valid_range(v)))
    _check_pers = field_validator("pers_range")(classmethod(lambda cls, v: valid_range(v)))

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
        return valid_range(value)


class SignalRecipe(Section):
    """topology.signal: the persistence-image recipe of sensor windows (TPKD)."""

    threshold: float = Field(ge=0.0)
    resolution: int = Field(gt=0)
    sigma: float = Field(gt=0.0)
    birth_range: list[float]
    pers_range: list[float]
    normalize: bool

    _check_resolution = field_validator("resolution")(classmethod(lambda cls, v: _resolution(v)))
    _check_birth = field_validator("birth_range")(classmethod(lambda cls, v: valid_range(v)))
    _check_pers = field_validator("pers_range")(classmethod(lambda cls, v: valid_range(v)))


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
        if value not in ENGINES:
            raise ValueError(f"unknown engine {value!r}; known: {', '.join(ENGINES.names())}")
        return value

    @field_validator("n_jobs")
    @classmethod
    def _n_jobs(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError(f"must be a positive number of workers or -1 (all cores), got {value}")
        return value
