"""Shared fixtures: the real data folder, Hydra composition, tiny randomly initialised models."""

from __future__ import annotations

import os
import shutil
import subprocess
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
# The real data folder: BEFT_DATA_DIR, else shared/data beside the clone.
DATA_DIR = Path(os.environ.get("BEFT_DATA_DIR") or REPO.parent / "shared" / "data").resolve()
DATA_MISSING = (
    f"the real data folder was not found at {DATA_DIR} (no glue/RTE/train.tsv): "
    "point BEFT_DATA_DIR at a copy of shared/data (folders glue/, super_glue/, squad/)"
)
SLURM_PACKAGES_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch")


def _data_present() -> bool:
    return (DATA_DIR / "glue" / "RTE" / "train.tsv").is_file()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real GLUE/SuperGLUE files (BEFT_DATA_DIR, else ../shared/data); when missing, the session says so once."""
    if not _data_present():
        pytest.fail(DATA_MISSING)
    return DATA_DIR


def slurm_answers() -> bool:
    """A SLURM cluster takes jobs here (the controller answers and a node is up)."""
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
        nodes = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return "is UP" in ping.stdout and any(s in nodes.stdout for s in ("idle", "mixed", "allocated"))


def _why_no_slurm() -> str | None:
    """None when the slurm tests can run: a cluster answers, or tests/test_slurm.py can start the local one (root
    and the packages); else why not."""
    if slurm_answers():
        return None
    if os.geteuid() != 0:
        return "no SLURM cluster takes jobs and starting the local one needs root"
    if not all(shutil.which(b) for b in SLURM_PACKAGES_BINARIES):
        return "no SLURM cluster takes jobs and the packages slurm-wlm and munge are not installed"
    return None


_NOT_RUN = pytest.StashKey[list[str]]()  # the closing lines: what did not run and how to run it
_NO_DATA = pytest.StashKey[bool]()


@pytest.hookimpl(trylast=True)  # after -m has deselected what it deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a cluster the slurm tests are skipped with the reason (BEFT_REQUIRE_SLURM=1: they run, and fail).
    Without the real data its tests are deselected and the session fails, with one line saying where to put it."""
    lines = config.stash.setdefault(_NOT_RUN, [])
    if not _data_present():
        needs_data = [item for item in items if "data_dir" in getattr(item, "fixturenames", ())]
        if needs_data:
            config.hook.pytest_deselected(items=needs_data)
            items[:] = [item for item in items if item not in needs_data]
            config.stash[_NO_DATA] = True
            lines.append(f"{len(needs_data)} tests need the real data and were not run: {DATA_MISSING}")
    slurm = [item for item in items if item.get_closest_marker("slurm")]
    why = _why_no_slurm() if slurm and os.environ.get("BEFT_REQUIRE_SLURM") != "1" else None
    if why:
        for item in slurm:
            item.add_marker(pytest.mark.skip(reason=f"{why}: run them with `sudo make test-slurm`"))
        lines.append(f"{len(slurm)} slurm tests were not run ({why}); run them with `sudo make test-slurm`")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Tests left out for want of data fail the session: the suite has not been run."""
    if session.config.stash.get(_NO_DATA, False) and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_unconfigure(config: pytest.Config) -> None:
    """The closing lines, after pytest's own summary."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for line in config.stash.get(_NOT_RUN, []) if reporter is not None else []:
        reporter.write_line(line)


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


def task_config(task: str) -> dict:
    """conf/task/<task>.yaml merged over the task configs its defaults list names (pawsx_zh extends pawsx)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONF_DIR / "task" / f"{task}.yaml")
    bases = [OmegaConf.create(task_config(b)) for b in cfg.pop("defaults", []) if b != "_self_"]
    return OmegaConf.to_container(OmegaConf.merge(*bases, cfg))


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
