"""``make tables``: every paper table (1-16) rebuilt from the result records, the paper's numbers beside ours.

For each transcribed paper table (results/paper/tableNN_*.csv) every row is matched to the runs that reproduce it:
model, task, regime, the run label of the paper's method and bias (``bias_ft`` and ``added_bias_ft`` b_v ->
``beft-v``, ``all_biases`` -> ``bitfit``, ``full_ft`` -> ``full``, ``bias_lora`` b_q -> ``bias_lora-q``; the paper's
names are mapped in ``beft.report.names``) and the paper's seeds. Ours is the mean +- population std over the completed
runs, on the paper's scale (scores x100, decoder SQuAD/DROP as token F1). Parameter rows compare the records'
``params`` (``percent``; ``permille`` = trainable / pre-trained total, for the decoder tables; bias PEFT's
``relative_percent`` and ``saving_percent``); Table 14's rows only accept runs whose (m, n, r) is the paper's. p-value
rows get our paired t-test; Table 1's Avg. the mean of its columns. Missing or failed runs are listed under the table,
never dropped silently. The summary states, per model/task/regime, whether b_v > b_q > b_k held, with paired t-tests
by seed (Appendix C.2).

``--analogue minilm=bert-base-cased`` also builds each table for a model the paper did not use, against the paper's
numbers of the named model (the CPU reproduction runs MiniLM where the paper ran BERT-base).

Each table is written in the paper's layout (``layout``: Markdown and LaTeX, ours beside the paper's in each cell),
in long format (CSV) and as a heat-map of ours minus the paper's; ``figures`` draws Fig. 1, 4, 11 and the learning
curves, ``gains`` Appendix C.5's table, ``paired`` the summary's tests on examples.

Modules: ``names`` (paper names -> conf names), ``paper`` (the transcribed tables), ``lookup`` (records),
``cells`` (our value of each row), ``layout`` and ``render`` (Markdown, LaTeX), ``plots`` (PNG); every file is
written atomically.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from beft import atomic
from beft.report import figures, gains, layout, names, paired, plots
from beft.report.cells import build_table
from beft.report.lookup import RECORD_COLUMNS, ranking_targets, run_table
from beft.report.paper import P_VALUE, PAPER_TABLES, SCORE_METRICS, read_paper, read_paper_tables
from beft.report.render import render, run_times, summary

MODELS = names.paper_models()  # the paper's model names -> conf/model names
__all__ = ["MODELS", "PAPER_TABLES", "build_all", "build_table", "main", "read_paper", "run_table", "run_times"]


def analogue_maps(analogues: Iterable[str]) -> dict[str, dict[str, str]]:
    """``OURS=PAPER_MODEL`` specs -> {ours: {paper model: ours}}; one model may stand in for several paper models
    (``smollm2=meta-llama/Llama-2-7b-hf`` and ``smollm2=EleutherAI/gpt-j-6b`` build one ``_smollm2`` table each)."""
    maps: dict[str, dict[str, str]] = {}
    for spec in analogues:
        ours, paper_model = spec.split("=", 1)
        maps.setdefault(ours, {})[paper_model] = ours
    return maps


def paper_runs(results_dir: Path) -> pd.DataFrame:
    """The run records that can stand in for the paper's runs: variants (changed hyperparameters) never do."""
    runs = run_table(results_dir) if results_dir.is_dir() else pd.DataFrame(columns=RECORD_COLUMNS)
    if runs.empty:
        runs = pd.DataFrame(columns=RECORD_COLUMNS)
    return runs[runs["variant"].isna()]


