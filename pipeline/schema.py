"""The params schema's machinery: a section model, its validation, and one-line error text.

A leaf of the house (pydantic, yaml and the project's errors only): each section's model lives
beside the code that owns it (``pipeline/data/params.py``, ``pipeline/topology/params.py``,
``pipeline/models/params.py``, ``pipeline/training/params.py``, each method's file) and builds on
``Section``; ``pipeline.params`` assembles the whole file from them.

Rules every section follows: every key is given in the file (no hidden defaults: a missing key
fails naming it), unknown keys fail with the allowed ones, ``.inf`` and ``.nan`` are refused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from pipeline.errors import ParamsError

SHOWN_CHARS = 120  # a value longer than this is cut in messages (a 1,000-entry list is not echoed)


class Section(BaseModel):
    """A params section: every key given, no unknown key, no inf or NaN. Keys listed in
    ``optional_keys`` may be left out (their fields carry a default)."""

    model_config = ConfigDict(extra="forbid", strict=False, populate_by_name=True,
                              allow_inf_nan=False)
    optional_keys: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _every_key_given(cls, data: Any) -> Any:
        if isinstance(data, dict):
            missing = [f.alias or n for n, f in cls.model_fields.items()
                       if (f.alias or n) not in data and n not in data
                       and (f.alias or n) not in cls.optional_keys]
            if missing:
                raise PydanticCustomError("missing_keys", "missing {keys}", {"keys": missing})
        return data


def fields_of(model: type[BaseModel]) -> dict[str, Any]:
    """A section's fields by their params.yaml names (aliases such as `lambda`)."""
    return {f.alias or n: f for n, f in model.model_fields.items()}


def valid_range(value: list[float]) -> list[float]:
    """[low, high] with low < high (a persistence-image window)."""
    if len(value) != 2 or not value[0] < value[1]:
        raise ValueError(f"must be [low, high] with low < high, got {value}")
    return value


def shown(value: Any) -> str:
    """repr(value), cut to SHOWN_CHARS characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"epochs": 20}} -> {"train.epochs": 20} (lists are values, not branches)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _key(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def _model_of(annotation: Any) -> Any:
    """A field's model: an optional block (a method's, `Model | None`) is its non-None member."""
    return next((a for a in getattr(annotation, "__args__", ()) if a is not type(None)), annotation)


def _is_section(model: type[BaseModel], key: str) -> bool:
    annotation = _model_of(getattr(fields_of(model).get(key), "annotation", None))
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _section_of(root: type[BaseModel], loc: tuple) -> type[BaseModel]:
    model = root
    for part in loc:
        model = _model_of(fields_of(model)[str(part)].annotation)
    return model


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
        return f"{where}: unknown key (allowed here: {', '.join(sorted(fields_of(section)))})"
    message = problem["msg"].removeprefix("Value error, ")
    if len(message) > 2 * SHOWN_CHARS:  # a validator that echoes a long value
        message = message[:2 * SHOWN_CHARS] + "..."
    return f"{where}={shown(problem.get('input'))}: {message}"


def validate_section(model: type[BaseModel], raw: Any, source: str = "params",
                     prefix: tuple = ()) -> Any:
    """`model` validated from `raw`; ParamsError with one line naming each bad key, as
    `source: <prefix>.<key>...`."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ParamsError("; ".join(_describe(p, source, model, prefix) for p in error.errors())) from None


def read_yaml(path: str | Path, what: str = "params file") -> dict[str, Any]:
    """A params-like YAML file as a mapping; ParamsError names the file (and `what` it is
    meant to be) when it is missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: {what} not found" if not path.is_dir()
                          else f"{path}: is a folder, not a {what}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    return raw or {}
