"""The entry configs share conf/base.yaml (keys, variants' exclude_keys) and conf/groups.yaml (the config groups in
merge order); the bias-PEFT methods share conf/method/shared/bias_peft.yaml."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR
from tests.sweeps.conftest import sweep_config

BIAS_PEFT = ["bias_lora", "bias_vera", "bias_vera1d", "bias_dora", "bias_pissa", "bias_balora"]


def test_rank_differs_from_train_in_task_bias_method_and_its_folder(tmp_path):
    train, rank = sweep_config(tmp_path), sweep_config(tmp_path, entry="rank")
    assert (train.task.name, train.bias.name, train.method.name) == ("rte", "v", "beft")
    assert (rank.task.name, rank.bias.name, rank.method.name) == ("sst2", "all", "bitfit")
    same = sweep_config(tmp_path, "task=sst2", "bias=all", "method=bitfit")
    for key in ("seed", "data", "results_dir", "run_name", "model", "task", "regime", "bias", "trainer", "method"):
        assert OmegaConf.to_container(same)[key] == OmegaConf.to_container(rank)[key], key
    assert OmegaConf.to_container(same.hydra.job.config) == OmegaConf.to_container(rank.hydra.job.config)
    assert "rank" not in same and "save_adapter" not in rank
    folders = [OmegaConf.to_container(cfg.hydra)["run"]["dir"] for cfg in (same, rank)]
    variant = "${beft_variant:${hydra:job.override_dirname}}"
    assert folders == ["${results_dir}/${run_name}" + variant, "${results_dir}/${rank.name}" + variant]


def test_no_ranking_experiment_overrides_what_rank_yaml_overrides():
    """rank.yaml's `override task/bias/method` take precedence over an experiment's: ranking experiments sweep the
    task (hydra.sweeper.params) instead."""
    for path in sorted((CONF_DIR / "experiment").glob("*_rank.yaml")):
        defaults = OmegaConf.load(path).get("defaults", [])
        overridden = {key.split()[-1].lstrip("/") for entry in defaults if isinstance(entry, dict) for key in entry}
        assert not overridden & {"task", "bias", "method"}, path.name


@pytest.mark.parametrize("method", BIAS_PEFT)
def test_bias_peft_methods_share_their_common_keys_after_their_own(method, tmp_path):
    cfg = sweep_config(tmp_path, "model=bert_base", f"method={method}")
    keys = list(cfg.method)
    assert keys[:4] == ["name", "label", "trainable", "variant"] and keys[-4:] == ["alpha", "reshape", "head",
                                                                                   "pooler_bias"]  # fmt: skip
    assert (cfg.method.alpha, cfg.method.head, cfg.method.pooler_bias) == (1, True, True)
    assert OmegaConf.to_container(cfg.method.reshape) == OmegaConf.to_container(cfg.model.bias_reshape)
    assert cfg.trainer.args.num_train_epochs == 50 and cfg.method.name == method
