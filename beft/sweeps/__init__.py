"""The Hydra glue of the entry points (beft.train, beft.rank): sweeps that skip finished runs, run folders of
variants, what a job does with failures.

* ``skip``: which jobs of a sweep are finished, and the launcher mix-ins that launch only the others;
* ``collect``: waiting for submitit jobs (local processes or a SLURM job array);
* ``callbacks``: ``KeepFinishedRunFiles`` (a skipped single run keeps the finished run's ``.hydra/`` files);
* ``variants``: a run with changed hyperparameters gets its own folder;
* ``guard``: what an entry point does with failures; ``faults``: SIGTERM as an exception;
* ``hydra_internals``: the only module that uses Hydra's private API.

The launcher classes Hydra instantiates are in hydra_plugins/beft_launchers/launchers.py.
"""

from beft.sweeps import hydra_internals, variants


def setup() -> None:
    """What an entry point does when imported: register the ``beft_variant`` resolver its run folders use, and
    silence Hydra's schema-matching warning for conf/hydra/launcher/submitit_local.yaml."""
    variants.register_resolver()
    hydra_internals.quiet_schema_matching()
