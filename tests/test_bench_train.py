"""The training benchmarks (`python -m benchmarks train | layout | ddp`): the bare tgd loop computes
the project's tgd loss, --device / --amp plumbing, and each runs on tiny inputs."""
import re

import pytest
import torch

from benchmarks import train_loop
from benchmarks.__main__ import main
from benchmarks.data import CONFIGS, make_inputs
from benchmarks.train_loop import METHOD_CFG, bare_batches, bare_ms, bare_tgd_loss, build_models, teachers_ms
from pipeline.distill import build_method
from pipeline.training.batches import make_batch


def test_bare_tgd_loss_equals_the_methods():
    config = CONFIGS["default"]
    inputs = make_inputs(config, 16)
    student, teachers = build_models(config)
    x, pi, y = next(bare_batches(inputs, 16))
    bare = bare_tgd_loss(student, teachers, x, pi, y)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    batch = make_batch(inputs, "train", order, ("x", "pi"))
    torch.testing.assert_close(batch["x"], x)
    _, losses = build_method("tgd", student, teachers, METHOD_CFG)(batch)
    assert sum(losses.values()).item() == pytest.approx(bare.item(), rel=1e-5)


# --------------------------------------------------------------- --device and --amp plumbing
def _fake_rows(monkeypatch, seen: list):
    """The real row labels, each measuring nothing: records (row, device of the inputs, amp);
    2 ms with amp, 4 ms without."""
    def measure(label):
        def run(config, full, one_batch, batch, work, amp):
            seen.append((label, full.splits["train"]["x"].device.type,
                         one_batch.splits["train"]["pi"].device.type, amp))
            return 2.0 if amp else 4.0
        return run

    monkeypatch.setattr(train_loop, "ROWS", tuple((label, measure(label)) for label, _ in train_loop.ROWS))


def test_device_cpu_explicit_prints_the_default_table(monkeypatch, capsys):
    seen: list = []
    _fake_rows(monkeypatch, seen)
    args = ["train", "--config", "default", "--n", "32", "--batch", "16", "--repeat", "2"]
    assert main(args) == 0
    default = capsys.readouterr().out
    assert main([*args, "--device", "cpu"]) == 0
    assert capsys.readouterr().out == default
    assert "device cpu" in default and "autocast" not in default
    for label, _ in train_loop.ROWS:
        assert f"  {label}" in default
    # warm-up + 2 repeats per row, per run; all on the CPU, amp off
    assert len(seen) == 2 * 3 * len(train_loop.ROWS)
    assert {(d, p, a) for _, d, p, a in seen} == {("cpu", "cpu", False)}


def test_amp_times_every_row_twice_and_prints_the_ratios(monkeypatch, capsys):
    seen: list = []
    _fake_rows(monkeypatch, seen)
    result = train_loop.run_train("default", 16, 32, 1, [1], torch.device("cpu"), amp=True)
    assert set(result["ms"]) == {False, True}
    train_loop.print_train(result)
    out = capsys.readouterr().out
    assert "bf16 autocast off" in out and "bf16 autocast on (train.amp=true)" in out
    ratios = out.split("bf16 autocast on / off, 1 thread(s)")[1].splitlines()[1:]
    assert [line.split()[-1] for line in ratios] == ["0.50x"] * len(train_loop.ROWS)
    assert sorted(a for *_, a in seen) == [False] * 12 + [True] * 12  # warm-up + 1 run, each mode


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_device_cuda_without_cuda_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--n", "32", "--batch", "16", "--device", "cuda"])
    assert exit_.value.code == 2
    assert "--device cuda: no CUDA device is available" in capsys.readouterr().err


def test_amp_on_cpu_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--n", "32", "--batch", "16", "--amp"])
    assert exit_.value.code == 2
    assert "--amp needs --device cuda" in capsys.readouterr().err


def test_bare_loops_run_under_autocast():
    """The amp branch of the bare loops (CPU bf16 autocast here): float32 losses, close to
    the float32 ones."""
    config = CONFIGS["default"]
    inputs = make_inputs(config, 16)
    student, teachers = build_models(config)
    x, pi, y = next(bare_batches(inputs, 16))
    exact = bare_tgd_loss(student, teachers, x, pi, y)
    bf16 = bare_tgd_loss(student, teachers, x, pi, y, amp=True)
    assert bf16.dtype == torch.float32
    assert bf16.item() == pytest.approx(exact.item(), rel=0.1)
    few = make_inputs(config, 4)
    assert bare_ms("scratch", config, few, 4, amp=True) > 0
    assert teachers_ms(config, few, 4, amp=True) > 0


@pytest.mark.slow
def test_device_cpu_runs_every_row(capsys):
    assert main(["train", "--config", "default", "--n", "32", "--batch", "16", "--repeat", "1",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if any(line.startswith(f"  {label} ")
                                                     for label, _ in train_loop.ROWS)]
    assert len(rows) == len(train_loop.ROWS)
    ratios = re.search(r"project / bare: student only ([0-9.]+)x, tgd ([0-9.]+)x", out)
    assert ratios and all(float(r) > 0 for r in ratios.groups()), out
    assert re.search(r"tgd cached / student only: [0-9.]+x", out)


def test_layout_prints_both_layouts_and_their_ratio(capsys):
    assert main(["layout", "--config", "default", "--n", "16", "--batch", "8", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "layout benchmark 'default': wrn16_1 on 2x50x50 PIs, batch 8, 16 PIs" in out
    for mode in ("train step", "eval forward"):
        found = re.search(rf"  {mode} +NCHW +([0-9.]+) \[.*NHWC +([0-9.]+) \[.*NCHW / NHWC ([0-9.]+)x", out)
        assert found, out
        nchw, nhwc, ratio = map(float, found.groups())
        assert nchw > 0 and nhwc > 0 and ratio == pytest.approx(nchw / nhwc, abs=0.01)


@pytest.mark.slow   # spawns 1 + 2 processes that each import torch
def test_ddp_times_one_and_two_processes(capsys):
    assert main(["ddp", "--arch", "wrn10_1", "--batch", "8", "--steps", "2", "--channels", "1"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"\n  ([12]) +([0-9.]+) +([48]) +([0-9.]+)x", out)
    assert [(world, per_rank) for world, _, per_rank, _ in rows] == [("1", "8"), ("2", "4")], out
    assert float(rows[0][3]) == 1.0 and all(float(ms) > 0 for _, ms, _, _ in rows)
