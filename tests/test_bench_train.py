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


# --------------------------------------------------------------- --device and --amp plumbing
def _fake_rows(monkeypatch, seen: list):
    """The real row labels, each measuring nothing: records (row, device of the inputs, amp);
    2 ms with amp, 4 ms without."""
    from pipeline import bench_train

    def measure(label):
        def run(config, full, one_batch, batch, work, amp):
            seen.append((label, full.splits["train"]["x"].device.type,
                         one_batch.splits["train"]["pi"].device.type, amp))
            return 2.0 if amp else 4.0
        return run

    monkeypatch.setattr(bench_train, "ROWS", tuple((label, measure(label)) for label, _ in bench_train.ROWS))


def test_device_cpu_explicit_prints_the_default_table(monkeypatch, capsys):
    from pipeline import bench, bench_train

    seen: list = []
    _fake_rows(monkeypatch, seen)
    args = ["train", "--config", "default", "--n", "32", "--batch", "16", "--repeat", "2"]
    assert bench.main(args) == 0
    default = capsys.readouterr().out
    assert bench.main([*args, "--device", "cpu"]) == 0
    assert capsys.readouterr().out == default
    assert "device cpu" in default and "autocast" not in default
    for label, _ in bench_train.ROWS:
        assert f"  {label}" in default
    # warm-up + 2 repeats per row, per run; all on the CPU, amp off
    assert len(seen) == 2 * 3 * len(bench_train.ROWS)
    assert {(d, p, a) for _, d, p, a in seen} == {("cpu", "cpu", False)}


def test_amp_times_every_row_twice_and_prints_the_ratios(monkeypatch, capsys):
    from pipeline import bench_train

    seen: list = []
    _fake_rows(monkeypatch, seen)
    result = bench_train.run_train("default", 16, 32, 1, [1], torch.device("cpu"), amp=True)
    assert set(result["ms"]) == {False, True}
    bench_train.print_train(result)
    out = capsys.readouterr().out
    assert "bf16 autocast off" in out and "bf16 autocast on (train.amp=true)" in out
    ratios = out.split("bf16 autocast on / off, 1 thread(s)")[1].splitlines()[1:]
    assert [line.split()[-1] for line in ratios] == ["0.50x"] * len(bench_train.ROWS)
    assert sorted(a for *_, a in seen) == [False] * 12 + [True] * 12  # warm-up + 1 run, each mode


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_device_cuda_without_cuda_is_a_clear_error(capsys):
    from pipeline import bench

    with pytest.raises(SystemExit) as exit_:
        bench.main(["train", "--n", "32", "--batch", "16", "--device", "cuda"])
    assert exit_.value.code == 2
    assert "--device cuda: no CUDA device is available" in capsys.readouterr().err


def test_amp_on_cpu_is_refused(capsys):
    from pipeline import bench

    with pytest.raises(SystemExit) as exit_:
        bench.main(["train", "--n", "32", "--batch", "16", "--amp"])
    assert exit_.value.code == 2
    assert "--amp needs --device cuda" in capsys.readouterr().err


def test_bare_loops_run_under_autocast():
    """The amp branch of the bare loops (CPU bf16 autocast here): float32 losses, close to
    the float32 ones."""
    from pipeline.bench_train import bare_ms, teachers_ms

    config = CONFIGS["default"]
    inputs = make_inputs(config, 16)
    student, teachers = _models(config)
    x, pi, y = next(_bare_batches(inputs, 16))
    exact = _bare_tgd_loss(student, teachers, x, pi, y)
    bf16 = _bare_tgd_loss(student, teachers, x, pi, y, amp=True)
    assert bf16.dtype == torch.float32
    assert bf16.item() == pytest.approx(exact.item(), rel=0.1)
    assert bare_ms("scratch", config, inputs, 8, amp=True) > 0
    assert teachers_ms(config, inputs, 8, amp=True) > 0


@pytest.mark.slow
def test_device_cpu_runs_every_row(capsys):
    from pipeline import bench, bench_train

    assert bench.main(["train", "--config", "default", "--n", "32", "--batch", "16", "--repeat", "1",
                       "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if any(line.startswith(f"  {label} ")
                                                     for label, _ in bench_train.ROWS)]
    assert len(rows) == len(bench_train.ROWS)
    assert "tgd cached / student only" in out
