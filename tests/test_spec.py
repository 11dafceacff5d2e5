"""The composed config becomes a typed, validated RunSpec once, at the entry point."""

from __future__ import annotations

import pytest

from beft import records
from beft.errors import ConfigError
from beft.spec import DataSpec, DecoderSpec, RunSpec


def test_spec_holds_the_resolved_config(compose_cfg, data_dir):
    spec = RunSpec.from_config(compose_cfg("bias=q", "seed=3", f"data.dir={data_dir}"))
    assert spec.name == "minilm/rte/low/beft-q/seed=3" and spec.seed == 3 and spec.regime == "low"
    assert spec.bias_name == "q" and spec.trains and spec.reads_train_split
    assert spec.data == DataSpec(
        dir=str(data_dir), num_train=300, num_eval=None, max_length=128, padding="dynamic",
        cache_dir=spec.data.cache_dir,
    )  # fmt: skip
    assert spec.trainer_args["learning_rate"] == 1e-3 and spec.trainer_seed == 3
    assert spec.variant is None and spec.overrides is None  # outside a Hydra job
    assert spec.folder == records.run_folder(spec.results_dir, spec.name) == spec.folder.parent / "seed=3"
    assert spec.config["trainer"]["args"]["num_train_epochs"] == 30  # the whole resolved config, for the record


def test_decoders_keep_their_own_trainer_seed(compose_cfg):
    spec = RunSpec.unchecked(compose_cfg("model=smollm2", "task=cb", "seed=2"))
    assert spec.trainer_seed == 42 and spec.seed == 2 and spec.data.num_eval == 1000


def test_a_regime_without_schedule_is_named_before_its_missing_values(compose_cfg):
    with pytest.raises(ConfigError, match=r"regime='medium' is not defined for task='cb' on encoder models"):
        RunSpec.from_config(compose_cfg("task=cb", "regime=medium"))


def test_a_missing_value_names_its_key(compose_cfg):
    with pytest.raises(ConfigError, match=r"trainer.args.learning_rate has no value \(\?\?\?\)"):
        RunSpec.from_config(compose_cfg("trainer.args.learning_rate=???"))


def test_methods_without_a_bias_have_no_bias_name(compose_cfg):
    assert RunSpec.unchecked(compose_cfg("method=full")).bias_name is None


def test_decoders_score_with_the_shared_prefix_unless_told_otherwise(compose_cfg):
    assert RunSpec.unchecked(compose_cfg("model=smollm2", "task=cb")).decoder.shared_prefix is True
    assert RunSpec.unchecked(compose_cfg("model=smollm2", "task=cb", "decoder.shared_prefix=false")).decoder == (
        DecoderSpec(shared_prefix=False)
    )
    assert RunSpec.unchecked(compose_cfg("task=rte")).decoder is None  # encoders have no candidates
    with pytest.raises(ConfigError, match=r"decoder.shared_prefix='yes'; valid: true, false"):
        RunSpec.unchecked(compose_cfg("model=smollm2", "task=cb", "decoder.shared_prefix=yes"))
