"""What every stage command shares: params loading and errors printed as one clear line."""
from __future__ import annotations

import sys
from typing import Callable

from pipeline import distributed
from pipeline.errors import PipelineError
from pipeline.params import Params, load_params


def run(main: Callable[[], None]) -> None:
    """Run a stage; a user-fixable error becomes one line on stderr and exit status 1."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def training_params(module: str) -> Params:
    """params.yaml for a training stage; with train.nproc > 1 the stage first relaunches itself
    under torchrun (pipeline.distributed.relaunch), so dvc.yaml keeps `python -m stages...`."""
    params = load_params()
    distributed.relaunch(params.train.nproc, module, sys.argv[1:])
    return params


def report(line: str) -> None:
    """Print a stage's one-line result once (on rank 0 under torchrun)."""
    if distributed.is_main():
        print(line)
