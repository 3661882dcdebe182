"""`train`: ms per training image of the project's loop against a bare PyTorch loop of the same
models and batches, and what the teacher cache saves a tgd step.

On random CIFAR-shaped tensors (uint8 images, float PIs; `benchmarks.data.make_inputs`), for a
named configuration (`benchmarks.data.CONFIGS`):

- student only: `pipeline.training.loop.fit` with the scratch method vs a bare loop (index, normalise,
  forward, cross-entropy, backward, Adam);
- tgd with the teachers running: `fit` with tgd vs a bare loop computing the same loss;
- tgd reading the teacher cache (built by pipeline.teacher_cache for the same batches);
- the two teachers' forward passes and maps alone: their share of an uncached tgd step.

`fit` has fixed costs per run (DVCLive, checkpoints, the resume file, a test pass): the project
figure is the marginal cost, (time on n images - time on one batch) / (n - batch). Every figure
is repeated; the table prints the median and the range.

``--device cuda``: every row on the GPU (models and inputs moved there once, as the training
stages do; the teacher cache is built by the teachers on the GPU, as the `teachers` stage does);
every timed region ends with ``torch.cuda.synchronize()``. ``--amp`` (CUDA only: the project
ignores train.amp on the CPU): every row timed twice, bf16 autocast off and on (train.amp,
pipeline.runtime.prepare_models, for the project; ``torch.autocast`` around each forward,
outputs back to float32, for the bare loops), two tables and the on/off ratio of every row.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from statistics import median

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.data import CONFIGS, Config, make_inputs, train_params
from benchmarks.timing import cell, clock

METHOD_CFG = {"lambda": 0.9, "temperature": 4.0, "alpha": 0.7, "gamma": 1000.0,
              "kl_reduction": "batchmean"}


def build_models(config: Config) -> tuple[nn.Module, dict[str, nn.Module]]:
    """The configuration's student and its two frozen teachers (image, topology), seeded."""
    from pipeline.distill.base import freeze
    from pipeline.models import build_model

    torch.manual_seed(0)
    student = build_model(config.student, config.image[0], config.classes)
    teachers = {"image": freeze(build_model(config.teacher, config.image[0], config.classes)),
                "topology": freeze(build_model(config.teacher, config.pi[0], config.classes))}
    return student, teachers


def _forward(model: nn.Module, x: torch.Tensor, amp: bool):
    """The bare loops' forward: under bf16 autocast when `amp`, outputs back to float32, as
    pipeline.runtime.autocast_bf16 does for the project."""
    if not amp:
        return model(x)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
        logits, feats = model(x)
    return logits.float(), [f.float() for f in feats]


def _device_of(inputs) -> torch.device:
    return inputs.splits["train"]["y"].device


# ------------------------------------------------------------------------- the project's loop
def _cached_feed(method, method_name: str, inputs, train, run: Path, device: torch.device):
    """The teacher cache built by the teachers on `device` (inputs are there), as the teachers
    stage does, and its feed; the method then reads no PIs, as pipeline.runs.distill sets it."""
    from pipeline.teacher_cache import STORE, TeacherFeed, build_cache, cache_needs

    needs = cache_needs([method_name])
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
        build_cache(run / "cache", {k: method.teachers[k] for k in needs}, inputs, needs, train,
                    "bench", run / "staging", print_fn=lambda *_: None)
    method.inputs = ("x",)
    return TeacherFeed(run / "cache" / STORE, needs, device)


def _fit_seconds(method_name: str, config: Config, inputs, batch: int, work: Path,
                 cached: bool, amp: bool) -> float:
    """Wall time of one epoch of `pipeline.training.loop.fit` (fixed costs included) on the inputs'
    device, set up as pipeline.runs.distill sets it up: models there, amp (prepare_models)."""
    from pipeline.distill import build_method
    from pipeline.runtime import prepare_models
    from pipeline.training.loop import fit
    from pipeline.training.state import RunSpec

    device = _device_of(inputs)
    student, teachers = build_models(config)
    method = build_method(method_name, student, teachers if method_name != "scratch" else {},
                          METHOD_CFG).to(device)
    train = train_params(batch, device, amp)
    prepare_models([method.student, *method.teachers.values()], train, device)
    run = Path(tempfile.mkdtemp(dir=work))
    feed = _cached_feed(method, method_name, inputs, train, run, device) if cached else None
    meta = {"arch": config.student, "in_channels": config.image[0], "num_classes": config.classes,
            "dims": 2, "input_key": "x"}
    spec = RunSpec(method_name, meta, run / "out", run / "live", run / "resume.pt", "bench")
    started = clock(device)
    with contextlib.redirect_stdout(io.StringIO()):  # fit's per-epoch line
        fit(method, inputs, train, spec, device, teacher_feed=feed)
    return clock(device) - started


