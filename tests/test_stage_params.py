"""Each distill@<method> stage depends on the distill keys its method reads and on no other:
checked on dvc.yaml itself and on the files the method_params stage writes."""
import json

import yaml

from conftest import REPO, tiny_params
from pipeline.params import validate
from pipeline.runs import write_method_params


def _methods_files(root, **distill) -> dict:
    raw = tiny_params()
    raw["distill"].update(distill)
    write_method_params(validate(raw))
    return {m: (root / f"data/method_params/{m}.json").read_bytes() for m in raw["distill"]["methods"]}


def test_alpha_changes_tgd_and_tpkd_files_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _methods_files(tmp_path)
    after = _methods_files(tmp_path, alpha=0.5)
    changed = sorted(m for m in before if before[m] != after[m])
    assert changed == ["tgd", "tpkd"]
    assert json.loads(after["tgd"])["alpha"] == 0.5
    beta = _methods_files(tmp_path, alpha=0.5, beta=700.0)
    assert sorted(m for m in after if after[m] != beta[m]) == ["tpkd"]


def test_dvc_yaml_wires_each_method_to_its_own_file():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    distill = stages["distill"]["do"]
    assert "data/method_params/${item}.json" in distill["deps"]
    assert [p for p in distill["params"] if str(p).startswith("distill")] == ["distill.anneal", "distill.teacher_cache"]
    assert stages["method_params"]["params"] == ["distill"]
    assert stages["method_params"]["outs"] == ["data/method_params"]
