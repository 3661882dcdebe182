"""What a distillation method reads from a frozen teacher, computed or cached.

A method needs, per teacher, the logits of the batch and, for the feature terms, one B x B map
per group: ``gram``, the raw similarity map G = F F^T (sp, tgd), or ``corr``, the batch
correlation map (tpkd). Both depend on the whole batch, the logits only on each sample.

``Method.teacher_outputs(key, batch, kind)`` gets them: from the teacher cache when the training
loop put a ``CachedTeachers`` into ``batch["teachers"]`` (pipeline.teacher_cache, the
``teachers`` stage), otherwise by running the teacher (``Method.teacher``) on its input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from .losses import correlation_map, similarity_map

MAP_KINDS = {"gram": similarity_map, "corr": correlation_map}


def batch_maps(feats: Sequence[Tensor], kind: str) -> list[Tensor]:
    """One B x B map of kind `kind` ("gram" or "corr") per group output in `feats`."""
    return [MAP_KINDS[kind](f) for f in feats]


@dataclass
class CachedTeachers:
    """One batch's stored teacher outputs: ``logits[key]`` (B, classes) and
    ``maps[key][kind]``, a list of B x B maps, one per group."""

    logits: dict[str, Tensor]
    maps: dict[str, dict[str, list[Tensor]]] = field(default_factory=dict)

    def get(self, key: str, kind: str | None) -> tuple[Tensor, list[Tensor] | None]:
        if key not in self.logits or (kind is not None and kind not in self.maps.get(key, {})):
            raise KeyError(f"the teacher cache holds no {kind or 'logits'} of teacher {key!r}")
        return self.logits[key], (self.maps[key][kind] if kind is not None else None)

    def __getitem__(self, part: slice) -> "CachedTeachers":
        """The outputs of samples `part` of the batch, as the loop slices every batch entry
        (a whole-batch slice in a single process)."""
        return CachedTeachers(
            logits={k: v[part] for k, v in self.logits.items()},
            maps={k: {kind: [m[part, part] for m in maps] for kind, maps in kinds.items()}
                  for k, kinds in self.maps.items()})


@torch.no_grad()
def run_teacher(teacher: torch.nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """A frozen teacher's (logits, group outputs) on `x`: eval mode, no gradients."""
    if teacher.training:
        teacher.eval()
    return teacher(x)


def teacher_outputs(method, batch: Mapping[str, Any], key: str,
                    kind: str | None = None) -> tuple[Tensor, list[Tensor] | None]:
    """Teacher `key`'s logits and, when `kind` is "gram" or "corr", its per-group maps of this
    batch (None otherwise); from ``batch["teachers"]`` when present, else by running it."""
    cached = batch.get("teachers")
    if cached is not None:
        return cached.get(key, kind)
    logits, feats = method.teacher(key, batch)
    if kind is None:
        return logits, None
    with torch.no_grad():
        return logits, batch_maps(feats, kind)
