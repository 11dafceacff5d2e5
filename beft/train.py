"""``python -m beft.train model=... task=... regime=... bias=... method=... seed=...``: one BEFT run."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from beft import sweeps
from beft.sweeps import faults

log = logging.getLogger("beft.train")
sweeps.setup()  # the beft_variant resolver of the run folders; quiet schema matching (submitit_local.yaml)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig):
    # imported here, by the job: a sweep's launching process (which submits jobs, or skips finished ones) never
    # loads torch and transformers, so a rerun of a finished sweep takes a second
    from beft.sweeps.guard import guarded

    result = guarded(run_from_config, cfg, log)
    if not isinstance(result, tuple):  # skipped (None) or failed in a sweep (FailedJob: the sweep's summary lists it)
        return result
    spec, record = result
    score, params = record.score, record.params
    print(
        f"\n{spec.name}: {score.split} {score.metric} = {score.final:.4f} (final epoch; "
        f"best {score.best:.4f} at epoch {score.best_epoch})\n"
        f"trainable parameters: {params['trainable']:,} of {params['total']:,} ({params['percent']:.4f} %)\n"
        f"record: {spec.folder / record.FILE}"
    )
    return score.final


def run_from_config(cfg: DictConfig):
    from beft.run import run
    from beft.spec import RunSpec

    spec = RunSpec.from_config(cfg)  # validated here, before any data or weights load
    return spec, run(spec)


if __name__ == "__main__":
    faults.main_with_one_line_errors(main)  # Hydra's own errors: one line, exit code 2
