"""A tiny model, its full and b_v rows and a batch: the bench's parts in milliseconds."""

from __future__ import annotations

import pytest
import torch

from beft.bench import steps
from beft.models import methods
from tests.models.tiny import tiny_bert


@pytest.fixture
def tiny_batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 100, (4, 10), generator=torch.Generator().manual_seed(0))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 0, 1])}


@pytest.fixture
def tiny_rows():
    """A tiny BERT and its rows: full fine-tuning, b_v (+ pooler bias and head), evaluation."""
    torch.manual_seed(0)
    model = tiny_bert()
    full = steps.StepSetup("full", "full", methods.apply_method(model, {"trainable": "all"}, {}).params, lr=1e-5)
    bv = methods.apply_method(model, {"trainable": "bias", "head": True, "pooler_bias": True}, {"roles": ["v"]})
    return model, [full, steps.StepSetup("b_v", "b_v", bv.params, lr=1e-3), steps.EVAL]