def project_ms(method_name: str, config: Config, full, one_batch, batch: int, work: Path,
               cached: bool = False, amp: bool = False) -> float:
    """Marginal ms per training image of fit: (t(n) - t(one batch)) / (n - batch)."""
    t_full = _fit_seconds(method_name, config, full, batch, work, cached, amp)
    t_one = _fit_seconds(method_name, config, one_batch, batch, work, cached, amp)
    n = len(full.splits["train"]["y"])
    return 1e3 * (t_full - t_one) / (n - batch)


# ------------------------------------------------------------------------------ the bare loops
def _normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def bare_batches(inputs, batch: int):
    """(x, pi, y) per batch of a seeded permutation: plain indexing and normalisation, on the
    device the inputs are on (the permutation and the statistics moved there once)."""
    train = inputs.splits["train"]
    device = train["y"].device
    nx, npi = inputs.normalizers["x"], inputs.normalizers["pi"]
    x_mean, x_std, pi_mean, pi_std = (t.to(device) for t in (nx.mean, nx.std, npi.mean, npi.std))
    order = torch.randperm(len(train["y"]), generator=torch.Generator().manual_seed(0)).to(device)
    for start in range(0, len(order), batch):
        i = order[start:start + batch]
        x = _normalise(train["x"][i].permute(0, 3, 1, 2).float() / 255.0, x_mean, x_std)
        yield x, _normalise(train["pi"][i], pi_mean, pi_std), train["y"][i]


def _rownorm_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(F.normalize(a, dim=1), F.normalize(b, dim=1))


def _gram(f: torch.Tensor) -> torch.Tensor:
    f = f.flatten(1)
    return f @ f.t()


def bare_tgd_loss(student, teachers, x, pi, y, amp: bool = False) -> torch.Tensor:
    """The tgd loss written out in plain PyTorch (METHOD_CFG's weights), for the bare loop."""
    c = METHOD_CFG
    lam, t, a = c["lambda"], c["temperature"], c["alpha"]
    zs, fs = _forward(student, x, amp)
    with torch.no_grad():
        z1, f1 = _forward(teachers["image"], x, amp)
        z2, f2 = _forward(teachers["topology"], pi, amp)
    log_ps = F.log_softmax(zs / t, 1)
    kl1 = F.kl_div(log_ps, F.log_softmax(z1 / t, 1), reduction="batchmean", log_target=True)
    kl2 = F.kl_div(log_ps, F.log_softmax(z2 / t, 1), reduction="batchmean", log_target=True)
    sim = sum(_rownorm_mse(_gram(s), a * _gram(g1) + (1 - a) * _gram(g2)) for s, g1, g2 in zip(fs, f1, f2))
    return (1 - lam) * F.cross_entropy(zs, y) + lam * t * t * (a * kl1 + (1 - a) * kl2) + c["gamma"] * sim


def _models_on(config: Config, device: torch.device) -> tuple[nn.Module, dict[str, nn.Module]]:
    student, teachers = build_models(config)
    return student.to(device), {k: t.to(device) for k, t in teachers.items()}


def bare_ms(method_name: str, config: Config, inputs, batch: int, amp: bool = False) -> float:
    """ms per training image of a plain PyTorch loop (student only, or tgd with the teachers),
    on the inputs' device."""
    device = _device_of(inputs)
    student, teachers = _models_on(config, device)
    student.train()
    optimizer = torch.optim.Adam(student.parameters(), lr=5e-4)
    started = clock(device)
    for x, pi, y in bare_batches(inputs, batch):
        if method_name == "scratch":
            loss = F.cross_entropy(_forward(student, x, amp)[0], y)
        else:
            loss = bare_tgd_loss(student, teachers, x, pi, y, amp)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return 1e3 * (clock(device) - started) / len(inputs.splits["train"]["y"])


@torch.no_grad()
def teachers_ms(config: Config, inputs, batch: int, amp: bool = False) -> float:
    """ms per image of the two frozen teachers' forward passes and their gram maps."""
    device = _device_of(inputs)
    _, teachers = _models_on(config, device)
    started = clock(device)
    for x, pi, _ in bare_batches(inputs, batch):
        for teacher, data in ((teachers["image"], x), (teachers["topology"], pi)):
            _, feats = _forward(teacher, data, amp)
            [_gram(f) for f in feats]
    return 1e3 * (clock(device) - started) / len(inputs.splits["train"]["y"])


# ------------------------------------------------------------------------------------ the table
ROWS = (  # (label, measured function of (config, full, one batch, batch, work dir, amp)); all
    # inputs are on the benchmark's device, every function runs there
    ("student only: project", lambda c, f, o, b, w, a: project_ms("scratch", c, f, o, b, w, amp=a)),
    ("student only: bare", lambda c, f, o, b, w, a: bare_ms("scratch", c, f, b, a)),
    ("tgd, teachers run: project", lambda c, f, o, b, w, a: project_ms("tgd", c, f, o, b, w, amp=a)),
    ("tgd, teachers run: bare", lambda c, f, o, b, w, a: bare_ms("tgd", c, f, b, a)),
    ("tgd, teacher cache: project",
     lambda c, f, o, b, w, a: project_ms("tgd", c, f, o, b, w, cached=True, amp=a)),
    ("the two teachers' forward", lambda c, f, o, b, w, a: teachers_ms(c, f, b, a)),
)


