"""How training runs on the hardware at hand: threads, memory layout, and the CUDA-only switches.

None of these change the recipe; each is a `train.*` param (docs/scaling.md has the figures):

- ``train.threads``: torch's intra-op threads per process (``torch.set_num_threads``); 0 keeps
  torch's default (one per core).
- ``train.channels_last``: persistence images (N, K, R, R) held in channels-last (NHWC) memory,
  as the raw images already are (their uint8 store is NHWC), so convolutions take the faster
  NHWC kernels. Changes float rounding only.
- ``train.amp`` (CUDA only; ignored on CPU): the models' forward passes under bf16 autocast;
  logits and group outputs come back as float32, so the losses and maps stay float32.
- ``train.compile``: ``torch.compile`` of the models (in place: checkpoints keep their keys).

Inputs stay resident on the training device (``Inputs.to``: one copy at the start, batches
are cut and normalised there); the teacher cache's per-epoch maps are copied from pinned memory.
"""
from __future__ import annotations

import types
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from pipeline.inputs import Inputs


def configure(train_cfg: Mapping[str, Any]) -> None:
    """Process-wide settings of a training stage: the thread count."""
    threads = train_cfg.get("threads", 0)
    if threads:
        torch.set_num_threads(threads)


def prepare_inputs(inputs: Inputs, train_cfg: Mapping[str, Any]) -> Inputs:
    """Persistence images in channels-last memory when ``train.channels_last`` (batches cut
    from them keep that layout)."""
    if train_cfg.get("channels_last", False):
        for tensors in inputs.splits.values():
            if "pi" in tensors and tensors["pi"].dim() == 4:
                tensors["pi"] = tensors["pi"].contiguous(memory_format=torch.channels_last)
    return inputs


def _autocast_forward(self: nn.Module, x: torch.Tensor):
    """The model's own forward under bf16 autocast; outputs back to float32."""
    with torch.autocast(device_type=self.autocast_device, dtype=torch.bfloat16):
        logits, feats = type(self).forward(self, x)
    return logits.float(), [f.float() for f in feats]


def autocast_bf16(model: nn.Module, device_type: str = "cuda") -> nn.Module:
    """Run `model`'s forward under bf16 autocast on `device_type`, in place. A bound method on
    the instance: state_dict keys stay, and copy.deepcopy rebinds it to the copy."""
    model.autocast_device = device_type
    model.forward = types.MethodType(_autocast_forward, model)
    return model


def prepare_models(models: Iterable[nn.Module], train_cfg: Mapping[str, Any],
                   device: torch.device) -> None:
    """bf16 autocast (``train.amp``, CUDA only) and ``torch.compile`` (``train.compile``) of
    each model, in place: parameters, state_dict keys and checkpoints are unchanged."""
    amp = bool(train_cfg.get("amp", False)) and device.type == "cuda"
    for model in models:
        if amp:
            autocast_bf16(model, "cuda")
        if train_cfg.get("compile", False):
            model.compile()
