"""`topology-stage`: the prepare and topology stages as DVC runs them (`python -m stages.<name>`)
on an imagefolder tree, then the engine alone on the same images and workers: seconds and the
ratio, the stage's parallel part against the rest, and what putting its output into this
machine's page cache costs (`page_cache_probe`: a new file vs the same file rewritten)."""
from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.data import CIFAR_ROOT_RELATIVE, CIFAR_TAR_RELATIVE, REPO, BenchDataMissing


def _engine_only(block: np.ndarray, engine: str, recipe: dict) -> float:
    """The engine's work on one shard with nothing stored; returns the worker's CPU seconds."""
    from pipeline.topology_stage import compute_block

    started = time.process_time()
    compute_block(block, "image", engine, recipe)
    return time.process_time() - started


def _engine_alone(prepared: Path, engine: str, workers: int) -> tuple[float, float]:
    """(wall, CPU) seconds for the engine to compute every prepared image's PIs on `workers`
    warm loky processes, shard by shard, storing nothing: the stage's floor."""
    import joblib

    from pipeline.store import SPLITS, open_split, shard_slices, split_path
    from pipeline.topology import IMAGE_RECIPE

    recipe = dict(IMAGE_RECIPE)   # what the stage computes (run_topology_stage sets it)
    blocks = []
    for split in SPLITS:
        x = open_split(split_path(prepared, split))["x"]
        values = x[...]
        blocks += [values[part] for part in shard_slices(len(values), x.shards[0])]
    with joblib.parallel_config(backend="loky", n_jobs=workers, inner_max_num_threads=1), \
            joblib.Parallel() as parallel:
        parallel(joblib.delayed(_engine_only)(blocks[0][:8], engine, recipe) for _ in range(4 * workers))
        started = time.perf_counter()
        cpu = sum(parallel(joblib.delayed(_engine_only)(block, engine, recipe) for block in blocks))
        return time.perf_counter() - started, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def page_cache_probe(folder: Path, nbytes: int = 1 << 30, block_bytes: int = 64 << 20) -> dict:
    """CPU seconds per GB that this machine spends putting a file's bytes into the page cache:
    writing a new file (fresh pages) and rewriting the same file in place (pages already cached).

    The difference is what storing an output costs beyond copying it: on a virtual machine whose
    free memory goes back to the host (virtio-balloon free page reporting), each fresh page is
    faulted in again by the host. The figure depends on how recently memory was freed, so the
    benchmark probes after its rounds, in the state the stage ran in."""
    block = np.ones(block_bytes, np.uint8)   # touched before timing: only the file's pages count
    blocks = max(1, nbytes // block_bytes)
    path = folder / "page-cache-probe"

    def cpu_seconds_to_write(mode: str) -> float:
        before = resource.getrusage(resource.RUSAGE_SELF)
        with open(path, mode) as handle:
            for _ in range(blocks):
                handle.write(block)
        after = resource.getrusage(resource.RUSAGE_SELF)
        return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    try:
        new, cached = cpu_seconds_to_write("wb"), cpu_seconds_to_write("r+b")
    finally:
        path.unlink(missing_ok=True)
    gb = blocks * block_bytes / 1e9
    return {"new_s_per_gb": new / gb, "cached_s_per_gb": cached / gb, "gb": gb}


def stage_seconds(line: str) -> float:
    """The topology stage's own timer (its parallel part: workers started, engine loaded, until
    the last shard is stored), from the line it prints: `... persistence images in 9.4 s ...`."""
    found = re.search(r"persistence images in ([0-9.]+) s", line)
    if found is None:
        raise RuntimeError(f"stages.topology printed no timing: {line!r}")
    return float(found.group(1))


def _run_stage(workspace: Path, stage: str) -> tuple[float, float, str]:
    """`python -m stages.<stage>` as DVC runs it: (wall s, CPU s of it and its workers, what it printed)."""
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=workspace, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode:
        raise RuntimeError(f"stages.{stage} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds, cpu, "\n  ".join(done.stdout.strip().splitlines())


def _write_params(workspace: Path, root: str, limit_train: int | None, limit_test: int | None,
                  dtype: str, engine: str, workers: int) -> None:
    """params.yaml for the stages: the imagefolder at `root` and the TGD recipe's 50 x 50 PIs
    (params.yaml's image recipe is sized for the digits default)."""
    import yaml

    from pipeline.topology import IMAGE_RECIPE

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(name="imagefolder", root=str(Path(root).resolve()), limit_train=limit_train,
                          limit_test=limit_test)
    params["topology"].update(engine=engine, n_jobs=workers, backend="loky", dtype=dtype, image=dict(IMAGE_RECIPE))
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _rounds(workspace: Path, res: dict) -> None:
    """`repeat` rounds of the topology stage and of the engine alone, alternating, so that both
    see the same machine load; then the page-cache probe, in the state the stage ran in."""
    for _ in range(res["repeat"]):
        shutil.rmtree(workspace / "data" / "topology", ignore_errors=True)
        wall, cpu, res["topology_line"] = _run_stage(workspace, "topology")
        res["topology"].append((wall, cpu))
        res["parallel_part"].append(stage_seconds(res["topology_line"]))
        res["engine_alone"].append(_engine_alone(workspace / "data" / "prepared", res["engine"], res["workers"]))
        res["load"].append(os.getloadavg()[0])
    res["bytes"] = sum(f.stat().st_size for f in (workspace / "data" / "topology").rglob("*") if f.is_file())
    # as many bytes as the stage wrote, between 64 MiB and 1 GiB
    res["page_cache"] = page_cache_probe(workspace, min(max(res["bytes"], 64 << 20), 1 << 30))


def run_topology_stage(root: str | None, workers: int = 2, limit_train: int | None = None,
                       limit_test: int | None = None, dtype: str = "float32", engine: str = "fast",
                       repeat: int = 1) -> dict:
    """The prepare stage once, then `repeat` rounds of the topology stage and of the engine alone
    on the same prepared images and number of workers; medians and ranges."""
    root = root or str(REPO / CIFAR_ROOT_RELATIVE)
    if not Path(root, "train").is_dir():
        raise BenchDataMissing(f"{root}: no train/ folder; unpack the JPEG tree there "
                               f"(mkdir -p data/raw && tar -xzf {CIFAR_TAR_RELATIVE} -C data/raw) or pass --root")
    res: dict = {"workers": workers, "dtype": dtype, "engine": engine, "load": [os.getloadavg()[0]],
                 "repeat": repeat, "topology": [], "engine_alone": [], "parallel_part": []}
    with tempfile.TemporaryDirectory(prefix="bench-topology-stage-") as tmp:
        workspace = Path(tmp)
        _write_params(workspace, root, limit_train, limit_test, dtype, engine, workers)
        res["prepare_s"], res["prepare_cpu"], res["prepare_line"] = _run_stage(workspace, "prepare")
        _rounds(workspace, res)
    for key in ("topology", "engine_alone"):
        res[key] = np.array(res[key])  # rows (wall, CPU)
    res["ratio"] = np.median(res["topology"], axis=0) / np.median(res["engine_alone"], axis=0)
    return res


def _print_rows(r: dict) -> None:
    print(f"  {'':<44}{'wall s':>8}{'(range)':>16}{'CPU s':>8}{'(range)':>16}")
    print(f"  {'prepare (python -m stages.prepare)':<44}{r['prepare_s']:>8.2f}{'':>16}{r['prepare_cpu']:>8.2f}")
    for key, label in (("topology", "topology (python -m stages.topology)"),
                       ("engine_alone", "engine alone (same images, warm workers)")):
        rows = r[key]
        med, low, high = np.median(rows, axis=0), rows.min(axis=0), rows.max(axis=0)
        print(f"  {label:<44}{med[0]:>8.2f}{f'({low[0]:.1f}-{high[0]:.1f})':>16}"
              f"{med[1]:>8.2f}{f'({low[1]:.1f}-{high[1]:.1f})':>16}")


def print_topology_stage(r: dict) -> None:
    print(f"topology stage benchmark: {r['engine']} engine, {r['workers']} workers, PIs stored as {r['dtype']}, "
          f"{r['repeat']} round(s); load average {' -> '.join(f'{v:.1f}' for v in r['load'])}")
    _print_rows(r)
    print(f"  topology stage / engine alone (medians): {r['ratio'][0]:.2f}x wall, {r['ratio'][1]:.2f}x CPU; "
          f"{r['bytes'] / 1e9:.2f} GB written")
    engine = float(np.median(r["engine_alone"][:, 0]))
    stage = float(np.median(r["topology"][:, 0]))
    parallel = float(np.median(r["parallel_part"]))
    print(f"  inside the stage (its own timer): the parallel part {parallel:.2f} s ({parallel / engine:.2f}x the "
          f"engine alone), the rest (start, engine load, planning, publishing, exit) {stage - parallel:.2f} s")
    probe = r["page_cache"]
    storing = probe["new_s_per_gb"] * r["bytes"] / 1e9
    print(f"  page cache on this machine ({probe['gb']:.1f} GB probe, CPU s/GB): a new file "
          f"{probe['new_s_per_gb']:.2f}, the same file rewritten in place {probe['cached_s_per_gb']:.2f}; "
          f"the {r['bytes'] / 1e9:.2f} GB of PIs in new pages: {storing:.1f} s of CPU, "
          f"{storing / r['workers']:.1f} s on {r['workers']} workers, so the engine alone plus storing "
          f"its output is {(engine + storing / r['workers']) / engine:.2f}x the engine alone here")
    print(f"  {r['prepare_line']}")
    print(f"  {r['topology_line']}")
