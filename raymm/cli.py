"""What the jobs share at the command line."""

from __future__ import annotations

import sys

from raymm.errors import InputError


def report_input_errors() -> None:
    """Print bad-input errors (:class:`raymm.errors.InputError`, a missing file) as one line on
    stderr and exit with status 2; any other exception keeps its full traceback (status 1)."""

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, (InputError, FileNotFoundError, FileExistsError)):
            print(f"raymm: error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)
        sys.__excepthook__(exc_type, exc, tb)

    sys.excepthook = hook
