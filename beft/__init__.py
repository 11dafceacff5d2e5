"""BEFT: bias-efficient fine-tuning of language models (reproduction suite)."""

__version__ = "0.1.0"
