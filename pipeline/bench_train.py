"""`python -m pipeline.bench train`: ms per training image of the project's loop against a bare
PyTorch loop of the same models and batches, and what the teacher cache saves a tgd step.

On random CIFAR-shaped tensors (uint8 images, float PIs), for a named configuration:

- student only: `pipeline.train.fit` with the scratch method vs a bare loop (index, normalise,
  forward, cross-entropy, backward, Adam);
- tgd with the teachers running: `fit` with tgd vs a bare loop computing the same loss;
- tgd reading the teacher cache (built by pipeline.teacher_cache for the same batches);
- the two teachers' forward passes and maps alone: their share of an uncached tgd step.

`fit` has fixed costs per run (DVCLive, checkpoints, the resume file, a test pass): the project
figure is the marginal cost, (time on n images - time on one batch) / (n - batch). Every figure
is repeated; the table prints the median and the range.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Config:
    teacher: str
    student: str
    image: tuple[int, int, int]   # channels, height, width
    pi: tuple[int, int, int]      # channels, resolution, resolution
    classes: int = 10


CONFIGS = {
    # the paper's sizes: WRN-16-3 teachers, WRN-16-1 student, CIFAR-10 images, 2 x 3 PIs of 50x50
    "paper": Config("wrn16_3", "wrn16_1", (3, 32, 32), (6, 50, 50)),
    # params.yaml's defaults on digits: WRN-16-1 teachers, WRN-10-1 student, 1 channel
    "default": Config("wrn16_1", "wrn10_1", (1, 32, 32), (2, 50, 50)),
}
METHOD_CFG = {"lambda": 0.9, "temperature": 4.0, "alpha": 0.7, "gamma": 1000.0,
              "kl_reduction": "batchmean"}


def make_inputs(config: Config, n: int, seed: int = 0):
    """Random uint8 images (N, H, W, C), non-negative PIs (N, K, R, R), labels; 1 test sample.
    PIs in the layout the stages use (train.channels_last's default), for both loops."""
    from pipeline.inputs import Inputs, Normalizer
    from pipeline.runtime import prepare_inputs

    g = torch.Generator().manual_seed(seed)
    c, h, w = config.image
    k, r, _ = config.pi

    def split(m: int) -> dict[str, torch.Tensor]:
        return {"x": torch.randint(0, 256, (m, h, w, c), dtype=torch.uint8, generator=g),
                "pi": torch.rand(m, k, r, r, generator=g) ** 4,
                "y": torch.randint(0, config.classes, (m,), generator=g)}

    inputs = Inputs(splits={"train": split(n), "test": split(1)},
                    classes=[str(i) for i in range(config.classes)], modality="image",
                    normalizers={"x": Normalizer([0.5] * c, [0.25] * c), "pi": Normalizer([0.05] * k, [0.1] * k)},
                    shapes={"x": (c, h, w), "pi": (k, r, r)})
    return prepare_inputs(inputs, _train_params(1))


def _models(config: Config) -> tuple[nn.Module, dict[str, nn.Module]]:
    from pipeline.distill.base import freeze
    from pipeline.models import build_model

    torch.manual_seed(0)
    student = build_model(config.student, config.image[0], config.classes)
    teachers = {"image": freeze(build_model(config.teacher, config.image[0], config.classes)),
                "topology": freeze(build_model(config.teacher, config.pi[0], config.classes))}
    return student, teachers


def _train_params(batch: int):
    """params.yaml's train section for one epoch of `batch`-sized batches on the CPU (threads:
    the benchmark sets them)."""
    from pipeline.params import TrainParams, read_yaml

    train = read_yaml(Path(__file__).resolve().parents[1] / "params.yaml")["train"]
    return TrainParams.model_validate({**train, "epochs": 1, "batch_size": batch, "threads": 0,
                                       "device": "cpu", "nproc": 1})


# ------------------------------------------------------------------------- the project's loop
def _fit_seconds(method_name: str, config: Config, inputs, batch: int, work: Path,
                 cached: bool) -> float:
    """Wall time of one epoch of `pipeline.train.fit` (fixed costs included)."""
    from pipeline.distill import build_method
    from pipeline.teacher_cache import STORE, TeacherFeed, build_cache, cache_needs
    from pipeline.train import RunSpec, fit

    student, teachers = _models(config)
    method = build_method(method_name, student, teachers if method_name != "scratch" else {},
                          METHOD_CFG)
    train = _train_params(batch)
    run = Path(tempfile.mkdtemp(dir=work))
    feed = None
    if cached:
        needs = cache_needs([method_name])
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
            build_cache(run / "cache", teachers, inputs, needs, train, "bench", run / "staging",
                        print_fn=lambda *_: None)
        feed = TeacherFeed(run / "cache" / STORE, needs, torch.device("cpu"))
        method.inputs = ("x",)  # as pipeline.runs.distill: no PIs when the teachers do not run
    meta = {"arch": config.student, "in_channels": config.image[0], "num_classes": config.classes,
            "dims": 2, "input_key": "x"}
    spec = RunSpec(method_name, meta, run / "out", run / "live", run / "resume.pt", "bench")
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # fit's per-epoch line
        fit(method, inputs, train, spec, torch.device("cpu"), teacher_feed=feed)
    return time.perf_counter() - started


def project_ms(method_name: str, config: Config, full, one_batch, batch: int, work: Path,
               cached: bool = False) -> float:
    """Marginal ms per training image of fit: (t(n) - t(one batch)) / (n - batch)."""
    t_full = _fit_seconds(method_name, config, full, batch, work, cached)
    t_one = _fit_seconds(method_name, config, one_batch, batch, work, cached)
    n = len(full.splits["train"]["y"])
    return 1e3 * (t_full - t_one) / (n - batch)


# ------------------------------------------------------------------------------ the bare loops
def _normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def _bare_batches(inputs, batch: int):
    """(x, pi, y) per batch of a seeded permutation: plain indexing and normalisation."""
    train = inputs.splits["train"]
    nx, npi = inputs.normalizers["x"], inputs.normalizers["pi"]
    order = torch.randperm(len(train["y"]), generator=torch.Generator().manual_seed(0))
    for start in range(0, len(order), batch):
        i = order[start:start + batch]
        x = _normalise(train["x"][i].permute(0, 3, 1, 2).float() / 255.0, nx.mean, nx.std)
        yield x, _normalise(train["pi"][i], npi.mean, npi.std), train["y"][i]


def _rownorm_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(F.normalize(a, dim=1), F.normalize(b, dim=1))


def _gram(f: torch.Tensor) -> torch.Tensor:
    f = f.flatten(1)
    return f @ f.t()


def _bare_tgd_loss(student, teachers, x, pi, y) -> torch.Tensor:
    c = METHOD_CFG
    lam, t, a = c["lambda"], c["temperature"], c["alpha"]
    zs, fs = student(x)
    with torch.no_grad():
        z1, f1 = teachers["image"](x)
        z2, f2 = teachers["topology"](pi)
    log_ps = F.log_softmax(zs / t, 1)
    kl1 = F.kl_div(log_ps, F.log_softmax(z1 / t, 1), reduction="batchmean", log_target=True)
    kl2 = F.kl_div(log_ps, F.log_softmax(z2 / t, 1), reduction="batchmean", log_target=True)
    sim = sum(_rownorm_mse(_gram(s), a * _gram(g1) + (1 - a) * _gram(g2)) for s, g1, g2 in zip(fs, f1, f2))
    return (1 - lam) * F.cross_entropy(zs, y) + lam * t * t * (a * kl1 + (1 - a) * kl2) + c["gamma"] * sim


def bare_ms(method_name: str, config: Config, inputs, batch: int) -> float:
    """ms per training image of a plain PyTorch loop (student only, or tgd with the teachers)."""
    student, teachers = _models(config)
    student.train()
    optimizer = torch.optim.Adam(student.parameters(), lr=5e-4)
    started = time.perf_counter()
    for x, pi, y in _bare_batches(inputs, batch):
        if method_name == "scratch":
            loss = F.cross_entropy(student(x)[0], y)
        else:
            loss = _bare_tgd_loss(student, teachers, x, pi, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return 1e3 * (time.perf_counter() - started) / len(inputs.splits["train"]["y"])


@torch.no_grad()
def teachers_ms(config: Config, inputs, batch: int) -> float:
    """ms per image of the two frozen teachers' forward passes and their gram maps."""
    _, teachers = _models(config)
    started = time.perf_counter()
    for x, pi, _ in _bare_batches(inputs, batch):
        for teacher, data in ((teachers["image"], x), (teachers["topology"], pi)):
            _, feats = teacher(data)
            [_gram(f) for f in feats]
    return 1e3 * (time.perf_counter() - started) / len(inputs.splits["train"]["y"])


# ------------------------------------------------------------------------------------ the table
ROWS = (  # (label, measured function of (config, full, one batch, batch, work dir))
    ("student only: project", lambda c, f, o, b, w: project_ms("scratch", c, f, o, b, w)),
    ("student only: bare", lambda c, f, o, b, w: bare_ms("scratch", c, f, b)),
    ("tgd, teachers run: project", lambda c, f, o, b, w: project_ms("tgd", c, f, o, b, w)),
    ("tgd, teachers run: bare", lambda c, f, o, b, w: bare_ms("tgd", c, f, b)),
    ("tgd, teacher cache: project", lambda c, f, o, b, w: project_ms("tgd", c, f, o, b, w, cached=True)),
    ("the two teachers' forward", lambda c, f, o, b, w: teachers_ms(c, f, b)),
)


def run_train(config_name: str, batch: int, n: int, repeat: int, threads: list[int]) -> dict:
    config = CONFIGS[config_name]
    full, one_batch = make_inputs(config, n), make_inputs(config, batch, seed=1)
    before = torch.get_num_threads()
    res: dict = {"config": config_name, "spec": config, "batch": batch, "n": n, "repeat": repeat,
                 "ms": {}}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for count in threads:
                torch.set_num_threads(count)
                for label, measure in ROWS:  # warm-up: imports, first-call allocations, caches
                    measure(config, make_inputs(config, 2 * batch, seed=2), one_batch, batch, Path(tmp))
                times: dict[str, list[float]] = {label: [] for label, _ in ROWS}
                for _ in range(repeat):  # interleaved: machine noise spreads over every row
                    for label, measure in ROWS:
                        times[label].append(measure(config, full, one_batch, batch, Path(tmp)))
                res["ms"][count] = times
    finally:
        torch.set_num_threads(before)
    return res


def _cell(values: list[float]) -> str:
    return f"{median(values):7.2f} [{min(values):.2f}-{max(values):.2f}]"


def print_train(r: dict) -> None:
    c = r["spec"]
    print(f"train benchmark '{r['config']}': teachers {c.teacher} on {'x'.join(map(str, c.image))} "
          f"images and {'x'.join(map(str, c.pi))} PIs, student {c.student}, batch {r['batch']}, "
          f"{r['n']} random training images; ms per training image, median [range] of {r['repeat']} runs")
    for count, times in r["ms"].items():
        m = {label: median(values) for label, values in times.items()}
        print(f"\n  torch threads: {count}")
        for label, values in times.items():
            print(f"  {label:<30}{_cell(values):>26}")
        student, uncached = m["student only: project"], m["tgd, teachers run: project"]
        cached = m["tgd, teacher cache: project"]
        print(f"  project / bare: student only {student / m['student only: bare']:.2f}x, "
              f"tgd {uncached / m['tgd, teachers run: bare']:.2f}x")
        print(f"  teachers' share of an uncached tgd step: {100 * m[ROWS[5][0]] / uncached:.0f} % "
              f"(their forward alone / the step; what the cache removes: {100 * (1 - cached / uncached):.0f} %)")
        print(f"  tgd cached / uncached: {cached / uncached:.2f}x; "
              f"tgd cached / student only: {cached / student:.2f}x (goal <= 1.5x)")
    if len(r["ms"]) > 1:
        first, *others = r["ms"]
        for count in others:
            ratios = ", ".join(f"{label.split(':')[0] if ':' in label else label} "
                               f"{median(r['ms'][count][label]) / median(r['ms'][first][label]):.2f}x"
                               for label in ("student only: project", "tgd, teachers run: project",
                                             "tgd, teacher cache: project"))
            print(f"\n  {count} threads / {first}: {ratios} (time ratios; < 1: faster)")


# ------------------------------------------------------------------ channels-last persistence images
def _pi_step_ms(model: nn.Module, pis: torch.Tensor, y: torch.Tensor, batch: int, train: bool) -> float:
    """ms per PI of a training step (forward, backward, Adam) or of an eval forward pass."""
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4) if train else None
    model.train(train)
    started = time.perf_counter()
    for start in range(0, len(y), batch):
        x = pis[start:start + batch]
        if train:
            loss = F.cross_entropy(model(x)[0], y[start:start + batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(x)
    return 1e3 * (time.perf_counter() - started) / len(y)


def run_layout(config_name: str, batch: int, n: int, repeat: int) -> dict:
    """The PI teacher on contiguous (NCHW) vs channels-last (NHWC) persistence images."""
    from pipeline.models import build_model

    config = CONFIGS[config_name]
    inputs = make_inputs(config, n)
    pis, y = inputs.splits["train"]["pi"].contiguous(), inputs.splits["train"]["y"]
    layouts = {"NCHW": pis.contiguous(), "NHWC": pis.contiguous(memory_format=torch.channels_last)}
    res: dict = {"config": config_name, "spec": config, "batch": batch, "n": n, "repeat": repeat, "ms": {}}
    torch.manual_seed(0)
    model = build_model(config.teacher, config.pi[0], config.classes)
    for layout, data in layouts.items():  # warm-up
        _pi_step_ms(model, data[:batch], y[:batch], batch, True)
    for mode in ("train step", "eval forward"):
        for layout in layouts:
            res["ms"][(mode, layout)] = []
        for _ in range(repeat):
            for layout, data in layouts.items():
                res["ms"][(mode, layout)].append(_pi_step_ms(model, data, y, batch, mode == "train step"))
    return res


def print_layout(r: dict) -> None:
    c = r["spec"]
    print(f"layout benchmark '{r['config']}': {c.teacher} on {'x'.join(map(str, c.pi))} PIs, batch "
          f"{r['batch']}, {r['n']} PIs, {torch.get_num_threads()} thread(s); ms per PI, median [range] "
          f"of {r['repeat']} runs")
    for mode in ("train step", "eval forward"):
        nchw, nhwc = r["ms"][(mode, "NCHW")], r["ms"][(mode, "NHWC")]
        print(f"  {mode:<14} NCHW {_cell(nchw)}   NHWC {_cell(nhwc)}   "
              f"NCHW / NHWC {median(nchw) / median(nhwc):.2f}x")
