"""One pipeline per model kind (``model.kind``): the only place the suite tells encoders and decoders apart.

``pipeline_for(model_cfg)`` returns the pipeline; run, rank, config and adapters ask it instead of branching on the
kind. A new kind (e.g. an encoder with a multiple-choice head) is one new module here, registered in ``PIPELINES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from beft.errors import ConfigError
from beft.pipelines.base import FitSettings, Pipeline, PreparedData
from beft.pipelines.decoder import DecoderPipeline
from beft.pipelines.encoder import EncoderPipeline

PIPELINES: dict[str, Pipeline] = {p.kind: p for p in (EncoderPipeline(), DecoderPipeline())}
DEFAULT_KIND = "encoder"

__all__ = ["PIPELINES", "FitSettings", "Pipeline", "PreparedData", "pipeline_for"]


def pipeline_for(model_cfg: Mapping[str, Any]) -> Pipeline:
    kind = model_cfg.get("kind", DEFAULT_KIND)
    if kind not in PIPELINES:
        raise ConfigError(f"model.kind={kind!r} (model {model_cfg.get('name')}); valid: {list(PIPELINES)}")
    return PIPELINES[kind]
