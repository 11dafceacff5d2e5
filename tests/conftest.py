"""Shared fixtures: the real data folder, Hydra composition, tiny randomly initialised models."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
FIXTURE_DATA = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real GLUE/SuperGLUE files (BEFT_DATA_DIR, else ../shared/data). Missing data fails the test, loudly."""
    path = Path(os.environ.get("BEFT_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (path / "glue" / "RTE" / "train.tsv").is_file():
        pytest.fail(f"real data folder not found at {path}: set BEFT_DATA_DIR to a copy of shared/data")
    return path


@pytest.fixture(scope="session")
def fixture_data_dir() -> Path:
    return FIXTURE_DATA


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose conf/train.yaml with overrides; results and caches go to the test's temporary folder."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(
                "train",
                overrides=[
                    f"results_dir={tmp_path / 'runs'}",
                    f"data.cache_dir={tmp_path / 'cache'}",
                    *overrides,
                ],
            )

    return _compose


def smollm2_config(cache: Path) -> dict:
    """conf/model/smollm2.yaml as a run composes it, with ``cache`` as data.cache_dir."""
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=smollm2", f"data.cache_dir={cache}"])
    return OmegaConf.to_container(cfg.model, resolve=True)


@pytest.fixture(scope="session")
def decoder_cache(tmp_path_factory) -> Path:
    """A data.cache_dir holding the real SmolLM2 de-quantised from its GGUF file once (~30 s), so every decoder test
    of the session loads it in seconds: BEFT_CACHE_DIR when set (kept across sessions), else a session folder."""
    from beft.models import loading

    cache = Path(os.environ["BEFT_CACHE_DIR"]) if os.environ.get("BEFT_CACHE_DIR") else tmp_path_factory.mktemp("cache")
    model_cfg = smollm2_config(cache)
    if not Path(loading.resolve_source(model_cfg), "config.json").is_file():  # still the GGUF file: convert it
        loading.load_decoder(model_cfg)
        assert Path(loading.resolve_source(model_cfg), "config.json").is_file(), "SmolLM2 was not converted"
    return cache


@pytest.fixture(scope="session")
def smollm2_tokenizer(decoder_cache):
    """The real SmolLM2 tokenizer (byte-level BPE, adds no BOS token) from the converted folder, padding on the left
    as decoder runs use it."""
    from transformers import AutoTokenizer

    from beft.models import loading

    tokenizer = AutoTokenizer.from_pretrained(loading.resolve_source(smollm2_config(decoder_cache)))
    tokenizer.padding_side = "left"
    return tokenizer


def run_config(cfg: DictConfig) -> dict:
    """A composed config run as the entry point runs it (validated into a RunSpec, then trained or skipped); returns
    the record as written to record.json."""
    from beft import records
    from beft.run import run
    from beft.spec import RunSpec

    return records.to_dict(run(RunSpec.from_config(cfg)))


def write_record(folder, data: dict, name: str = "record.json"):
    """Write a (partial) record given as its JSON data, through the suite's one writer."""
    from beft import records

    kind = records.RankingRecord if name == records.RANKING_FILE else records.RunRecord
    return records.write(folder, records.from_dict(kind, data))
