"""Benchmarks: ``python -m benchmarks <subcommand> ...``.

Subcommands (module of benchmarks/):
  topology           engine ripser vs engine fast on real CIFAR-10 test images, one core each, for
                     one filtration (--filtration sequence | cubical): ms/image, ratio, max abs
                     difference, diagram vs image time, compile time, PIs under the min_max floor
                     (topology_engines).
  topology-floor     how many PIs the min_max floor zeroes, per filtration, on a prepared store
                     (topology_engines).
  topology-signals   the same for 1-D windows (the TPKD recipe, one PI per channel) of the
                     embedded basicmotions set: ms/window, ratio, max abs difference
                     (topology_engines).
  topology-backends  the topology stage (compute_topology) on N images with joblib's loky
                     backend vs a Dask LocalCluster, same worker count: seconds, ratio, and
                     whether the outputs are byte-identical (topology_backends).
  topology-codecs    one shard of persistence images written and read with each codec (none, lz4 +
                     shuffle, zstd) and dtype (float32, float16): seconds, size, write/compute ratio
                     (topology_codecs).
  topology-stage     the prepare and topology stages (as DVC runs them) on an imagefolder tree, then
                     the engine alone on the same images and workers: seconds and the ratio, the
                     stage's parallel part against the rest, and what putting its output into
                     this machine's page cache costs (a new file vs the same file rewritten)
                     (topology_stage).
  ddp                ms per training step (forward, backward, optimiser) of a model on one
                     global batch: 1 process vs N gloo processes (DistributedDataParallel) (ddp).
  train              ms per training image: the project's loop vs a bare PyTorch loop, for
                     the student alone and for tgd with the teachers running or cached; the
                     teachers' share of a step (train_loop). --device cuda: every row on the
                     GPU; --amp (CUDA only): bf16 autocast off and on, both tables and the
                     on/off ratio of every row.
  layout             the PI teacher's training step and forward pass on contiguous (NCHW) vs
                     channels-last (NHWC) persistence images (train.channels_last) (layout).
"""
from __future__ import annotations

import os

if __name__ == "__main__":
    # One core for everything the benchmark measures: set before numpy/BLAS/numba start their
    # thread pools (only when run as a program; importing this module leaves the process alone).
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import zlib  # noqa: E402

from benchmarks.data import CIFAR_ROOT_RELATIVE, CIFAR_TAR_RELATIVE, BenchDataMissing  # noqa: E402


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tar", default=None,
                        help=f"CIFAR-10 JPEG tar.gz (default: {CIFAR_TAR_RELATIVE}, relative to the repository)")
    parser.add_argument("--root", default=None,
                        help=f"the unpacked tree instead of the tar.gz (documented place: {CIFAR_ROOT_RELATIVE})")


def _engine_parsers(sub) -> None:
    p = sub.add_parser("topology", help="engine ripser vs engine fast on real images")
    p.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    _data_arguments(p)
    p.add_argument("--repeat", type=int, default=3, help="timing repeats of the fast engine (best of)")
    p.add_argument("--filtration", default="sequence", choices=["sequence", "cubical"],
                   help="the image recipe's filtration (default sequence, the TGD recipe)")
    p = sub.add_parser("topology-floor", help="PIs the min_max floor zeroes, per filtration")
    p.add_argument("--prepared", default=None, help="a prepared folder ({train,test}.zarr): all its images")
    p.add_argument("--n", type=int, default=300, help="without --prepared: number of benchmark images (default 300)")
    _data_arguments(p)
    p = sub.add_parser("topology-signals", help="engine ripser vs engine fast on sensor windows")
    p.add_argument("--repeat", type=int, default=3, help="timing repeats of the fast engine (best of)")


