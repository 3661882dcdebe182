"""Presets: YAML files of overrides on top of params.yaml, printed as `dvc exp run -S` flags.

    dvc exp run -n paper $(python -m pipeline.presets presets/paper-cifar10.yaml)

The merged params must validate. Values are printed as `dvc exp run -S` parses them (YAML),
without spaces, so that the shell's `$(...)` splits flags only between them. A value holding
whitespace (a `data.root` with a space) cannot pass through `$(...)`, which splits words and
never removes quotes: the printer refuses it, naming the key, and that one flag is given by hand
(`dvc exp run -S 'data.root=/data/my cifar' $(python -m pipeline.presets FILE)`, the key left out
of the preset). An empty preset, an empty section and a section where params.yaml has a value
(`train: {epochs: {a: 1}}`) are errors naming the file and the key.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ParamsError
from pipeline.params import DEFAULT_PARAMS, validate
from pipeline.schema import flatten, read_yaml


def apply_overrides(base: dict[str, Any], overrides: dict[str, Any], source: str = "preset") -> dict[str, Any]:
    """A copy of `base` with every dotted key of `overrides` set (what `dvc exp run -S` does);
    ParamsError naming `source` and the key where `base` holds a value, not a section, on its path."""
    merged = json.loads(json.dumps(base))
    for dotted, value in flatten(overrides).items():
        *path, last = dotted.split(".")
        node = merged
        for depth, part in enumerate(path, 1):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                where = ".".join(path[:depth])
                raise ParamsError(f"{source}: {dotted}: {where} is a value in the params ({node!r}), not a "
                                  f"section of keys; give {where} a value, not a mapping")
        node[last] = value
    return merged


def _yaml_value(value: Any) -> str:
    """A value as `dvc exp run -S` parses it (YAML): plain strings stay plain, the rest compact JSON."""
    if isinstance(value, str) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, separators=(",", ":"))


def _read(path: str | Path, what: str) -> dict[str, Any]:
    try:
        return read_yaml(path, what)
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not a text (UTF-8) file; a {what} is YAML") from None


def preset_flags(preset: str | Path, params: str | Path = DEFAULT_PARAMS) -> list[str]:
    """`-S key=value` arguments applying a preset's overrides; the merged params must validate,
    and every flag must pass through the shell's `$(...)` as one word (module docstring)."""
    overrides = _read(preset, "preset")
    flat = flatten(overrides)
    if not flat:
        raise ParamsError(f"{preset}: no overrides; a preset sets keys of params.yaml, e.g. train: {{epochs: 20}}")
    empty = [key for key, value in flat.items() if value == {}]
    if empty:
        raise ParamsError(f"{preset}: {empty[0]}: an empty section overrides nothing; give its keys or leave it out")
    validate(apply_overrides(_read(params, "params file"), overrides, str(preset)), f"{params} + {preset}")
    flags = []
    for key, value in flat.items():
        flag = f"{key}={_yaml_value(value)}"
        if flag.split() != [flag]:
            raise ParamsError(f"{preset}: {key}={value!r} holds whitespace, which the shell's $(...) splits; "
                              f"leave {key} out of the preset and pass it by hand: -S {shlex.quote(flag)}")
        flags += ["-S", flag]
    return flags


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.presets", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a preset: a YAML file of overrides, e.g. presets/paper-cifar10.yaml")
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="the params file it overrides")
    args = parser.parse_args(argv)
    try:
        print(" ".join(preset_flags(args.file, args.params)))
    except ParamsError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
