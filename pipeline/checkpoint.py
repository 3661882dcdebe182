"""Checkpoints: written atomically, loaded safely (`weights_only=True`), checked against expectations."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import CheckpointError
from pipeline.models import build_model

# What a checkpoint must say about its model so that it can be rebuilt without params.yaml.
MODEL_KEYS = ("arch", "in_channels", "num_classes", "dims", "input_key")


def atomic_save(payload: dict[str, Any], path: str | Path) -> None:
    """torch.save to a temporary file, then rename: a kill never leaves a half-written file.

    The temporary file (`<name>.tmp`, never read by anything) is flushed to disk before the
    rename and removed when saving fails, so the previous file at `path` stays intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def state_digest(state: Any) -> str:
    """A checksum of a nested state (dicts, lists, tensors, numbers, strings) that survives a
    save and a load: a resume file stores it and is trusted only if its contents still match."""
    digest = hashlib.sha256()
    _feed(digest, state)
    return digest.hexdigest()


def _feed(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {value.dtype} {tuple(value.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)};".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)};".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__} {value!r};".encode())


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    missing = [k for k in MODEL_KEYS if k not in meta]
    if missing:
        raise ValueError(f"checkpoint meta lacks {missing}")
    atomic_save({"meta": dict(meta), "state_dict": model.state_dict()}, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; run the stage that trains it (dvc repro)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(payload, dict) or "meta" not in payload or "state_dict" not in payload:
        raise CheckpointError(f"{path}: not a checkpoint of this project (no meta/state_dict)")
    return payload


def load_model(path: str | Path, expect: dict[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes; fail by name when it differs from `expect`."""
    payload = read_checkpoint(path)
    meta = payload["meta"]
    for key, wanted in (expect or {}).items():
        if meta.get(key) != wanted:
            raise CheckpointError(f"{path}: checkpoint has {key}={meta.get(key)!r} but {wanted!r} is expected "
                                  f"(re-run its training stage after changing params)")
    model = build_model(meta["arch"], meta["in_channels"], meta["num_classes"], dims=meta["dims"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit {meta['arch']}: {str(error).splitlines()[0]}") from None
    return model, meta
