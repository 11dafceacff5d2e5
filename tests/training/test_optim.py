"""The reference's AdamW (beft/training/optim.py) against two steps computed by hand, and its selection."""

from __future__ import annotations

import pytest
import torch

from beft.training import optim
from beft.training.optim import ReferenceAdamW


def _two_steps(opt_cls, grads, **kwargs) -> list[float]:
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = opt_cls([p], **kwargs)
    values = []
    for g in grads:
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        values.append(p.item())
    return values


# lr 0.1, betas (0.5, 0.75), eps 0.01, gradients 0.04 then 0.08, parameter 1.0. By hand:
# step 1: m = 0.5*0.04 = 0.02; v = 0.25*0.04^2 = 0.0004; sqrt(v) + eps = 0.02 + 0.01 = 0.03;
#         step size = 0.1 * sqrt(1 - 0.75) / (1 - 0.5) = 0.1; p = 1 - 0.1 * 0.02 / 0.03 = 0.933333...
# step 2: m = 0.5*0.02 + 0.5*0.08 = 0.05; v = 0.75*0.0004 + 0.25*0.0064 = 0.0019; sqrt(v) = 0.0435889894...;
#         step size = 0.1 * sqrt(1 - 0.5625) / (1 - 0.25) = 0.1 * 0.6614378278 / 0.75 = 0.0881917104;
#         p = 0.9333333333 - 0.0881917104 * 0.05 / 0.0535889894 = 0.9333333333 - 0.0822853... = 0.85104798...
HAND = {"lr": 0.1, "betas": (0.5, 0.75), "eps": 0.01}
REFERENCE_STEPS = [0.9333333333333333, 0.9333333333333333 - 0.0881917103688197 * 0.05 / 0.0535889894354067]
# torch's update for the same numbers, step 1: m_hat = 0.04, v_hat = 0.0016, p = 1 - 0.1 * 0.04 / (0.04 + 0.01) = 0.92
TORCH_STEP1 = 0.92


def test_two_steps_match_the_hand_computation():
    assert _two_steps(ReferenceAdamW, [0.04, 0.08], **HAND) == pytest.approx(REFERENCE_STEPS, rel=1e-12, abs=1e-12)


def test_differs_from_torch_adamw_where_epsilon_enters():
    assert _two_steps(torch.optim.AdamW, [0.04], weight_decay=0.0, **HAND) == pytest.approx([TORCH_STEP1], abs=1e-12)
    assert _two_steps(ReferenceAdamW, [0.04], **HAND)[0] != pytest.approx(TORCH_STEP1, abs=1e-3)


def test_without_epsilon_the_two_updates_agree():
    grads = [0.3, -0.7, 0.2]
    ours = _two_steps(ReferenceAdamW, grads, lr=0.01, eps=0.0)
    theirs = _two_steps(torch.optim.AdamW, grads, lr=0.01, eps=0.0, weight_decay=0.0)
    assert ours == pytest.approx(theirs, rel=1e-12)


def test_weight_decay_applies_after_the_adam_step():
    # step 1 as above (p = 0.933333...), then p -= lr * wd * p = 0.933333 * (1 - 0.1 * 0.5) = 0.886666...
    value = _two_steps(ReferenceAdamW, [0.04], weight_decay=0.5, **HAND)[0]
    assert value == pytest.approx(0.9333333333333333 * 0.95, rel=1e-12)


def test_no_bias_correction_option():
    # correct_bias=False: step size = lr; p = 1 - 0.1 * 0.02 / 0.03
    assert _two_steps(ReferenceAdamW, [0.04], correct_bias=False, **HAND)[0] == pytest.approx(1 - 0.2 / 3, rel=1e-12)


def test_adamw_hf_selects_the_reference_optimizer_with_the_args_settings():
    args = {"optim": "adamw_hf", "learning_rate": 4e-4, "adam_beta1": 0.8, "adam_beta2": 0.99, "adam_epsilon": 1e-6}
    kwargs, chosen = optim.split_optimizer(args)
    assert "optim" not in kwargs and kwargs["learning_rate"] == 4e-4
    assert chosen == (ReferenceAdamW, {"lr": 4e-4, "betas": (0.8, 0.99), "eps": 1e-6, "correct_bias": True})


def test_other_optim_values_are_left_to_the_trainer():
    args = {"optim": "adamw_torch", "learning_rate": 1e-3}
    assert optim.split_optimizer(args) == (args, None)


def test_trainer_builds_the_configured_optimizer(tmp_path):
    from transformers import Trainer

    from beft.training.trainer import FitSettings, Monitors
    from tests.models.tiny import tiny_bert

    args = {"optim": "adamw_hf", "learning_rate": 1e-3, "adam_epsilon": 1e-6, "weight_decay": 0.0, "use_cpu": True}
    settings = FitSettings(trainer_args=args, output_dir=tmp_path, seed=0, max_length=16)
    monitors = Monitors.build(settings, ["validation"])
    trainer = Trainer(model=tiny_bert(), args=monitors.args, optimizer_cls_and_kwargs=monitors.optimizer)
    opt = trainer.create_optimizer()
    assert isinstance(opt, ReferenceAdamW)
    assert opt.defaults["eps"] == 1e-6 and opt.defaults["lr"] == 1e-3
    monitors = Monitors.build(FitSettings({**args, "optim": "adamw_torch"}, tmp_path, 0, 16), ["validation"])
    trainer = Trainer(model=tiny_bert(), args=monitors.args, optimizer_cls_and_kwargs=monitors.optimizer)
    assert isinstance(trainer.create_optimizer(), torch.optim.AdamW)
