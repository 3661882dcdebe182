"""params.yaml's `models` section: the three architectures, checked by name (no torch)."""
from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from pipeline.errors import ParamsError
from pipeline.models import check_model_name
from pipeline.schema import Section


class ModelsParams(Section):
    teacher_image: str     # teacher 1, raw inputs
    teacher_topology: str  # teacher 2, persistence images
    student: str
    # what teacher 2 reads: pi (persistence images: TGD's topology teacher) | x (raw inputs: a
    # second raw-input teacher, trained with its own seed - the control that asks whether it is
    # the topology or a second teacher that helps)
    teacher_topology_input: Literal["pi", "x"]

    @field_validator("teacher_image", "teacher_topology", "student")
    @classmethod
    def _known_model(cls, value: str) -> str:
        try:
            check_model_name(value)
        except ParamsError as error:
            raise ValueError(str(error)) from None
        return value
