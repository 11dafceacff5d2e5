"""Run variants: a run whose hyperparameters differ from the composed defaults gets its own folder.

The run folder ``<model>/<task>/<regime>/<label>/seed=<n>`` names the paper's configuration. A command that also
overrides a value (``data.num_train=32``, ``trainer.args.learning_rate=...``) is a *variant*: it is written to
``seed=<n>__<overrides>``, its record says ``run.variant``, and tables never average it in with the paper's runs; nor
does a debug run make the real one look finished. Keys that only say where things are or how they are logged do not
make a variant: they are listed in ``hydra.job.config.override_dirname.exclude_keys`` of conf/base.yaml.
"""

from __future__ import annotations

import hashlib

from omegaconf import OmegaConf

MAX_NAME = 120


def suffix(override_dirname: str | None) -> str:
    """The folder suffix of a variant ("" for the paper's configuration); long override lists are hashed."""
    if not override_dirname:
        return ""
    if len(override_dirname) > MAX_NAME:
        digest = hashlib.sha256(override_dirname.encode()).hexdigest()[:12]
        return f"__variant-{digest}"
    return f"__{override_dirname.replace('/', '_')}"


def current() -> str | None:
    """This Hydra job's variant (its non-identity overrides), or None outside Hydra or for the paper's config."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().job.override_dirname or None


def register_resolver() -> None:
    if not OmegaConf.has_resolver("beft_variant"):
        OmegaConf.register_new_resolver("beft_variant", suffix)
