"""What a run is: its setting (every param but the seed and how it ran), the params in which runs
differ, short `key=value` labels, and the refusals of pipeline.experiments to average or pair runs
that are not repeats of one setting."""
from __future__ import annotations

import json
from typing import Any, Iterable

from pipeline.errors import PipelineError
from pipeline.experiment_runs import Run
from pipeline.schema import flatten
from pipeline.titles import count as plural

SEED = "train.seed"
# Where and how fast a run went, not what it computed: never part of a setting.
HOW_IT_RAN = frozenset({
    "train.device", "train.num_workers", "train.threads", "topology.n_jobs", "topology.backend",
    "topology.scheduler", "topology.shards_per_task", "data.shard_size", "distill.teacher_cache",
    "evaluate.batch_size", "evaluate.latency_repeats", "evaluate.latency_batch", "export.batch_size",
})
SHARED = ("data.", "models.")   # what both sides of a paired comparison across runs must share
MISSING = object()


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if "/" in text:   # a path: its last folders
        parts = text.split("/")
        while len(parts) > 1 and len("…/" + "/".join(parts[1:])) > limit:
            parts = parts[1:]
        tail = "…/" + "/".join(parts[1:]) if len(parts) > 1 else "…" + text[-(limit - 1):]
        return tail if len(tail) <= limit else "…" + text[-(limit - 1):]
    return text[:limit - 1] + "…"


def show_value(value: Any, limit: int = 24) -> str:
    """A param's value in a few characters: yaml's spelling, long lists and paths cut."""
    if value is MISSING:
        return "(absent)"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return _cut("[" + ",".join(show_value(v, limit) for v in value) + "]", limit)
    return _cut(str(value), limit)


def short_key(key: str) -> str:
    """`distill.tgd.alpha` -> `tgd.alpha`: a method's block reads as the method's name."""
    return key.removeprefix("distill.")


def setting(run: Run, ignore: Iterable[str] = ()) -> dict[str, Any]:
    """The flat params that make the run what it is: all but train.seed, HOW_IT_RAN and `ignore`."""
    skip = {SEED, *HOW_IT_RAN, *ignore}
    return {k: v for k, v in flatten(run.params).items()
            if k not in skip and not any(k.startswith(f"{s}.") for s in skip)}


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two flat param dicts (absent counts), in file order."""
    keys = list(dict.fromkeys([*a, *b]))
    return [k for k in keys if a.get(k, MISSING) != b.get(k, MISSING)]


def changed_params(run: Run, reference: Run) -> list[str]:
    """`key=value` for every param of `run` that differs from `reference` (seed included)."""
    mine, theirs = flatten(run.params), flatten(reference.params)
    return [f"{short_key(k)}={show_value(mine.get(k, MISSING))}" for k in differences(theirs, mine)]


def describe(params: dict[str, Any]) -> str:
    """`digits, teachers wrn16_1 + wrn16_1, student wrn10_1, 5 epochs`: what a reader asks first."""
    data, models = params.get("data") or {}, params.get("models") or {}
    epochs = (params.get("train") or {}).get("epochs")
    where = f" ({show_value(data['root'], 32)})" if data.get("root") else ""
    parts = [f"{data.get('name', '?')}{where}",
             f"teachers {models.get('teacher_image', '?')} + {models.get('teacher_topology', '?')}",
             f"student {models.get('student', '?')}"]
    if isinstance(epochs, int):
        parts.append(plural(epochs, "epoch"))
    return ", ".join(parts)


def group(runs: dict[str, Run], ignore: Iterable[str] = ()) -> list[list[Run]]:
    """The runs grouped by setting, in their order; one group when they are repeats of one."""
    groups: dict[str, list[Run]] = {}
    for run in runs.values():
        groups.setdefault(json.dumps(setting(run, ignore), sort_keys=True), []).append(run)
    return list(groups.values())


def _names(runs: list[Run], limit: int = 4) -> str:
    names = [r.name for r in runs]
    return ", ".join(names) if len(names) <= limit else \
        f"{', '.join(names[:limit])}, … ({len(names)} runs)"


def _what_differs(settings: list[dict[str, Any]], keys: list[str], limit: int = 4) -> str:
    shown = [f"{k} ({' vs '.join(show_value(s.get(k, MISSING)) for s in settings)})"
             for k in keys[:limit]]
    return ", ".join(shown) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _mixed(groups: list[list[Run]], ignore: Iterable[str]) -> tuple[str, str]:
    """(`a, b vs c`, `key (x vs y), ...`) of groups that are several settings."""
    settings = [setting(g[0], ignore) for g in groups]
    keys = list(dict.fromkeys(k for s in settings[1:] for k in differences(settings[0], s)))
    return " vs ".join(_names(g) for g in groups), _what_differs(settings, keys)


def require_repeats(runs: dict[str, Run], ignore: Iterable[str] = (), side: str = "runs") -> None:
    """Refuse to average or pair runs that are not repeats of one setting (all but the seed)."""
    groups = group(runs, ignore)
    if len(groups) > 1:
        names, what = _mixed(groups, ignore)
        raise PipelineError(f"{side} {names} differ in {what}; compare repeats of one setting, "
                            "or pass --match to pick them")


def require_shared(mine: dict[str, Run], theirs: dict[str, Run], ignore: Iterable[str] = ()) -> None:
    """Both sides of a paired comparison across runs: one data set and the same models."""
    a, b = setting(next(iter(mine.values())), ignore), setting(next(iter(theirs.values())), ignore)
    keys = [k for k in differences(a, b) if k.startswith(SHARED)]
    if keys:
        raise PipelineError(f"--match runs {_names(list(mine.values()))} and --baseline-match runs "
                            f"{_names(list(theirs.values()))} differ in {_what_differs([a, b], keys)}; "
                            "a paired comparison needs one data set and the same models on both sides")
