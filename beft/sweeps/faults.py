"""Termination signals: a run stopped by SIGTERM (``scancel``, SLURM preemption or requeue, a cluster's time limit)
ends like a SIGKILLed one, with no record, so rerunning the same command (or the requeued job) redoes it cleanly.

Python's default for SIGTERM is to die at once, skipping ``finally`` blocks: the run's scratch folder stays behind and
nothing is logged. Inside ``terminate_as_exception`` SIGTERM raises ``Terminated`` in the main thread instead, so the
run cleans up, writes no record and the entry point exits with 143 (128 + SIGTERM) after one log line.

Under submitit (Hydra's submitit launcher on SLURM) submitit owns the signals: it ignores SIGTERM on purpose and, on
its preemption signal (SIGUSR2), requeues the job and exits with ``SystemExit``. A handler installed by someone else is
never replaced, and runs treat ``SystemExit`` and ``KeyboardInterrupt`` like ``Terminated``: no record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from beft.errors import BeftError

EXIT_CODE = 128 + signal.SIGTERM
INTERRUPT_EXIT_CODE = 128 + signal.SIGINT  # Ctrl-C: the same clean stop as SIGTERM, the shell's code for SIGINT


class JobsFailed(RuntimeError):
    """Jobs of a local sweep failed (each was logged and the sweep went on): the sweep ends with exit code 1."""


@dataclasses.dataclass(frozen=True)
class FailedJob:
    """A sweep job's return value when beft's guard logged its failure and went on (picklable: submitit returns it)."""

    reason: str


FAILED_JOBS: list[str] = []  # "<overrides>: <reason>" of every job of this process's sweep that failed


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, so ``except Exception`` (which writes a ``failed`` record) lets it through."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _raise(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM during clean-up ends the process at once
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[bool]:
    """Turn SIGTERM into ``Terminated`` while inside; yields whether the handler was installed.

    Installed only in the main thread and only over the default action, so submitit's own handling stays intact.
    """
    install = threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    )
    previous = signal.signal(signal.SIGTERM, _raise) if install else None
    try:
        yield install
    finally:
        if install:
            signal.signal(signal.SIGTERM, previous)


def one_line(err: BaseException) -> str:
    """An error's message on one line: Hydra's indented lists ("Available options in 'model':") comma-separated,
    its config search path left out."""
    raw = [line for line in str(err).split("Config search path:")[0].splitlines() if line.strip()]
    out = raw[0].strip() if raw else type(err).__name__
    for line in raw[1:]:
        if line[:1].isspace():  # an item of the list the previous line announced
            out += (" " if out.endswith(":") else ", ") + line.strip()
        else:
            out += ("" if out.endswith((".", ":")) else ";") + " " + line.strip()
    return out


def main_with_one_line_errors(main: Callable[[], object]) -> None:
    """Run a Hydra entry point so that Hydra's own errors (bad override syntax, an unknown group choice or key, an
    output folder under a file) end in one line and exit code 2, as bad input does in a job; a sweep whose jobs
    failed ends in one line (after the list of failed jobs) and exit code 1; Ctrl-C outside a run, exit code 130.

    Hydra prints such errors as several lines and exits 1 unless ``HYDRA_FULL_ERROR`` is set, in which case it
    re-raises them; it is set here (when the user has not set it) and the errors are caught. A user who sets
    ``HYDRA_FULL_ERROR=1`` gets Hydra's full traceback as usual.
    """
    if os.environ.get("HYDRA_FULL_ERROR"):
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    sweep = any(arg in ("-m", "--multirun") for arg in sys.argv[1:])
    try:
        main()
    except (HydraException, OmegaConfBaseException, BeftError) as err:
        _exit(one_line(err), 2)
    except (NotADirectoryError, FileExistsError) as err:  # Hydra creating the run folder under a file
        _exit(f"cannot create {err.filename}: a part of it is a file, not a folder (check results_dir)", 2)
    except JobsFailed as err:  # the failed jobs, each logged with its reason
        _exit(str(err), 1)
    except KeyboardInterrupt:
        _exit("interrupted by Ctrl-C; rerun the same command", INTERRUPT_EXIT_CODE)
    except Exception as err:
        if not sweep:
            raise
        _exit(f"{one_line(err)} (HYDRA_FULL_ERROR=1 shows the traceback)", 1)  # a job's failure: listed above


def _exit(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
