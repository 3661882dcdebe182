"""params.yaml's `distill` section: which methods run, and each method's own block.

    distill:
      methods: [kd, sp, tgd, tpkd]   # one distill@<method> DVC stage each
      anneal: true                   # students start from the scratch student's weights
      teacher_cache: true            # distill reads the teachers stage's stored outputs
      kd:  {lambda: 0.9, temperature: 4.0, kl_reduction: mean}
      tgd: {lambda: 0.9, temperature: 4.0, kl_reduction: mean, alpha: 0.99, gamma: 1000.0}
      ...

Each block is validated by the model its method declares (``params_model``), so a method owns
its keys and ``distill@<method>`` depends on ``distill.<method>`` alone. A method listed in
``methods`` must have its block; the block of a method that is not listed may be left out (it
is validated when given); a block no method owns is an unknown key.
"""
from __future__ import annotations

import functools
from typing import Optional

from pydantic import create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pipeline.distill import METHODS
from pipeline.schema import Section


class DistillBase(Section):
    """The keys of `distill` that belong to no method; each method's block is added to it from
    the registry (`distill_schema`)."""

    methods: list[str]
    anneal: bool  # initialise students from the scratch student
    teacher_cache: bool  # read the teachers stage's stored outputs when exact (pipeline.teacher_cache)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        known = ", ".join(n for n in METHODS.names() if n != "scratch")
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

    @model_validator(mode="after")
    def _listed_methods_have_blocks(self) -> "DistillBase":
        missing = [m for m in self.methods if METHODS[m].params_model is not None
                   and getattr(self, m, None) is None]
        if missing:
            raise PydanticCustomError("missing_keys", "missing {keys}", {"keys": missing})
        return self

    def block(self, method: str) -> Optional[Section]:
        """Method `method`'s validated block (None for one that reads none)."""
        return getattr(self, method, None)


def distill_schema() -> type[DistillBase]:
    """DistillBase with an optional block per registered method that declares hyperparameters
    (a method registered later, e.g. in a test, gets a new schema)."""
    return _schema(tuple((name, METHODS[name].params_model) for name in METHODS.names()))


@functools.cache
def _schema(models: tuple[tuple[str, type | None], ...]) -> type[DistillBase]:
    blocks = {name: (Optional[model], None) for name, model in models if model is not None}
    schema = create_model("DistillParams", __base__=DistillBase, **blocks)
    schema.optional_keys = tuple(blocks)
    return schema