def _stage_parsers(sub) -> None:
    p = sub.add_parser("topology-backends", help="the topology stage: loky vs a Dask LocalCluster")
    p.add_argument("--n", type=int, default=400, help="images per split (default 400)")
    _data_arguments(p)
    p.add_argument("--workers", type=int, default=2, help="worker processes for both backends (default 2)")
    p.add_argument("--shard-size", type=int, default=0, help="samples per shard/task (default: ~4 tasks per worker)")
    p.add_argument("--engine", default="fast", choices=["fast", "ripser"])
    p = sub.add_parser("topology-codecs", help="writing/reading one shard of PIs per codec and dtype")
    p.add_argument("--n", type=int, default=4096, help="images in the shard (default 4096, data.shard_size)")
    _data_arguments(p)
    p.add_argument("--repeat", type=int, default=3, help="timing repeats (best of)")
    p = sub.add_parser("topology-stage", help="prepare + topology stages vs the engine alone, same images")
    p.add_argument("--root", default=None, help=f"imagefolder tree (default {CIFAR_ROOT_RELATIVE})")
    p.add_argument("--workers", type=int, default=2, help="topology.n_jobs and the engine's workers (default 2)")
    p.add_argument("--limit-train", type=int, default=None, help="data.limit_train (default: all)")
    p.add_argument("--limit-test", type=int, default=None, help="data.limit_test (default: all)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="topology.dtype")
    p.add_argument("--engine", default="fast", choices=["fast", "ripser"])
    p.add_argument("--repeat", type=int, default=3, help="rounds of stage and engine alone (medians; default 3)")


def _training_parsers(sub) -> None:
    p = sub.add_parser("ddp", help="ms per training step: 1 process vs N gloo processes")
    p.add_argument("--arch", default="wrn16_1", help="model registry name (default wrn16_1, the paper's student)")
    p.add_argument("--batch", type=int, default=64, help="global batch size (default 64)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (median; default 20)")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="world sizes (default 1 2)")
    p.add_argument("--channels", type=int, default=3, help="input channels (default 3: CIFAR-like)")
    p = sub.add_parser("train", help="the project's training loop vs a bare loop; tgd cached vs uncached")
    p.add_argument("--config", default="paper", choices=["paper", "default"],
                   help="paper: wrn16_3 teachers, wrn16_1 student, 3x32x32 + 6x50x50 (default); "
                        "default: params.yaml's digits sizes")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--n", type=int, default=384, help="random training images per run (default 384)")
    p.add_argument("--repeat", type=int, default=3, help="runs of every row (median, range; default 3)")
    p.add_argument("--threads", type=int, nargs="+", default=[1],
                   help="torch thread counts, each a table (default 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where every row runs (default cpu); cuda: models and inputs on the GPU, "
                        "timings synchronised")
    p.add_argument("--amp", action="store_true",
                   help="also time every row under bf16 autocast (train.amp; needs --device cuda): "
                        "a table each and the on/off ratios")
    p = sub.add_parser("layout", help="PI teacher: NCHW vs channels-last persistence images")
    p.add_argument("--config", default="paper", choices=["paper", "default"])
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--n", type=int, default=256, help="PIs per run (default 256)")
    p.add_argument("--repeat", type=int, default=3, help="runs per layout (median, range; default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    _engine_parsers(sub)
    _stage_parsers(sub)
    _training_parsers(sub)
    return parser


# ------------------------------------------------------------------ one handler per subcommand
def _topology(parser, args) -> None:
    from benchmarks.topology_engines import print_topology, run_topology

    if args.n < 1:
        parser.error("--n must be >= 1")
    print_topology(run_topology(args.n, args.tar, args.root, args.repeat, args.filtration))


def _topology_floor(parser, args) -> None:
    from benchmarks.topology_engines import print_topology_floor, run_topology_floor

    print_topology_floor(run_topology_floor(args.prepared, args.n, args.tar, args.root))


def _topology_signals(parser, args) -> None:
    from benchmarks.topology_engines import print_topology_signals, run_topology_signals

    print_topology_signals(run_topology_signals(args.repeat))


def _topology_backends(parser, args) -> None:
    from benchmarks.topology_backends import print_topology_backends, run_topology_backends

    print_topology_backends(run_topology_backends(args.n, args.tar, args.root, args.workers, args.shard_size,
                                                  args.engine))


def _topology_codecs(parser, args) -> None:
    from benchmarks.topology_codecs import print_topology_codecs, run_topology_codecs

    print_topology_codecs(run_topology_codecs(args.n, args.tar, args.root, args.repeat))


def _topology_stage(parser, args) -> None:
    from benchmarks.topology_stage import print_topology_stage, run_topology_stage

    print_topology_stage(run_topology_stage(args.root, args.workers, args.limit_train, args.limit_test,
                                            args.dtype, args.engine, args.repeat))


def _ddp(parser, args) -> None:
    from benchmarks.ddp import print_ddp, run_ddp

    print_ddp(run_ddp(args.arch, args.batch, args.steps, args.processes, args.channels))


def _train(parser, args) -> None:
    import torch

    from benchmarks.train_loop import print_train, run_train

    if args.n <= args.batch:
        parser.error("--n must exceed --batch (the project figure subtracts one batch's run)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    if args.amp and args.device != "cuda":
        parser.error("--amp needs --device cuda: the project ignores train.amp on the CPU")
    print_train(run_train(args.config, args.batch, args.n, args.repeat, args.threads,
                          torch.device(args.device), args.amp))


def _layout(parser, args) -> None:
    import torch

    from benchmarks.layout import print_layout, run_layout

    torch.set_num_threads(args.threads)
    print_layout(run_layout(args.config, args.batch, args.n, args.repeat))


HANDLERS = {"topology": _topology, "topology-floor": _topology_floor, "topology-signals": _topology_signals,
            "topology-backends": _topology_backends, "topology-codecs": _topology_codecs,
            "topology-stage": _topology_stage, "ddp": _ddp, "train": _train, "layout": _layout}


def _input_error(args, error: BaseException) -> str:
    """One line for an input the benchmark could not read: the file, and what is wrong with it."""
    if isinstance(error, (tarfile.TarError, EOFError, zlib.error)):  # a truncated or foreign tarball
        tar = getattr(args, "tar", None) or CIFAR_TAR_RELATIVE
        reason = (str(error).splitlines() or [""])[0].rstrip(":")  # tarfile's first line, its list left out
        return f"{tar}: not a readable tar.gz of JPEGs ({type(error).__name__}: {reason or 'truncated?'})"
    if isinstance(error, OSError) and error.filename:  # an unreadable JPEG or file (PIL's errors too)
        return f"{error.filename}: {error.strerror or error}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; 2 (and one line on stderr) when its data is missing or unreadable
    (a damaged tarball, JPEG or store); 130 on Ctrl-C."""
    from pipeline.errors import PipelineError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        HANDLERS[args.command](parser, args)
    except (BenchDataMissing, PipelineError, OSError, tarfile.TarError, EOFError, zlib.error) as error:
        print(f"error: {_input_error(args, error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    status = main()
    if status:
        from stages._cli import quiet_exit

        quiet_exit()  # the reads of a damaged zarr store cut short stay silent at exit
    sys.exit(status)
