"""The hyperparameter types and blocks the methods share (each method's own block in params.yaml,
``distill.<method>``, is validated by the model its file declares)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field
from typing_extensions import Annotated

from pipeline.schema import Section

Weight = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


class CEParams(Section):
    lambda_: Weight = Field(alias="lambda")  # weight of the distillation terms against CE


class LogitParams(CEParams):
    temperature: Positive
    kl_reduction: Literal["batchmean", "mean"]  # textbook | the authors' code (see losses.kd_kl)


class TwoTeacherParams(LogitParams):
    alpha: Weight  # teacher 1 (raw) vs teacher 2 (topology)
