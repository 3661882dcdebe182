"""The recipe of stage `distill@<method>`: a student distilled from the frozen teachers, reading
their stored outputs (pipeline.teacher_cache) when that is exact. The stages that train a model
alone are pipeline.runs."""
from __future__ import annotations

from typing import Any

import torch

from pipeline import layout, teacher_cache
from pipeline.checkpoint import load_model
from pipeline.distill import Method, build_method, teacher_inputs
from pipeline.models import build_model
from pipeline.params import Params
from pipeline.runs import run_spec
from pipeline.runtime import prepare_inputs, prepare_models
from pipeline.training.loop import fit
from pipeline.training.setup import STORES, input_identity, load_run_inputs, load_teachers, model_meta, start


def initial_student(params: Params, meta: dict[str, Any]) -> tuple[torch.nn.Module, str]:
    """The student to distil: the scratch student's weights ("annealing") or random ones."""
    student = build_model(meta["arch"], meta["in_channels"], meta["num_classes"], dims=meta["dims"])
    if not params.distill.anneal:
        return student, "random"
    expect = {k: meta[k] for k in ("arch", "in_channels", "num_classes", "dims")}
    scratch, _ = load_model(layout.model_dir("scratch") / "last.pt", expect=expect)
    student.load_state_dict(scratch.state_dict())
    return student, "scratch"


def distill(method_name: str, params: Params) -> dict[str, Any]:
    """A student distilled from the frozen teachers with `method_name` (kd, sp, tgd, tpkd, ...)."""
    device = start(params)
    feed = teacher_cache.feed_for(method_name, params, device)  # None: the teachers run (logged)
    keys = ("x",) if feed else tuple(dict.fromkeys(("x", *teacher_inputs(params.models).values())))
    inputs = load_run_inputs(keys)  # cached: no PIs needed
    meta = model_meta(params.models.student, inputs, "x")
    teachers = load_teachers(params, meta["num_classes"])
    student, init = initial_student(params, meta)
    block = params.distill.block(method_name)
    method: Method = build_method(method_name, student, {k: m for k, (m, _) in teachers.items()}, block,
                                  teacher_inputs=teacher_inputs(params.models))
    if feed:  # the teachers do not run: batches carry their stored outputs, no PIs
        method.inputs = ("x",)
    prepare_models([student, *method.teachers.values()], params.train, device)  # amp, compile
    teacher_ids = [m.get("fingerprint") for _, m in teachers.values()]
    spec = run_spec(method_name, {**meta, "method": method_name, "init": init},
                    params.train.model_dump(), block.model_dump(by_alias=True) if block else None, teacher_ids,
                    input_identity(STORES["x"]), input_identity(STORES["pi"]))
    inputs = prepare_inputs(inputs, params.train).to(device)
    return fit(method.to(device), inputs, params.train, spec, device, teacher_feed=feed)
