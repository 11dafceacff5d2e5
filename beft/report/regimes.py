"""``python -m beft.report.regimes --model minilm --task sst2``: the paper's Figure 4 for one task from records.

Per approach, the mean importance of b_v/b_q/b_k in each regime (ranking records), next to the final score of
fine-tuning each bias directly (beft-v/q/k run records), found by their run coordinates. Missing records are listed,
drawn as gaps, never invented.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from beft import records
from beft.importance import APPROACHES, CANDIDATES
from beft.report import lookup, names, plots

REGIMES = ("low", "medium", "high", "all")


def collect(results_dir: Path, model: str, task: str, seed: int, regimes=REGIMES, found=None) -> dict[str, Any]:
    """Importance means per approach/regime/role, scores per regime/role, the metric, and what is missing;
    ``found``: the (rankings, runs) records already read from ``results_dir``."""
    importance: dict[str, dict[str, dict[str, float]]] = {a: {} for a in APPROACHES}
    scores: dict[str, dict[str, float]] = {}
    missing: list[str] = []
    metric = None
    rankings, runs = found if found is not None else read(results_dir)
    for regime in regimes:
        where = {"model": model, "task": task, "regime": regime, "seed": seed}
        ranking = lookup.find_record(rankings, **where)
        if ranking is not None and ranking.completed:
            for approach in (a for a in APPROACHES if a in ranking.approaches):  # no angle for added biases
                importance[approach][regime] = {r: ranking.approaches[approach]["mean"][r] for r in CANDIDATES}
        else:
            missing.append(f"{regime}/ranking" + (f" ({ranking.status})" if ranking is not None else ""))
        for role in CANDIDATES:
            label = names.run_label("beft", role)
            run = lookup.find_record(runs, **where, label=label)
            if run is not None and run.completed and run.final_score is not None:
                scores.setdefault(regime, {})[role] = run.final_score
                metric = run.score.metric
            else:
                status = "" if run is None else f" ({'no score' if run.completed else run.status})"
                missing.append(f"{regime}/{label}{status}")
    return {"importance": importance, "scores": scores, "metric": metric or "score", "missing": missing}


def read(results_dir: Path) -> tuple[list[records.RankingRecord], list[records.RunRecord]]:
    """Every ranking and run record under ``results_dir``."""
    return [rec for _, rec in records.iter_rankings(results_dir)], [rec for _, rec in records.iter_runs(results_dir)]


def draw(found: dict[str, Any], regimes, title: str, path: Path) -> Path:
    """Fig. 4 of one model and task from ``collect``'s result."""
    return plots.regimes_figure(regimes, found["importance"], found["scores"], found["metric"], title,
                                found["missing"], path)  # fmt: skip


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--task", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regimes", nargs="+", default=["low", "medium", "high"], choices=REGIMES)
    parser.add_argument("--results-dir", type=Path, default=Path(os.environ.get("BEFT_RESULTS_DIR", "results/runs")))
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default results/figures/...)")
    args = parser.parse_args(argv)
    found = collect(args.results_dir, args.model, args.task, args.seed, args.regimes)
    out = args.out or Path("results/figures") / f"importance_regimes_{args.model}_{args.task}_seed{args.seed}.png"
    title = f"{args.model} {args.task} seed {args.seed}: importance vs. score across regimes"
    draw(found, args.regimes, title, out)
    if found["missing"]:
        print(f"missing records ({len(found['missing'])}): {', '.join(found['missing'])}")
    print(f"figure: {out}")
    return out


if __name__ == "__main__":
    main()
