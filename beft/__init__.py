"""BEFT: bias-efficient fine-tuning of language models (reproduction suite)."""

from pathlib import Path

__version__ = "0.1.0"
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # the Hydra configs: every default the suite reads
