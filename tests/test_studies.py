"""The study scripts (studies/*.sh) queue what they say, without running DVC.

Each script that queues experiments runs here against a stand-in `dvc` on PATH that records its
arguments, so loops over seeds and variants are expanded as bash expands them. Checked: every
experiment name is unique (across the scripts too), every `-S key=value` names a key of
params.yaml (the `distill` section in its per-method layout), data.root is the absolute data
folder given, the queue is started, and a name already taken stops the script before it queues
anything. The other scripts only have to parse (`bash -n`)."""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "studies").glob("*.sh"))
STUDIES = [p for p in SCRIPTS   # the scripts that queue experiments themselves (not in a comment)
           if any("dvc exp run --queue" in line.split("#")[0] for line in p.read_text().splitlines())]
SEP = "\x1f"

# distill's per-method layout: {methods, anneal, teacher_cache, <method>: {keys}}
DISTILL = {
    "methods": None, "anneal": None, "teacher_cache": None,
    "kd": ("lambda", "temperature", "kl_reduction"),
    "sp": ("lambda", "gamma"),
    "tgd": ("lambda", "temperature", "kl_reduction", "alpha", "gamma"),
    "tpkd": ("lambda", "temperature", "kl_reduction", "alpha", "beta"),
    "tgd_t1": ("lambda", "temperature", "kl_reduction", "gamma"),
    "aver": ("lambda", "temperature", "kl_reduction"),
    "dkd": ("ce_weight", "alpha", "beta", "temperature", "warmup"),
}

FAKE_DVC = f"""#!/usr/bin/env bash
for a in "$@"; do printf '%s{SEP}' "$a"; done >> "$FAKE_DVC_LOG"
printf '\\n' >> "$FAKE_DVC_LOG"
if [ "${{1:-}} ${{2:-}}" = "exp ls" ]; then printf '%s\\n' ${{FAKE_DVC_TAKEN:-}}; fi
"""


