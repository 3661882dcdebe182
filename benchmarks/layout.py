"""`layout`: the PI teacher's training step and eval forward pass on contiguous (NCHW) vs
channels-last (NHWC) persistence images (train.channels_last), and the NCHW / NHWC ratio."""
from __future__ import annotations

import time
from statistics import median

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.data import CONFIGS, make_inputs
from benchmarks.timing import cell

MODES = ("train step", "eval forward")


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
    for mode in MODES:
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
    for mode in MODES:
        nchw, nhwc = r["ms"][(mode, "NCHW")], r["ms"][(mode, "NHWC")]
        print(f"  {mode:<14} NCHW {cell(nchw)}   NHWC {cell(nhwc)}   "
              f"NCHW / NHWC {median(nchw) / median(nhwc):.2f}x")