def _device_name(device: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"


def _time_rows(config: Config, inputs: tuple, batch: int, repeat: int, modes: tuple, work: Path) -> dict:
    """{mode: {row: [ms of each run]}} at the current thread count, after one warm-up of every
    row (imports, first-call allocations, caches, kernels); runs interleaved, so that machine
    noise spreads over every row."""
    full, one_batch, warm = inputs
    for mode in modes:
        for _, measure in ROWS:
            measure(config, warm, one_batch, batch, work, mode)
    times = {mode: {label: [] for label, _ in ROWS} for mode in modes}
    for _ in range(repeat):
        for mode in modes:
            for label, measure in ROWS:
                times[mode][label].append(measure(config, full, one_batch, batch, work, mode))
    return times


def run_train(config_name: str, batch: int, n: int, repeat: int, threads: list[int],
              device: torch.device = torch.device("cpu"), amp: bool = False) -> dict:
    """Every row `repeat` times per thread count, on `device`; with `amp`, bf16 autocast off
    and on, interleaved. res["ms"][amp][threads][row]: the figures of each run."""
    config = CONFIGS[config_name]
    inputs = (make_inputs(config, n).to(device), make_inputs(config, batch, seed=1).to(device),
              make_inputs(config, 2 * batch, seed=2).to(device))
    modes = (False, True) if amp else (False,)
    before = torch.get_num_threads()
    res: dict = {"config": config_name, "spec": config, "batch": batch, "n": n, "repeat": repeat,
                 "device": _device_name(device), "ms": {mode: {} for mode in modes}}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for count in threads:
                torch.set_num_threads(count)
                times = _time_rows(config, inputs, batch, repeat, modes, Path(tmp))
                for mode in modes:
                    res["ms"][mode][count] = times[mode]
    finally:
        torch.set_num_threads(before)
    return res


def _short(label: str) -> str:
    return label.split(":")[0] if ":" in label else label


def _print_table(count: int, times: dict) -> None:
    """One thread count's rows and the ratios between them."""
    m = {label: median(values) for label, values in times.items()}
    print(f"\n  torch threads: {count}")
    for label, values in times.items():
        print(f"  {label:<30}{cell(values):>26}")
    student, uncached = m["student only: project"], m["tgd, teachers run: project"]
    cached = m["tgd, teacher cache: project"]
    print(f"  project / bare: student only {student / m['student only: bare']:.2f}x, "
          f"tgd {uncached / m['tgd, teachers run: bare']:.2f}x")
    print(f"  teachers' share of an uncached tgd step: {100 * m[ROWS[5][0]] / uncached:.0f} % "
          f"(their forward alone / the step; what the cache removes: {100 * (1 - cached / uncached):.0f} %)")
    print(f"  tgd cached / uncached: {cached / uncached:.2f}x; "
          f"tgd cached / student only: {cached / student:.2f}x (goal <= 1.5x)")


def _print_thread_ratios(tables: dict) -> None:
    first, *others = tables
    for count in others:
        ratios = ", ".join(f"{_short(label)} {median(tables[count][label]) / median(tables[first][label]):.2f}x"
                           for label in ("student only: project", "tgd, teachers run: project",
                                         "tgd, teacher cache: project"))
        print(f"\n  {count} threads / {first}: {ratios} (time ratios; < 1: faster)")


def print_train(r: dict) -> None:
    c = r["spec"]
    print(f"train benchmark '{r['config']}': teachers {c.teacher} on {'x'.join(map(str, c.image))} "
          f"images and {'x'.join(map(str, c.pi))} PIs, student {c.student}, batch {r['batch']}, "
          f"{r['n']} random training images, device {r['device']}; ms per training image, "
          f"median [range] of {r['repeat']} runs")
    amp_shown = len(r["ms"]) > 1
    for mode, tables in r["ms"].items():
        if amp_shown:
            print(f"\n bf16 autocast {'on' if mode else 'off'} (train.amp={str(mode).lower()})")
        for count, times in tables.items():
            _print_table(count, times)
        if len(tables) > 1:
            _print_thread_ratios(tables)
    if amp_shown:
        off, on = r["ms"][False], r["ms"][True]
        for count in off:
            print(f"\n  bf16 autocast on / off, {count} thread(s) (time ratios; < 1: faster):")
            for label, _ in ROWS:
                print(f"  {label:<30}{median(on[count][label]) / median(off[count][label]):>8.2f}x")
