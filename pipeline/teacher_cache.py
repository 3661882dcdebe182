"""The teacher cache: each frozen teacher runs once, every distill run reads its outputs.

The distillation losses read, per teacher, the logits of each sample and, for the feature terms,
one B x B map per group of each training batch (``gram`` G = F F^T for sp and tgd, ``corr`` the
batch correlation map for tpkd; pipeline.distill.teacher_outputs). Teachers are frozen and in
eval mode, so those outputs depend only on the teachers, the inputs and the batches. The batches
are fixed by the seed: epoch e draws ``torch.randperm(n, generator=epoch_generator(seed, e))``
and cuts it into ``batch_size`` slices (pipeline.training.batches). The ``teachers`` stage replays
that order and stores:

    order          int32 (epochs, n)                       each epoch's permutation (checked)
    logits_<key>   float32 (n, classes)                    per sample, from epoch 0's batches
    <kind>_<key>   float32 (epochs, batches, groups, T)    upper triangle (T = B(B+1)/2) of
                                                           each batch's symmetric map, row-major

(key: teacher ``image`` or ``topology``; kind: ``gram`` or ``corr``; the last, smaller batch
of an epoch fills the first b(b+1)/2 entries.) A distill run reads them instead of running the
teachers; its student equals the uncached run's to float tolerance (tests/test_teacher_cache.py).
Only what ``distill.methods`` reads is stored: kd alone needs one pass over the data, the map
methods one pass per epoch. Sizes at paper scale: docs/methods.md.

The cache is not exact, and distill runs the teachers (saying so in one line), when the inputs
of an epoch are drawn anew (``train.augment`` on images) or the batches are split over DDP
ranks (``train.nproc`` > 1: each rank's maps cover its share only).

Resumable: epochs are written to a staging store outside the stage's output (DVC deletes
outputs before a run), each one marked done; a killed stage recomputes only the missing epochs
and renames the store into place when complete.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import zarr
from torch import Tensor
from tqdm.auto import tqdm

from pipeline import distributed, layout, locations
from pipeline.checkpoint import read_checkpoint
from pipeline.distill import METHODS, TEACHER_INPUTS, freeze, teacher_inputs
from pipeline.distill.teacher_outputs import CachedTeachers, batch_maps
from pipeline.errors import PipelineError
from pipeline.inputs import Inputs
from pipeline.params import Params
from pipeline.runtime import identity_hash, prepare_inputs, prepare_models
from pipeline.staging import Staging, open_staging, publish_store
from pipeline.store import create_array, create_group, open_split, split_path, write_json
from pipeline.training.batches import epoch_order, make_batch
from pipeline.training.params import TrainParams
from pipeline.training.setup import STORES, input_identity, load_run_inputs, load_teachers, start

STORE = "train.zarr"
LOGIT_SHARD = 4096  # samples per shard of the logits arrays


class TeacherCacheError(PipelineError):
    """The teacher cache disagrees with the run that reads it."""


def cache_needs(methods: list[str]) -> dict[str, tuple[str, ...]]:
    """Per teacher key, the map kinds that the cacheable methods among `methods` read (an
    empty tuple: logits only). Methods that declare no ``cache_reads`` are left out."""
    needs: dict[str, set[str]] = {}
    for name in methods:
        cls = METHODS[name]
        if not cls.cache_reads:
            continue
        for key in cls.teacher_keys:
            needs.setdefault(key, set()).update(k for k in cls.cache_reads if k != "logits")
    return {key: tuple(sorted(kinds)) for key, kinds in sorted(needs.items())}


def inexact_reason(train: TrainParams, modality: str, world_size: int = 1) -> str | None:
    """Why cached teacher outputs would differ from the ones a run computes; None if exact."""
    if train.augment and modality == "image":
        return "train.augment is true: every epoch draws new crops and flips"
    if max(train.nproc, world_size) > 1:
        return "DDP (train.nproc > 1): each rank's maps cover its share of a batch only"
    return None


def cache_identity(train: TrainParams, teacher_ids: Mapping[str, Any],
                   input_ids: Mapping[str, str]) -> str:
    """What the cached outputs depend on: the batches (seed, epochs, batch size), the teachers'
    checkpoints (their run fingerprints) and the inputs (the stores' identities)."""
    batches = {"seed": train.seed, "epochs": train.epochs, "batch_size": train.batch_size}
    return identity_hash("teacher-cache/1", batches, dict(teacher_ids), dict(input_ids))


def triangle_size(b: int) -> int:
    return b * (b + 1) // 2


def _triu(b: int, device: torch.device) -> Tensor:
    return torch.triu_indices(b, b, device=device)


def pack(maps: list[Tensor]) -> Tensor:
    """(groups, b(b+1)/2): the upper triangles of a batch's symmetric b x b maps."""
    rows, cols = _triu(maps[0].shape[0], maps[0].device)
    return torch.stack([m[rows, cols] for m in maps])


def unpack(packed: Tensor, b: int) -> list[Tensor]:
    """The b x b maps (one per group) from their upper triangles (the inverse of `pack`)."""
    rows, cols = _triu(b, packed.device)
    out = []
    for values in packed[:, :triangle_size(b)]:
        m = packed.new_zeros(b, b)
        m[rows, cols] = values
        m[cols, rows] = values
        out.append(m)
    return out


# ------------------------------------------------------------------------------------ building
def _create_store(path: Path, attrs: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> zarr.Group:
    group = create_group(path, attrs)
    for name, shape in shapes.items():
        dtype = "int32" if name == "order" else "float32"
        # maps and order: one shard per epoch; logits: shards of samples
        create_array(group, name, shape, dtype, LOGIT_SHARD if name.startswith("logits_") else 1)
    return group


def _shapes(needs: Mapping[str, tuple[str, ...]], n: int, epochs: int, batch_size: int,
            classes: int, groups: int) -> dict[str, tuple[int, ...]]:
    batches = -(-n // batch_size)
    shapes: dict[str, tuple[int, ...]] = {"order": (epochs, n)}
    for key, kinds in needs.items():
        shapes[f"logits_{key}"] = (n, classes)
        for kind in kinds:
            shapes[f"{kind}_{key}"] = (epochs, batches, groups, triangle_size(min(batch_size, n)))
    return shapes


@torch.no_grad()
def _epoch_outputs(teachers: Mapping[str, torch.nn.Module], inputs: Inputs,
                   needs: Mapping[str, tuple[str, ...]], order: Tensor, batch_size: int,
                   logits: dict[str, np.ndarray] | None, buffers: dict[str, np.ndarray],
                   input_keys: Mapping[str, str]) -> None:
    """Run the teachers on one epoch's batches; fill the map buffers (and the per-sample logits
    when `logits` is given). Batches are built as fit builds them (make_batch)."""
    keys = tuple(sorted({input_keys[k] for k in needs}))
    for step, start in enumerate(range(0, len(order), batch_size)):
        index = order[start:start + batch_size]
        batch = make_batch(inputs, "train", index, keys)
        for key, kinds in needs.items():
            z, feats = teachers[key](batch[input_keys[key]])
            if logits is not None:
                logits[key][index.numpy()] = z.float().cpu().numpy()
            for kind in kinds:
                packed = pack(batch_maps([f.float() for f in feats], kind)).cpu().numpy()
                buffers[f"{kind}_{key}"][step, :, :packed.shape[1]] = packed


@torch.no_grad()
def _group_count(teachers: Mapping[str, torch.nn.Module], inputs: Inputs, input_keys: Mapping[str, str]) -> int:
    key = next(iter(teachers))
    name = input_keys[key]
    return len(teachers[key](inputs.model_input(name, inputs.splits["train"][name][:1]))[1])


def _open_staging(staging: Path, teachers: Mapping[str, torch.nn.Module], inputs: Inputs,
                  needs: Mapping[str, tuple[str, ...]], train: TrainParams, identity: str,
                  passes: int, print_fn: Callable[[str], None],
                  input_keys: Mapping[str, str]) -> tuple[Staging, zarr.Group, list[int]]:
    """The staging store (resumed when it holds epochs of this very cache, else created; through
    pipeline.staging, as the topology stage's shards) and the epochs it already holds."""
    n, batch_size = len(inputs.splits["train"]["y"]), train.batch_size

    def create(st: Staging) -> None:  # before the stamp: a half-made store is never resumed
        groups = _group_count(teachers, inputs, input_keys)
        attrs = {"identity": identity, "seed": train.seed, "epochs": train.epochs,
                 "batch_size": batch_size, "n": n, "groups": groups,
                 "needs": {k: list(v) for k, v in needs.items()},
                 "map_epochs": passes if any(needs.values()) else 0}
        _create_store(Path(st.path(STORE)), attrs,
                      _shapes(needs, n, train.epochs, batch_size, inputs.num_classes, groups))

    key = identity_hash(identity, dict(needs))  # what is stored matters as much as for whom
    st = open_staging(staging, key, print_fn, prepare=create)
    done = sorted(int(unit.split("-")[1]) for unit in st.done_units() if unit.startswith("epoch-"))
    if st.resumed:
        print_fn(f"teachers: resuming, {len(done)} of {passes} epochs already in {staging}")
    return st, zarr.open_group(str(st.path(STORE)), mode="r+", zarr_format=3), done


def build_cache(out_dir: Path, teachers: Mapping[str, torch.nn.Module], inputs: Inputs,
                needs: Mapping[str, tuple[str, ...]], train: TrainParams, identity: str,
                staging: Path, print_fn: Callable[[str], None] = print,
                input_keys: Mapping[str, str] = TEACHER_INPUTS) -> dict[str, Any]:
    """Run the (frozen, eval-mode) `teachers` over the training batches of every epoch and
    write `out_dir`/train.zarr; resumes from `staging` when it holds epochs of this cache."""
    seed, batch_size = train.seed, train.batch_size
    n = len(inputs.splits["train"]["y"])
    passes = train.epochs if any(needs.values()) else 1  # logits alone: one pass
    staging = Path(staging)
    st, group, done = _open_staging(staging, teachers, inputs, needs, train, identity, passes,
                                    print_fn, input_keys)
    for epoch in tqdm(range(passes), desc="teachers", unit="epoch"):
        if epoch in done:
            continue
        order = epoch_order(seed, epoch, n)
        buffers = {name: np.zeros(group[name].shape[1:], np.float32)
                   for name in group.array_keys() if name != "order" and not name.startswith("logits_")}
        logits = ({k: np.zeros(group[f"logits_{k}"].shape, np.float32) for k in needs}
                  if epoch == 0 else None)
        _epoch_outputs(teachers, inputs, needs, order, batch_size, logits, buffers, input_keys)
        for name, values in buffers.items():
            group[name][epoch] = values
        for name, values in (logits or {}).items():
            group[f"logits_{name}"][...] = values
        group["order"][epoch] = order.numpy().astype(np.int32)
        st.mark_done(f"epoch-{epoch:06d}")  # after the epoch's arrays: a killed write is redone
    return _publish(st, Path(out_dir), group)


def _publish(st: Staging, out_dir: Path, group: zarr.Group) -> dict[str, Any]:
    """Fill the orders of epochs that computed no maps, then move the store into place."""
    attrs = dict(group.attrs)
    for epoch in range(attrs["map_epochs"] or 1, attrs["epochs"]):  # logits-only caches
        group["order"][epoch] = epoch_order(attrs["seed"], epoch, attrs["n"]).numpy().astype(np.int32)
    out_dir.mkdir(parents=True, exist_ok=True)
    publish_store(st.path(STORE), out_dir / STORE)
    st.discard()
    size = sum(p.stat().st_size for p in (out_dir / STORE).rglob("*") if p.is_file())
    summary = {"cached": True, **{k: attrs[k] for k in ("n", "epochs", "batch_size", "needs", "map_epochs")},
               "bytes": size}
    write_json(out_dir / "summary.json", summary)
    return summary


def write_skipped(out_dir: Path, reason: str) -> dict[str, Any]:
    """The stage's output when no cache is built: a summary saying why (distill runs teachers)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    locations.rmtree(out_dir / STORE)  # never leave an older cache beside the summary
    summary = {"cached": False, "reason": reason}
    write_json(out_dir / "summary.json", summary)
    return summary


# ------------------------------------------------------------------------------------- reading
class TeacherFeed:
    """The cached outputs of each training batch, for fit: ``feed(epoch, step, index)``.

    Loads one epoch's maps at a time (pinned and copied asynchronously on CUDA), checks that
    each batch is the one the cache was built for, and unpacks the maps on `device`.
    """

    def __init__(self, path: Path, reads: Mapping[str, tuple[str, ...]], device: torch.device):
        self.path = Path(path)
        self.group = _open_store(self.path)
        self.reads, self.device = dict(reads), device
        self.batch_size = int(self.group.attrs["batch_size"])
        self.logits = {k: self._to_device(self._read(f"logits_{k}")) for k in self.reads}
        self._epoch: int | None = None

    def _read(self, name: str, epoch: int | None = None) -> np.ndarray:
        """An array (or one epoch of it); a damaged file is one line naming it (the shard file)."""
        where = self.path / name
        try:
            array = self.group[name]
            if epoch is not None or array.cdata_shape[0] == 1:  # one shard file is read
                where /= array.metadata.encode_chunk_key(((epoch or 0) // array.shards[0],) + (0,) * (array.ndim - 1))
            return array[...] if epoch is None else array[epoch]
        except Exception as error:  # zarr's checksum, codec and index errors of a damaged file
            raise _damaged(where, error) from None

    def _to_device(self, array: np.ndarray) -> Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _load_epoch(self, epoch: int) -> None:
        if epoch >= int(self.group.attrs["epochs"]):
            raise TeacherCacheError(f"{self.path}: holds {self.group.attrs['epochs']} epochs, "
                                    f"epoch {epoch + 1} asked; re-run the teachers stage")
        self.order = torch.from_numpy(self._read("order", epoch).astype(np.int64))
        self.maps = {(k, kind): self._to_device(self._read(f"{kind}_{k}", epoch))
                     for k, kinds in self.reads.items() for kind in kinds}
        self._epoch = epoch

    def __call__(self, epoch: int, step: int, index: Tensor) -> CachedTeachers:
        if epoch != self._epoch:
            self._load_epoch(epoch)
        start = step * self.batch_size
        if not torch.equal(self.order[start:start + len(index)], index.cpu()):
            raise TeacherCacheError(f"{self.path}: batch {step + 1} of epoch {epoch + 1} is not the "
                                    "one the cache was built for; re-run the teachers stage")
        b = len(index)
        on_device = index.to(self.device)
        return CachedTeachers(
            logits={k: v[on_device] for k, v in self.logits.items()},
            maps={k: {kind: unpack(self.maps[(k, kind)][step], b) for kind in kinds}
                  for k, kinds in self.reads.items()})


def _damaged(where: Path, error: Exception) -> TeacherCacheError:
    return TeacherCacheError(f"{where}: damaged ({type(error).__name__}: truncated or edited?); "
                             "re-run the teachers stage (dvc repro -f teachers)")


def _open_store(path: Path) -> zarr.Group:
    try:
        return zarr.open_group(str(path), mode="r", zarr_format=3)
    except Exception as error:  # its zarr.json (with every array's metadata) is not zarr's
        raise _damaged(Path(path) / "zarr.json", error) from None


def open_feed(cache_dir: Path, method: Any, train: TrainParams, modality: str,
              identity: Callable[[], str], device: torch.device, enabled: bool = True,
              print_fn: Callable[[str], None] = print) -> TeacherFeed | None:
    """The feed of cached teacher outputs for `method` (its class), or None (the run computes
    them); one line says which and, for None, why. `identity()` is the run's cache identity."""
    reads = {k: tuple(r for r in method.cache_reads if r != "logits") for k in method.teacher_keys}
    reason = _unusable(cache_dir, method, train, modality, identity, reads, enabled)
    if distributed.is_main():
        print_fn(f"{method.name}: running the teachers ({reason})" if reason else
                 f"{method.name}: teacher outputs from {cache_dir} (the teachers do not run)")
    return None if reason else TeacherFeed(Path(cache_dir) / STORE, reads, device)


def _unusable(cache_dir: Path, method: Any, train: TrainParams, modality: str,
              identity: Callable[[], str], reads: Mapping[str, tuple[str, ...]],
              enabled: bool) -> str | None:
    """Why `method` cannot read the cache in `cache_dir`; None if it can."""
    if not method.cache_reads:
        return f"method {method.name!r} does not read the teacher cache"
    if not enabled:
        return "distill.teacher_cache is false"
    reason = inexact_reason(train, modality, distributed.context().world_size)
    if reason:
        return f"no exact cache: {reason}"
    path = Path(cache_dir) / STORE
    if not (path / "zarr.json").is_file():
        summary = Path(cache_dir) / "summary.json"
        why = json.loads(summary.read_text()).get("reason") if summary.is_file() else None
        return f"no cache in {cache_dir}" + (f": {why}" if why else "; run the teachers stage")
    attrs = dict(_open_store(path).attrs)
    if attrs.get("identity") != identity():
        return f"{cache_dir} belongs to other teachers, inputs, seed, epochs or batch size"
    missing = [f"{kind} of {key}" for key, kinds in reads.items() for kind in kinds
               if kind not in attrs["needs"].get(key, [])] + \
              [f"logits of {key}" for key in reads if key not in attrs["needs"]]
    if missing:
        return f"{cache_dir} holds no {', '.join(missing)} (distill.methods changed?)"
    return None


# -------------------------------------------------------------------------------- the recipes
def _identity(params: Params) -> str:
    """This run's cache identity: the teachers' checkpoints (their fingerprints), the inputs,
    and the batches."""
    teacher_ids = {kind: read_checkpoint(layout.model_dir(f"teacher_{kind}") / "last.pt")["meta"]
                   .get("fingerprint") for kind in TEACHER_INPUTS}  # the kinds; inputs follow the checkpoints
    return cache_identity(params.train, teacher_ids,
                          {key: input_identity(store) for key, store in STORES.items()})


def prepared_modality() -> str:
    """"image" or "signal", from the prepared store's attributes (no arrays read)."""
    return open_split(split_path(layout.PREPARED, "train")).attrs["modality"]


def cache_teachers(params: Params) -> dict[str, Any]:
    """The `teachers` stage: build data/teachers for `distill.methods`, or say why not."""
    needs = cache_needs(params.distill.methods)
    reason = ("distill.teacher_cache is false" if not params.distill.teacher_cache else
              inexact_reason(params.train, prepared_modality()) or
              (None if needs else "no method in distill.methods reads it"))
    if reason:
        return write_skipped(layout.TEACHERS, reason)
    device = start(params)  # seeds, train.threads, the device
    input_keys = teacher_inputs(params.models)
    inputs = load_run_inputs(tuple(sorted({input_keys[k] for k in needs})))
    loaded = load_teachers(params, inputs.num_classes)
    teachers = {k: freeze(loaded[k][0]).to(device) for k in needs}
    prepare_models(teachers.values(), params.train, device)  # as distill runs them (amp, compile)
    inputs = prepare_inputs(inputs, params.train).to(device)
    return build_cache(layout.TEACHERS, teachers, inputs, needs, params.train, _identity(params),
                       layout.TEACHERS_STAGING, input_keys=input_keys)


def feed_for(method_name: str, params: Params, device: torch.device) -> TeacherFeed | None:
    """A distill run's feed of cached teacher outputs (None: it runs the teachers; logged)."""
    method = METHODS.get(method_name)
    if method is None:  # build_method names the unknown method
        return None
    return open_feed(layout.TEACHERS, method, params.train, prepared_modality(),
                     lambda: _identity(params), device, params.distill.teacher_cache)
