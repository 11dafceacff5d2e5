"""What every Hydra entry point does with failures, so a typo or one bad job never costs a whole sweep.

Single run: bad input (``BeftError``) -> a one-line message and exit code 2; a NaN/inf loss -> a one-line message
and exit code 1 (the record says failed); SIGTERM -> no record, exit code 143; Ctrl-C -> no record, exit code 130;
a run another live job holds -> skipped; other errors propagate.
Sweep (``-m``): any failure is logged and the sweep goes on with the next job; the failed job's record says why,
and a rerun of the sweep redoes it. A sweep with failed jobs (local, submitit or SLURM) ends with their list and exit
code 1.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from beft.errors import BeftError
from beft.records import RunLockedError
from beft.sweeps import faults
from beft.training.trainer import NonFiniteLossError

T = TypeVar("T")


def in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def guarded(fn: Callable[[DictConfig], T], cfg: DictConfig, log: logging.Logger) -> T | faults.FailedJob | None:
    try:
        with faults.terminate_as_exception():  # SIGTERM -> Terminated: no record, exit 143 (beft/sweeps/faults.py)
            return fn(cfg)
    except RunLockedError as err:  # another live job runs it and will write its record
        log.warning("skipping: %s", err)
        return None
    except faults.Terminated as err:
        log.error("%s: stopped without writing a record; rerun the same command (or requeue) to redo the run", err)
        sys.exit(faults.EXIT_CODE)
    except KeyboardInterrupt:  # Ctrl-C ends like SIGTERM, with the shell's code for SIGINT
        log.error("interrupted by Ctrl-C: stopped without writing a record; rerun the same command to redo the run")
        sys.exit(faults.INTERRUPT_EXIT_CODE)
    except NonFiniteLossError as err:
        log.error("%s (the run's record says status failed)", err)
        if in_sweep():
            return _failed_in_sweep(err)
        sys.exit(1)
    except BeftError as err:
        log.error("%s", err)
        if in_sweep():
            return _failed_in_sweep(err)
        _drop_new_run_folder()
        sys.exit(2)
    except Exception as err:
        if not in_sweep():
            raise
        log.exception("this job failed; the sweep goes on (rerun the sweep to redo it)")
        return _failed_in_sweep(err)


def _drop_new_run_folder() -> None:
    """Bad input leaves nothing behind: the run folder Hydra made for this command is removed when it holds only
    Hydra's own files (``.hydra/``, ``train.log``): no record, no lock, nothing of an earlier run."""
    if not HydraConfig.initialized():
        return
    folder = Path(HydraConfig.get().runtime.output_dir)
    if folder.is_dir() and {p.name for p in folder.iterdir()} <= {".hydra", "train.log"}:
        shutil.rmtree(folder, ignore_errors=True)


def _failed_in_sweep(err: BaseException) -> faults.FailedJob:
    """Note the failed job for the sweep's closing summary (the sweep then exits 1); the sweep goes on. The return
    value tells a submitit/SLURM sweep, whose jobs run in other processes, the same."""
    overrides = " ".join(HydraConfig.get().overrides.task) if HydraConfig.initialized() else "?"
    faults.FAILED_JOBS.append(f"{overrides}: {faults.one_line(err)}")
    return faults.FailedJob(faults.one_line(err))
