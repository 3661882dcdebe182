"""Every stage command validates params.yaml before any work: a bad key is one clear stderr line
and exit status 1, never a traceback, and nothing is written."""
import subprocess
import sys

import pytest
import yaml

from conftest import subprocess_env, tiny_params

pytestmark = pytest.mark.slow  # every stage command in a subprocess

STAGES = {  # command -> (a bad edit of params.yaml, what the error line must name)
    "source": (("distill", "tgd", "alpha", 1.5), "distill.tgd.alpha=1.5"),
    "prepare": (("data", "shard_sise", 64), "data.shard_sise: unknown key"),
    "prepare ": (("train", "epochs", -1), "train.epochs=-1"),   # another stage's section, at the first stage
    "topology": (("topology", "image", "resolutoin", 50), "topology.image.resolutoin: unknown key"),
    "topology ": (("models", "student", "wrn15_1"), "models.student='wrn15_1'"),
    "topology_figure": (("export", "opset", 3), "export.opset=3"),
    "train_teacher image": (("train", "epochs", "five"), "train.epochs='five'"),
    "train_student": (("train", "epochs", None), "missing key train.epochs"),
    "distill kd": (("distill", "kd", "temperature", float("inf")), "distill.kd.temperature=inf"),
    "teachers": (("distill", "tgd", None), "missing section distill.tgd"),
    "evaluate": (("evaluate", "checkpoint", "newest"), "evaluate.checkpoint='newest'"),
}


def _edit(raw: dict, path: tuple) -> dict:
    """Set a key (a value of None deletes it)."""
    *keys, last, value = path
    node = raw
    for key in keys:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return raw


def test_every_stage_rejects_bad_params_before_work(tmp_path):
    env = subprocess_env()
    running = {}
    for command, (edit, _) in STAGES.items():
        folder = tmp_path / (command.strip().replace(" ", "_") + ("_2" if command.endswith(" ") else ""))
        folder.mkdir()
        (folder / "params.yaml").write_text(yaml.safe_dump(_edit(tiny_params(), edit), sort_keys=False))
        running[command] = (folder, subprocess.Popen(
            [sys.executable, "-m", f"stages.{command.split()[0]}", *command.split()[1:]],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for command, (folder, process) in running.items():
        out, err = process.communicate(timeout=180)
        expected = STAGES[command][1]
        assert process.returncode == 1, (command, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: params.yaml: "), (command, err)
        assert expected in lines[0], (command, lines[0])
        assert "Traceback" not in err and out == ""
        assert sorted(p.name for p in folder.iterdir()) == ["params.yaml"], command  # no work done
