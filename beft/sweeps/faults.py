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
import signal
import threading
from collections.abc import Iterator

EXIT_CODE = 128 + signal.SIGTERM


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
