"""The worked example of docs/ARCHITECTURE.md: a method with one new hyperparameter is one class
(here registered in the test; in the project, a module in pipeline/distill/) plus its key in
params.yaml. The params schema, the validation messages, the method's DVC dependencies and the
training step follow from the registry, with no other file touched."""
import json

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_params
from pipeline.distill import METHODS, build_method, register
from pipeline.distill.base import LogitKDMixin, LogitParams, Method, Weight
from pipeline.errors import ParamsError
from pipeline.models import build_model
from pipeline.params import validate
from pipeline.runs import write_method_params
from pipeline.train import train_step


class SmoothKDParams(LogitParams):     # kd's keys (lambda, temperature, kl_reduction) ...
    smoothing: Weight                  # ... and one new one: label smoothing of the CE term


@pytest.fixture
def kd_smooth():
    @register("kd_smooth")
    class SmoothKD(LogitKDMixin, Method):
        """kd with label smoothing: (1 - lambda) CE_smooth(zs, y) + lambda T^2 KL(z1 || zs)."""

        teacher_keys = ("image",)
        inputs = ("x",)
        params_model = SmoothKDParams

        def forward(self, batch):
            x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
            zs, _ = self.student(x)
            z1, _ = self.teacher("image", batch)
            ce = F.cross_entropy(zs, y, label_smoothing=self.hparams.smoothing)
            lam = self.hparams.lambda_
            return zs, {"ce": (1 - lam) * ce, "kd": lam * self.kl(zs, z1)}

    yield SmoothKD
    del METHODS["kd_smooth"]


def _params(**distill):
    raw = tiny_params(**{"distill.methods": ["kd", "kd_smooth"]})
    raw["distill"].update(distill)
    return raw


def test_the_new_key_joins_the_distill_schema(kd_smooth):
    params = validate(_params(smoothing=0.1))
    assert params.distill.smoothing == 0.1 and params.distill.methods == ["kd", "kd_smooth"]
    with pytest.raises(ParamsError, match=r"missing key distill\.smoothing"):
        validate(_params())
    with pytest.raises(ParamsError, match=r"distill\.smoothing=1\.5: .*less than or equal to 1"):
        validate(_params(smoothing=1.5))


def test_its_stage_depends_on_its_own_keys(kd_smooth, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_method_params(validate(_params(smoothing=0.1)))
    read = {m: json.loads((tmp_path / f"data/method_params/{m}.json").read_text())
            for m in ("kd", "kd_smooth")}
    assert read["kd_smooth"] == {"lambda": 0.9, "temperature": 4.0, "kl_reduction": "batchmean",
                                 "smoothing": 0.1}
    assert "smoothing" not in read["kd"]  # a smoothing sweep never re-runs distill@kd


def test_it_trains_through_the_common_loop_step(kd_smooth):
    torch.manual_seed(0)
    student, teacher = build_model("wrn10_1", 3, 5), build_model("wrn10_1", 3, 5)
    method = build_method("kd_smooth", student, {"image": teacher}, _params(smoothing=0.1)["distill"])
    batch = {"x": torch.randn(8, 3, 16, 16), "y": torch.randint(0, 5, (8,)), "index": torch.arange(8)}
    optimizer = torch.optim.Adam(method.student_parameters(), lr=1e-2)
    first = train_step(method, None, batch, optimizer)
    for _ in range(3):
        last = train_step(method, None, batch, optimizer)
    assert set(first.losses) == {"ce", "kd"} and sum(last.losses.values()) < sum(first.losses.values())