def build_all(results_dir: Path, paper_dir: Path, out_dir: Path, analogues: Iterable[str] = (), draw: bool = True
              ) -> list[Path]:  # fmt: skip
    """Write every table (Markdown, LaTeX, long CSV, heat-map), the summary, the run times, Appendix C.5's gains
    and (``draw``) the figures; returns the files written."""
    runs = paper_runs(results_dir)
    targets = ranking_targets(results_dir) if results_dir.is_dir() else {}
    papers = read_paper_tables(paper_dir)
    variants = [("", dict(MODELS))] + [(f"_{ours}", m) for ours, m in analogue_maps(analogues).items()]
    written = []
    for name in PAPER_TABLES:
        if name not in papers:
            continue
        stem, paper = papers[name]
        for suffix, model_map in variants:
            table = build_table(paper, runs, model_map, targets)
            if suffix and table.empty:
                continue
            title = f"Paper {stem.replace('_', ' ')}"
            if suffix:
                title += f" — {suffix[1:]} (analogue of {', '.join(model_map)})"
            written += _write_table(table, title, out_dir / f"{name}{suffix}", name, draw)
    paper_p = pd.concat([p for _, p in papers.values()])
    paper_p = paper_p[paper_p["metric"] == P_VALUE]
    written.append(atomic.write_text(out_dir / "summary.md", summary(runs, paper_p, paired.example_tests(runs))))
    written.append(atomic.write_text(out_dir / "runtimes.md", run_times(runs)))
    c5 = gains.read(paper_dir)
    if c5 is not None:
        table = gains.gains(c5, runs)
        written.append(atomic.write_text(out_dir / "appendix_c5.md", gains.render(table)))
        written.append(atomic.write_text(out_dir / "appendix_c5.csv", table.to_csv(index=False)))
    if draw:
        written += figures.draw_all(runs, results_dir, papers["table04"][1] if "table04" in papers else None, out_dir)
    return written


LONG_COLUMNS = ["model", "paper_model", "task", "regime", "method", "bias", "metric", "paper", "paper_std", "ours",
                "ours_std", "std_sample", "ci_low", "ci_high", "n", "seeds", "diff", "selected", "missing"]  # fmt: skip


def _write_table(table: pd.DataFrame, title: str, stem: Path, name: str, draw: bool = True) -> list[Path]:
    """``<stem>.md`` and ``.tex`` in the paper's layout, ``.csv`` in the long format (one row per cell), and a
    ``.png`` heat-map of ours minus the paper's once a score of ours is there."""
    md, latex = render(table, title, name)
    written = [atomic.write_text(stem.with_suffix(".md"), md), atomic.write_text(stem.with_suffix(".tex"), latex)]
    if not table.empty:
        long = table[[c for c in LONG_COLUMNS if c in table]]
        written.append(atomic.write_text(stem.with_suffix(".csv"), long.to_csv(index=False)))
        scores = table[table["metric"].isin(SCORE_METRICS)]
        if draw and scores["ours"].notna().any():
            values, labels, rows, columns = layout.differences(layout.grid(table, name))
            heading = f"{title}\nours − paper (cells: ours over the paper's; grey: no difference)"
            written.append(plots.difference_map(values, labels, rows, columns, heading, stem.with_suffix(".png")))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rebuild the paper's tables from result records.")
    parser.add_argument("--results-dir", type=Path, default=Path(os.environ.get("BEFT_RESULTS_DIR", "results/runs")))
    parser.add_argument("--paper-dir", type=Path, default=Path("results/paper"))
    parser.add_argument("--out", type=Path, default=Path("results/tables"))
    parser.add_argument("--analogue", action="append", default=[], metavar="OURS=PAPER_MODEL",
                        help="also compare runs of model OURS with the paper's numbers of PAPER_MODEL")  # fmt: skip
    args = parser.parse_args(argv)
    for spec in args.analogue:
        if "=" not in spec or spec.split("=", 1)[1] not in MODELS:
            parser.error(f"--analogue {spec!r}: expected OURS=PAPER_MODEL with PAPER_MODEL one of {sorted(MODELS)}")
    if not args.paper_dir.is_dir():
        parser.error(f"--paper-dir {args.paper_dir} is not a folder of the paper's table CSVs")
    written = build_all(args.results_dir, args.paper_dir, args.out, args.analogue)
    print(f"wrote {len(written)} files to {args.out}; summary: {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()
