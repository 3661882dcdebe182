"""What every stage command shares: params loading and errors printed as one clear line."""
from __future__ import annotations

import errno
import os
import logging
import sys
import traceback
import warnings
from pathlib import Path
from typing import Callable

from pipeline.errors import PipelineError
from pipeline.params import Params, load_params

REPO = Path(__file__).resolve().parents[1]


def run(main: Callable[[], None]) -> None:
    """Run a stage; a user-fixable error becomes one line on stderr and exit status 1.

    Besides the project's own errors, the environment's faults (a full disk, a read-only or
    forbidden folder, a refused connection: OSError) get one line naming the file, never a
    traceback; Ctrl-C (KeyboardInterrupt) one line and exit status 130, as a shell reports it."""
    try:
        main()
    except PipelineError as error:
        _fail(str(error))
    except OSError as error:
        _fail(describe_os_error(error))
    except KeyboardInterrupt:
        _fail("interrupted (Ctrl-C); run the stage again to go on (the resumable stages resume)", 130)


def _fail(message: str, status: int = 1) -> None:
    print(f"error: {message}", file=sys.stderr)
    quiet_exit()
    sys.exit(status)


def quiet_exit() -> None:
    """Keep the interpreter's exit after the error line quiet. A read of a damaged zarr file
    fails while zarr's event loop still runs the other chunks' reads; at exit zarr closes that
    loop and asyncio reports every read left pending ("Task was destroyed but it is pending!",
    "Exception ignored in: <coroutine ...>", "coroutine ... was never awaited": 100+ lines).
    The error is already said: those go."""
    sys.stderr.flush()
    sys.unraisablehook = lambda unraisable: None
    logging.getLogger("asyncio").disabled = True
    warnings.simplefilter("ignore")


def describe_os_error(error: OSError) -> str:
    """One line for an OSError: where (the file, else the project code that was writing) and what to do."""
    where = _shown(error.filename) if error.filename else f"a file written by {_project_frame(error)}"
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        return f"{where}: no space left on device; free space on that disk and run the stage again"
    if error.errno == errno.EROFS:
        return f"{where}: read-only file system; the stage writes under data/, which must be writable"
    if error.errno in (errno.EACCES, errno.EPERM):
        return _denied(where, error.filename)
    if isinstance(error, ConnectionError) or error.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH,
                                                             errno.ENETUNREACH, errno.ETIMEDOUT):
        return f"{where}: cannot connect ({reason}); check the address and that the server is up"
    return f"{where}: {reason}"


def _denied(where: str, filename) -> str:
    """A permission error as reading or as writing: a file that exists but that you may not read,
    or one behind a folder you may not enter, was being read (under data.root, or an input under
    data/); anything else (a file you may read, a file not there yet) was being written."""
    if filename is not None and _unreadable(Path(str(filename))):
        inside = Path(str(filename)).absolute().is_relative_to(Path.cwd() / "data")
        whose = "the stage's inputs under data/" if inside else "the data set's files under data.root"
        return f"{where}: permission denied reading it; {whose} must be readable by you (chmod -R u+rX)"
    return f"{where}: permission denied writing it; the stage writes under data/, which must be writable by you"


def _unreadable(path: Path) -> bool:
    """Whether `path` lies behind a folder that may not be entered, or exists but may not be
    read (a folder: listed and entered)."""
    path = path.absolute()
    if any(os.path.lexists(folder) and not os.access(folder, os.X_OK) for folder in path.parents):
        return True
    return os.path.lexists(path) and not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0))


def _shown(filename) -> str:
    """A file name as the user knows it: relative to the stage's folder (the repository) when
    inside it (workers are handed absolute paths)."""
    path = Path(str(filename))
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        return str(path.relative_to(Path.cwd()))
    return str(filename)


def _project_frame(error: BaseException) -> str:
    """`pipeline/x.py:N (function)`: the innermost frame of the project's code in the traceback."""
    found = "the stage (unknown place)"
    for frame in traceback.extract_tb(error.__traceback__):
        path = Path(frame.filename)
        if path.is_relative_to(REPO / "pipeline") or path.is_relative_to(REPO / "stages"):
            found = f"{path.relative_to(REPO)}:{frame.lineno} ({frame.name})"
    return found


def training_params(module: str) -> Params:
    """params.yaml for a training stage; with train.nproc > 1 the stage first relaunches itself
    under torchrun (pipeline.distributed.relaunch), so dvc.yaml keeps `python -m stages...`."""
    from pipeline import distributed  # torch: only the training stages pay for it

    params = load_params()
    distributed.relaunch(params.train.nproc, module, sys.argv[1:])
    return params


def report(line: str) -> None:
    """Print a stage's one-line result once (on rank 0 under torchrun)."""
    from pipeline import distributed

    if distributed.is_main():
        print(line)
