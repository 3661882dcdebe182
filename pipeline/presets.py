"""Presets: YAML files of overrides on top of params.yaml, printed as `dvc exp run -S` flags.

    dvc exp run -n paper $(python -m pipeline.presets presets/paper-cifar10.yaml)

The merged params must validate. Values are printed as `dvc exp run -S` parses them (YAML),
without spaces, so that the shell's `$(...)` splits flags only between them.
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
from pipeline.schema import read_yaml


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
    """A value as `dvc exp run -S` parses it (YAML): plain strings stay plain, the rest compact JSON."""
    if isinstance(value, str) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, separators=(",", ":"))


def preset_flags(preset: str | Path, params: str | Path = DEFAULT_PARAMS) -> list[str]:
    """`-S key=value` arguments applying a preset's overrides; the merged params must validate."""
    overrides = read_yaml(preset, "preset")
    validate(apply_overrides(read_yaml(params), overrides), f"{params} + {preset}")
    flags = []
    for key, value in flatten(overrides).items():
        flag = f"{key}={_yaml_value(value)}"
        flags += ["-S", flag if flag.split() == [flag] else shlex.quote(flag)]
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
