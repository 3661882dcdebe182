"""The train benchmark compares like with like: its bare tgd loop computes the project's tgd loss."""
import pytest
import torch

from pipeline.bench_train import CONFIGS, METHOD_CFG, _bare_batches, _bare_tgd_loss, _models, make_inputs
from pipeline.distill import build_method
from pipeline.train import make_batch


def test_bare_tgd_loss_equals_the_methods():
    config = CONFIGS["default"]
    inputs = make_inputs(config, 16)
    student, teachers = _models(config)
    x, pi, y = next(_bare_batches(inputs, 16))
    bare = _bare_tgd_loss(student, teachers, x, pi, y)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    batch = make_batch(inputs, "train", order, ("x", "pi"))
    torch.testing.assert_close(batch["x"], x)
    _, losses = build_method("tgd", student, teachers, METHOD_CFG)(batch)
    assert sum(losses.values()).item() == pytest.approx(bare.item(), rel=1e-5)