def _leaves(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        keys |= _leaves(value, path + ".") if isinstance(value, dict) else {path}
    return keys


def allowed_keys() -> set[str]:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    keys = {k for k in _leaves(params) if not k.startswith("distill.")}
    for name, block in DISTILL.items():
        keys |= {f"distill.{name}"} if block is None else {f"distill.{name}.{k}" for k in block}
    return keys


def run_script(script: Path, tmp_path: Path, taken: str = "") -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """The script's dvc calls, each as its argument list, with a stand-in dvc."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "dvc").write_text(FAKE_DVC)
    (bin_dir / "dvc").chmod(0o755)
    (tmp_path / "data").mkdir(exist_ok=True)
    log = tmp_path / "dvc.log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "FAKE_DVC_LOG": str(log), "FAKE_DVC_TAKEN": taken}
    done = subprocess.run(["bash", str(script), "data"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    calls = [line.split(SEP)[:-1] for line in log.read_text().splitlines() if line]
    return done, calls


def queued(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if c[:2] == ["exp", "run"]]


def overrides(call: list[str]) -> dict[str, str]:
    """-S key=value pairs of one `dvc exp run` (a key given twice would be a typo: refused)."""
    found: dict[str, str] = {}
    for flag, value in zip(call, call[1:]):
        if flag == "-S":
            key, _, val = value.partition("=")
            assert key not in found, f"{key} given twice in {shlex.join(call)}"
            found[key] = val
    return found


def name_of(call: list[str]) -> str:
    return call[call.index("-n") + 1]


def test_there_are_study_scripts():
    assert {p.name for p in STUDIES} >= {"cpu-grid.sh", "device-h200.sh", "cifar20.sh"}


def test_cifar20_phases_share_params_and_split_the_stages(tmp_path):
    """Within a seed every experiment has the same params (the teacher cache is one stage), but
    the two-raw-teachers control; phase 2 onwards of a seed start only after phase 1 is queued and
    started; the last experiment of a seed runs the whole DAG (no targets)."""
    done, calls = run_script(REPO / "studies" / "cifar20.sh", tmp_path)
    assert done.returncode == 0, done.stderr
    runs = queued(calls)
    by_seed: dict[str, list[list[str]]] = {}
    for call in runs:
        by_seed.setdefault(overrides(call)["train.seed"], []).append(call)
    assert sorted(by_seed) == ["0", "1", "2"]
    for seed, seed_runs in by_seed.items():
        names = [name_of(c) for c in seed_runs]
        assert names == [f"c20-s{seed}-teacher1", f"c20-s{seed}-teacher2", f"c20-s{seed}-kd-tgd",
                         f"c20-raw2-s{seed}", f"c20-s{seed}-t1-sp", f"c20-s{seed}-aver-dkd", f"c20-s{seed}"]
        params = {name_of(c): overrides(c) for c in seed_runs}
        same = [p for n, p in params.items() if "raw2" not in n]
        assert all(p == same[0] for p in same), seed
        assert params[f"c20-raw2-s{seed}"]["models.teacher_topology_input"] == "x"
        assert same[0]["train.epochs"] == "20" and "models.teacher_topology_input" not in same[0]
        assert seed_runs[-1][-2] == "-S"                        # the final run names no stage
    starts = [i for i, c in enumerate(calls) if c[:2] == ["queue", "start"]]
    assert len(starts) == 3 * 4                                # one per phase and seed


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_fail_fast(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "set -euo pipefail" in script.read_text()


@pytest.mark.parametrize("script", STUDIES, ids=lambda p: p.name)
def test_study_queues_valid_experiments(script, tmp_path):
    done, calls = run_script(script, tmp_path)
    assert done.returncode == 0, done.stderr
    runs = queued(calls)
    assert runs, f"{script.name} queued nothing"
    keys = allowed_keys()
    names = [name_of(c) for c in runs]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    data = str((tmp_path / "data").resolve())
    for call in runs:
        assert "--queue" in call, shlex.join(call)
        given = overrides(call)
        unknown = sorted(set(given) - keys)
        assert not unknown, f"{name_of(call)}: keys not in params.yaml: {unknown}"
        assert os.path.isabs(given["data.root"]), name_of(call)
        assert os.path.realpath(given["data.root"]) == os.path.realpath(data), name_of(call)
        assert given.get("train.seed", "").isdigit(), f"{name_of(call)}: no train.seed"
        assert f"-s{given['train.seed']}" in name_of(call), f"{name_of(call)}: the seed not in its name"
    starts = [c for c in calls if c[:2] == ["queue", "start"]]
    assert starts and all("-j" in c for c in starts)   # one start, or one per phase (cifar20.sh)


def test_names_are_unique_across_studies(tmp_path):
    names = []
    for i, script in enumerate(STUDIES):
        sub = tmp_path / str(i)
        sub.mkdir()
        names += [name_of(c) for c in queued(run_script(script, sub)[1])]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_data_root_is_given_as_a_variable():
    """The scripts pass data.root from their absolute DATA, never a relative literal."""
    for script in STUDIES:
        text = script.read_text()
        assert '"data.root=$DATA"' in text and 'DATA=$(cd "$DATA" && pwd)' in text, script.name


@pytest.mark.parametrize("script", STUDIES, ids=lambda p: p.name)
def test_a_taken_name_queues_nothing(script, tmp_path):
    first = name_of(queued(run_script(script, tmp_path)[1])[-1])
    done, calls = run_script(script, tmp_path, taken=f"other {first}")
    assert done.returncode == 1 and first in done.stderr
    assert not queued(calls) and not [c for c in calls if c[:2] == ["queue", "start"]]


@pytest.mark.parametrize("script", STUDIES, ids=lambda p: p.name)
def test_start_0_only_queues(script, tmp_path, monkeypatch):
    monkeypatch.setenv("START", "0")
    done, calls = run_script(script, tmp_path)
    assert done.returncode == 0 and queued(calls)
    assert not [c for c in calls if c[:2] == ["queue", "start"]]
    assert "dvc queue start -j" in done.stdout
