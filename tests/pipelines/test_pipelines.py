"""The model kind is chosen once: each pipeline frames its tasks, and unknown kinds fail in one line."""

from __future__ import annotations

import pytest

from beft.errors import ConfigError
from beft.pipelines import PIPELINES, pipeline_for
from beft.spec import RunSpec


def test_every_kind_of_conf_model_has_a_pipeline():
    assert set(PIPELINES) == {"encoder", "decoder"}
    assert pipeline_for({"name": "x"}).kind == "encoder"  # a model config without `kind` is an encoder


def test_an_unknown_kind_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"model.kind='vision' \(model x\); valid: \['encoder', 'decoder'\]"):
        pipeline_for({"name": "x", "kind": "vision"})


@pytest.mark.parametrize(
    ("model", "kind", "metric"),
    [("minilm", "encoder", "f1_macro"), ("smollm2", "decoder", "accuracy")],  # decoders report CB's accuracy
)
def test_the_pipeline_frames_the_task(compose_cfg, model, kind, metric):
    spec = RunSpec.unchecked(compose_cfg(f"model={model}", "task=cb"))
    pipeline = pipeline_for(spec.model)
    assert pipeline.kind == kind and spec.task.main_metric == metric
    assert spec.task.task_kind in pipeline.task_kinds
    assert set(spec.task.metrics) <= set(pipeline.valid_metrics(spec.task))


def test_an_encoder_cannot_generate(compose_cfg):
    with pytest.raises(ConfigError, match="task 'squad' runs on decoder models only, and model 'minilm' is an encoder"):
        RunSpec.from_config(compose_cfg("task=squad"))
