"""The command line: its options, and bad input rejected in one line before anything loads."""

from __future__ import annotations

import pytest

from beft import bench
from beft.bench import __main__ as command


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.cli(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--steps", "--warmup", "--epochs", "--precision", "--trainer", "--skip-e2e", "--out"):
        assert option in out


def test_option_defaults_come_from_conf():
    args = command.parser().parse_args([])
    assert (args.steps, args.warmup, args.epochs, args.precision) == (10, 2, 1, "fp32")
    assert not args.skip_e2e and args.overrides == []


def test_bad_input_exits_2_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.cli(["--skip-e2e", "trainer.args.learning_rate=0"])
    assert exit_.value.code == 2
    assert "beft.bench: trainer.args.learning_rate=0 must be a positive number" in capsys.readouterr().err
