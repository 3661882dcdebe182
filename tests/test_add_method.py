"""The worked example of docs/ARCHITECTURE.md, "add a method": a method with one new
hyperparameter is one class (here registered in the test; in the project, a file in
pipeline/distill/methods/) plus its block `distill.<name>` in params.yaml. The params schema,
the validation messages, the method's DVC dependency and the training step follow from the
registry, with no other file touched - and params that do not run the method need no edit."""
import pytest
import torch
import yaml

from conftest import REPO, tiny_params
from pipeline.distill import METHODS, build_method, register
from pipeline.distill.base import LogitKD
from pipeline.distill.hparams import LogitParams, Weight
from pipeline.errors import ParamsError
from pipeline.lazy import lazy_import
from pipeline.models import build_model
from pipeline.params import validate
from pipeline.training.loop import train_step

losses = lazy_import("pipeline.distill.losses")


class SmoothKDParams(LogitParams):     # kd's keys (lambda, temperature, kl_reduction) ...
    smoothing: Weight                  # ... and one new one: label smoothing of the CE term


@pytest.fixture
def kd_smooth():
    @register("kd_smooth")
    class SmoothKD(LogitKD):
        """kd with label smoothing: (1 - lambda) CE_smooth(zs, y) + lambda T^2 KL(z1 || zs)."""

        teacher_keys = ("image",)
        inputs = ("x",)
        params_model = SmoothKDParams

        def forward(self, batch):
            x, y = self.batch_item(batch, "x"), self.batch_item(batch, "y")
            zs, _ = self.student(x)
            z1, _ = self.teacher("image", batch)
            ce = losses.cross_entropy(zs, y, label_smoothing=self.hparams.smoothing)
            lam = self.hparams.lambda_
            return zs, {"ce": (1 - lam) * ce, "kd": lam * self.kl(zs, z1)}

    yield SmoothKD
    METHODS.unregister("kd_smooth")


def _params(**block):
    raw = tiny_params(**{"distill.methods": ["kd", "kd_smooth"]})
    raw["distill"]["kd_smooth"] = {"lambda": 0.9, "temperature": 4.0, "kl_reduction": "batchmean", **block}
    return raw


def test_its_block_joins_the_distill_schema(kd_smooth):
    params = validate(_params(smoothing=0.1))
    assert params.distill.kd_smooth.smoothing == 0.1 and params.distill.methods == ["kd", "kd_smooth"]
    raw = _params()
    with pytest.raises(ParamsError, match=r"missing key distill\.kd_smooth\.smoothing"):
        validate(raw)
    with pytest.raises(ParamsError, match=r"distill\.kd_smooth\.smoothing=1\.5: .*less than or equal to 1"):
        validate(_params(smoothing=1.5))
    del raw["distill"]["kd_smooth"]
    with pytest.raises(ParamsError, match=r"missing section distill\.kd_smooth"):
        validate(raw)  # listed in distill.methods without its block


def test_params_that_do_not_run_it_need_no_edit(kd_smooth):
    assert "kd_smooth" not in validate(tiny_params()).distill.methods


def test_its_stage_depends_on_its_own_block_alone():
    distill = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["distill"]["do"]
    assert "distill.${item}" in distill["params"]  # a smoothing sweep never re-runs distill@kd
    assert not [p for p in distill["params"] if p in ("distill", "distill.methods")]


def test_it_trains_through_the_common_loop_step(kd_smooth):
    torch.manual_seed(0)
    student, teacher = build_model("wrn10_1", 3, 5), build_model("wrn10_1", 3, 5)
    block = validate(_params(smoothing=0.1)).distill.kd_smooth
    method = build_method("kd_smooth", student, {"image": teacher}, block)
    batch = {"x": torch.randn(8, 3, 16, 16), "y": torch.randint(0, 5, (8,)), "index": torch.arange(8)}
    optimizer = torch.optim.Adam(method.student_parameters(), lr=1e-2)
    first = train_step(method, None, batch, optimizer)
    for _ in range(3):
        last = train_step(method, None, batch, optimizer)
    assert set(first.losses) == {"ce", "kd"} and sum(last.losses.values()) < sum(first.losses.values())
