"""params.yaml's `data` section (the prepare stage's keys)."""
from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator

from pipeline.data.base import DATASETS
from pipeline.schema import Section


class DataParams(Section):
    name: str
    root: Optional[str]
    split_seed: int = Field(ge=0, le=2**32 - 1)
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
        if value not in DATASETS:
            raise ValueError(f"unknown data set {value!r}; known: {', '.join(DATASETS.names())}")
        return value

    @field_validator("root")
    @classmethod
    def _root(cls, value: Optional[str]) -> Optional[str]:
        # '' would name the repository itself (fingerprinted, and prepared, on every run)
        if value is not None and not value.strip():
            raise ValueError("must be a folder or URL, or null for the embedded data sets; got an empty string")
        return value
