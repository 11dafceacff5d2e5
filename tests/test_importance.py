"""Importance scores against hand-computed vectors, edge cases, aggregation and ranking (docs/method.md §3)."""

from __future__ import annotations

import math

import pytest
import torch

from beft import importance
from beft.importance import ScoreError
from beft.models import methods
from tests.models.tiny import LAYERS, tiny_bert, tiny_opt


def stats(b0: list[float], bf: list[float]) -> dict:
    return importance.change_stats(torch.tensor(b0), torch.tensor(bf))


@pytest.mark.parametrize(
    ("b0", "bf", "expected"),
    [
        ([3.0, 4.0], [6.0, 8.0], 0.5),  # same direction, norm doubled: 1 - 50/100
        ([3.0, 4.0], [4.0, 3.0], 1 - 24 / 25),  # same norm, rotated
        ([2.0, 0.0], [1.0, 1.0], 0.5),  # |bf| < |b0|: 1 - 2/4 = (sqrt2/2) * cos 45
        ([1.0, 2.0], [1.0, 2.0], 0.0),  # unchanged
        ([1.0, 0.0], [0.0, 5.0], 1.0),  # orthogonal
    ],
)
def test_angle_score_hand_computed(b0, bf, expected):
    s = stats(b0, bf)
    assert importance.angle_score(s["dot"], s["norm0"], s["normf"]) == pytest.approx(expected)


def test_angle_score_is_invariant_to_common_rescaling():
    a, b = stats([0.3, -0.2, 0.9], [0.5, 0.1, 0.7]), stats([3.0, -2.0, 9.0], [5.0, 1.0, 7.0])
    assert importance.angle_score(a["dot"], a["norm0"], a["normf"]) == pytest.approx(
        importance.angle_score(b["dot"], b["norm0"], b["normf"])
    )


def test_zero_norm_is_an_error_even_with_negative_dot():
    with pytest.raises(ScoreError, match="norm is zero"):
        importance.angle_score(0.0, 0.0, 1.0)
    with pytest.raises(ScoreError, match="norm is zero"):  # reference: zero-norm error wins (docs/method.md §3.3 #4)
        importance.angle_score(-1.0, 0.0, 1.0)


def test_angle_over_90_degrees_errors_or_reports_raw_value():
    rows = [{"role": "v", "layer": 0, **stats([1.0, 0.0], [-1.0, 1.0])}]
    with pytest.raises(ScoreError, match="v bias of layer 0: angle .* larger than 90 degrees"):
        importance.layer_scores(rows, "angle")
    assert importance.layer_scores(rows, "angle", angle_over_90="report") == {"v": [pytest.approx(1.5)]}


def test_magnitude_is_mean_absolute_change():
    rows = [{"role": "q", "layer": 1, **stats([1.0, 2.0, 3.0], [2.0, 2.0, 1.0])}]
    rows.append({"role": "q", "layer": 0, **stats([0.0, 0.0, 0.0], [0.3, 0.0, 0.0])})
    assert importance.layer_scores(rows, "magnitude") == {"q": [pytest.approx(0.1), pytest.approx(1.0)]}


def test_summarise_sums_ranks_and_selects_among_qkv():
    summary = importance.summarise({"q": [0.1, 0.2], "k": [0.0, 0.0], "v": [0.3, 0.3], "o": [0.5, 0.5]})
    assert summary["sum"] == pytest.approx({"q": 0.3, "k": 0.0, "v": 0.6, "o": 1.0})
    assert summary["mean"]["v"] == pytest.approx(0.3)
    assert summary["ranking"] == ["o", "v", "q", "k"]
    assert summary["ranking_qkv"] == ["v", "q", "k"] and summary["target"] == "v"


def test_bias_change_covers_every_trained_layer_bias_of_opt():
    """Role-based: OPT's q/k/v/out_proj, fc1/fc2 and both layer norms, with no name matching."""
    model = tiny_opt()
    trained = methods.apply_method(model, {"trainable": "all_biases", "head": False}, {})
    before = importance.snapshot(model, trained.params)
    with torch.no_grad():
        for p in trained.params:
            p.add_(0.1)
    rows = importance.bias_change(before, model)
    assert {r["role"] for r in rows} == {"q", "k", "v", "o", "ln1", "m2", "m3", "ln2"}
    assert len(rows) == 8 * LAYERS
    magnitude = importance.layer_scores(rows, "magnitude")
    assert magnitude["v"] == [pytest.approx(0.1)] * LAYERS


def batches(n: int):
    gen = torch.Generator().manual_seed(0)
    for _ in range(n):
        yield {"input_ids": torch.randint(0, 100, (4, 6), generator=gen), "labels": torch.tensor([0, 1, 1, 0])}


def test_fisher_equals_hand_computed_batch_average():
    model = tiny_bert()
    methods.apply_method(model, {"trainable": "all_biases", "head": True}, {})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    scores = importance.fisher_scores(model, list(batches(3)), max_grad_norm=1.0)

    model.eval()
    expected = [0.0] * LAYERS
    for batch in batches(3):
        model.zero_grad()
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], 1.0)
        for layer in range(LAYERS):
            grad = model.bert.encoder.layer[layer].attention.self.value.bias.grad
            expected[layer] += float(grad.double().pow(2).mean()) / 3
    assert scores["v"] == pytest.approx(expected, rel=1e-6)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # no step taken
    assert max(scores["k"]) < 1e-9 * max(scores["v"])  # b_k cannot change the output (docs/method.md §4.1)
    assert not math.isnan(sum(scores["q"]))


def test_fisher_needs_a_batch():
    model = tiny_bert()
    methods.apply_method(model, {"trainable": "all_biases", "head": True}, {})
    with pytest.raises(ScoreError, match="at least one training batch"):
        importance.fisher_scores(model, [])
