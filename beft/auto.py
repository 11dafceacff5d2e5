"""``bias=auto``: the paper's method in one run (docs/usage.md §8): rank the biases, fine-tune the one ranked first.

1. the ranking of the run's (model, task, regime, seed): ``beft.rank`` with the same settings, which reuses a
   completed ranking record, else a completed BitFit record (the all-bias fine-tuning, an ordinary run);
2. the candidate (``bias.roles``: b_q, b_k, b_v) that ``bias.approach`` ranks first;
3. the run itself: method beft on that bias with the task's schedule, exactly as ``bias=<chosen>`` (same seed, same
   settings), into the ``beft-auto`` folder; its record's ``auto`` names the approach, the chosen bias, the scores and
   the ranking record.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from omegaconf import OmegaConf

from beft import CONF_DIR, rank, records
from beft.errors import BeftError
from beft.importance import CANDIDATES
from beft.spec import RunSpec

log = logging.getLogger(__name__)

RANK_KEYS = ("method", "bias", "rank", "run_name")  # what conf/rank.yaml sets beyond the run's own settings
_OWN_KEYS = re.compile(r"^[+~]*(bias|method)(\.|=)")  # overrides of the auto run that the ranking does not share


def choose(spec: RunSpec) -> RunSpec:
    """The run's spec with its bias chosen by the ranking (computed, or reused when complete)."""
    ranking_spec = ranking_spec_of(spec)
    ranking = rank.rank(ranking_spec)
    approach, where = spec.bias["approach"], ranking_spec.rank_folder / records.RANKING_FILE
    if approach not in ranking.approaches:  # the angle score when the fine-tuned biases started at zero
        raise BeftError(f"{where} has no {approach!r} score; valid: bias.approach={list(ranking.approaches)}")
    summary = ranking.approaches[approach]
    chosen = next(role for role in summary["ranking_qkv"] if role in spec.bias["roles"])
    auto = {
        "approach": approach,
        "chosen": chosen,
        "scores": {role: summary["sum"][role] for role in CANDIDATES if role in summary["sum"]},
        "ranking": str(where.relative_to(spec.results_dir)),
    }
    log.info("bias=auto: %s ranks b_%s first (%s); training it", approach, chosen, where)
    bias = {**spec.bias, "roles": [chosen]}
    return dataclasses.replace(spec, bias=bias, config={**spec.config, "bias": bias}, auto=auto)


def ranking_spec_of(spec: RunSpec) -> RunSpec:
    """``beft.rank``'s spec for the run's model, task, regime, seed and settings: conf/rank.yaml's method, bias and
    ranking blocks in place of the run's own (the variant and overrides lose the run's bias and method keys)."""
    own = {key: value for key, value in spec.config.items() if key not in RANK_KEYS}
    config: Any = OmegaConf.merge(OmegaConf.create(own), _rank_blocks())
    config.force = False  # force=true reruns the auto run; the ranking is rerun by beft.rank force=true
    ranking = RunSpec.from_config(config, hydra_job=False)
    overrides = None if spec.overrides is None else [o for o in spec.overrides if not _OWN_KEYS.match(o)]
    return dataclasses.replace(ranking, variant=_without_own_keys(spec.variant), overrides=overrides)


def _rank_blocks() -> Any:
    """conf/rank.yaml's own blocks, unresolved (they interpolate the run's model, task, regime and seed)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a Hydra job (beft.train)
        composed = compose("rank")
    else:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            composed = compose("rank")
    return OmegaConf.masked_copy(composed, list(RANK_KEYS))


def _without_own_keys(variant: str | None) -> str | None:
    """The variant (Hydra's ``k=v,k=v`` override dirname) without the bias and method keys."""
    if variant is None:
        return None
    kept = [item for item in re.split(r",(?=[\w.+~/-]+=)", variant) if not _OWN_KEYS.match(item)]
    return ",".join(kept) or None
