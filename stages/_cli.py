"""What every stage command shares: params loading and errors printed as one clear line."""
from __future__ import annotations

import sys
from typing import Callable

from pipeline.errors import PipelineError


def run(main: Callable[[], None]) -> None:
    """Run a stage; a user-fixable error becomes one line on stderr and exit status 1."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
