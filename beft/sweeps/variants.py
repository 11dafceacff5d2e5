"""Run variants: a run whose hyperparameters differ from the composed defaults gets its own folder.

The run folder ``<model>/<task>/<regime>/<label>/seed=<n>`` names the paper's configuration. A command that also
overrides a value (``data.num_train=32``, ``trainer.args.learning_rate=...``) is a *variant*: it is written to
``seed=<n>__<overrides>``, its record says ``run.variant``, and tables never average it in with the paper's runs; nor
does a debug run make the real one look finished. Keys that only say where things are or how they are logged do not
make a variant: they are listed in ``hydra.job.config.override_dirname.exclude_keys`` of conf/base.yaml.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from beft import records


def current() -> str | None:
    """This Hydra job's variant (its non-identity overrides), or None outside Hydra or for the paper's config."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().job.override_dirname or None


def register_resolver() -> None:
    """``${beft_variant:...}`` in the entry configs' run folders: the same suffix as ``records.run_folder``."""
    if not OmegaConf.has_resolver("beft_variant"):
        OmegaConf.register_new_resolver("beft_variant", records.variant_suffix)
