"""The report's text: each paper table as Markdown and LaTeX in the paper's layout, the b_v > b_q > b_k summary and
the run wall times."""

from __future__ import annotations

from typing import Any

import pandas as pd

from beft import records
from beft.report import layout, names, stats
from beft.report.layout import number
from beft.report.lookup import main_column
from beft.report.paper import SCORE_METRICS, clean

LEGEND = (
    "Each cell: ours (the paper's). Ours = mean ± population std (ddof = 0, the paper's convention: it reproduces "
    "Table 7) over the paper's seeds, scores ×100; [n/k] = only n of the k seeds' runs completed; missing = no "
    "completed run (listed below). † = the bias our magnitude+angle ranking selected; BEFT (auto) = `bias=auto` runs "
    "(→ the bias they chose). p rows: our two-sided paired t-test by seed. Rows of task `all` / bias `any` take the "
    "parameter count of any such run; Avg. = the mean of the row's task columns once all are there."
)
SPREAD = (
    "Mean ± sample std (ddof = 1) and the 95 % confidence interval of the mean over seeds (t-distribution, n − 1 "
    "degrees of freedom; scipy.stats.t), of the score cells with a completed run."
)


def render(table: pd.DataFrame, title: str, name: str) -> tuple[str, str]:
    """(Markdown, LaTeX) of paper table ``name`` in the paper's layout; the missing runs are listed under it."""
    if table.empty:
        empty = f"# {title}\n\nNo rows of this table apply to this model.\n"
        return empty, f"% {title}: no rows\n"
    laid_out = layout.grid(table, name)
    shown = laid_out.frame(layout.ours_and_paper)
    md = [f"# {title}", "", shown.to_markdown(disable_numparse=True), "", LEGEND]
    spreads = laid_out.frame(layout.spread)
    if ((table["n"].fillna(0) > 1) & table["metric"].isin(SCORE_METRICS)).any():
        md += ["", "## Ours: sample std and 95 % confidence interval", "",
               spreads.to_markdown(disable_numparse=True), "", SPREAD]  # fmt: skip
    missing = list(dict.fromkeys(m for cell in table["missing"] if cell for m in cell.split("; ")))
    md += ["", f"## Missing or failed runs ({len(missing)})", ""] + [f"- {m}" for m in missing] if missing else []
    return "\n".join(md) + "\n", latex(shown, title)


def latex(shown: pd.DataFrame, title: str) -> str:
    """The laid-out table as a LaTeX tabular (booktabs), ± † ‰ as LaTeX symbols."""
    text = shown.to_latex(caption=f"{title}. Each cell: ours (the paper's).", escape=True)
    for symbol, macro in (("±", r"$\pm$"), ("†", r"$^\dagger$"), ("‰", r"\textperthousand{}"), ("→", r"$\to$")):
        text = text.replace(symbol, macro)
    return text


def p_value(p: float | None) -> str:
    return "—" if p is None else f"{p:.3g}"


def summary(runs: pd.DataFrame, paper_p: pd.DataFrame, tests: pd.DataFrame | None = None) -> str:
    """Per model/task/regime with b_v/b_q/b_k runs: did b_v > b_q > b_k hold, with paired t-tests by seed; then the
    paired tests on examples (``paired.example_tests``)."""
    lines = ["# Does b_v > b_q > b_k hold?", ""]
    tests = pd.DataFrame() if tests is None else tests
    done = runs[(runs["status"] == records.COMPLETED) & (runs["method"] == "beft") & runs["bias"].isin(names.BIASES)]
    if done.empty:
        return "\n".join([*lines, "No completed b_v/b_q/b_k runs yet.", *example_section(tests), ""])
    rows = []
    for (model, task, regime), group in done.groupby(["model", "task", "regime"], sort=True):
        row = _ordering(group, task)
        if row is not None:
            paper = _paper_p(paper_p, model, task, regime)
            rows.append({"model": model, "task": task, "regime": regime, **row, "paper p (v vs q; q vs k)": paper})
    table = pd.DataFrame(rows)
    held = int((table["b_v > b_q > b_k"] == "yes").sum()) if len(table) else 0
    lines += [f"The ordering held in {held} of {len(table)} settings (means over seeds).", "",
              table.to_markdown(index=False) if len(table) else "", "",
              "Means ± population std (ddof = 0, the paper's) and p over the seeds all three biases have. p: "
              "two-sided paired t-test by seed (scipy.stats.ttest_rel); — = fewer than 2 seeds."]  # fmt: skip
    return "\n".join(lines + example_section(tests)) + "\n"


def example_section(tests: pd.DataFrame) -> list[str]:
    """The paired tests on examples between two runs of the same seed, Holm-adjusted across the section."""
    lines = ["", "## Paired tests on examples (two runs of the same seed)", ""]
    if tests.empty:
        return [*lines, "No pair of b_v/b_q/b_k runs of one seed has saved predictions, so no test on examples."]
    shown = tests.assign(**{"delta (×100)": (100 * tests["delta"]).round(2), "p": tests["p"].map(p_value),
                            "p (Holm)": tests["p_holm"].map(p_value)}).drop(columns=["delta", "p_holm"])  # fmt: skip
    return [*lines, shown.to_markdown(index=False), "",
            f"delta = first − second run's score on the examples both predicted. Accuracy: exact McNemar test "
            f"(two-sided binomial test on the discordant examples, `discordant` = only-first/only-second right); F1, "
            f"MCC, Spearman: paired bootstrap over examples. p (Holm): Holm's correction across the {len(tests)} "
            f"tests above (family-wise error rate)."]  # fmt: skip


def _ordering(group: pd.DataFrame, task: str) -> dict[str, Any] | None:
    """One setting's b_v/b_q/b_k means and tests, over the seeds all three have; None without all three."""
    metric_col = main_column(group, task)
    if metric_col is None:
        return None
    group = group[group[metric_col].notna()]
    by = {bias: {int(r["seed"]): 100 * r[metric_col] for _, r in runs_of.iterrows()}
          for bias, runs_of in group.groupby("bias")}  # fmt: skip
    if not all(b in by for b in names.BIASES):
        return None
    # like for like: only the seeds all three biases have (mid-sweep, one bias may be a seed ahead)
    seeds = set(by["v"]) & set(by["q"]) & set(by["k"])
    if not seeds:
        return None
    by = {b: {s: x for s, x in by[b].items() if s in seeds} for b in names.BIASES}
    mean_std = {b: stats.mean_std(list(by[b].values())) for b in names.BIASES}
    vq, qk = stats.paired_ttest(by["v"], by["q"]), stats.paired_ttest(by["q"], by["k"])
    held = mean_std["v"][0] > mean_std["q"][0] > mean_std["k"][0]
    return {
        "metric": metric_col.split("/")[1], **{f"b_{b}": number(*mean_std[b]) for b in names.BIASES},
        "seeds": len(seeds), "b_v > b_q > b_k": "yes" if held else "no",
        "p (v vs q)": p_value(vq["p"]), "p (q vs k)": p_value(qk["p"]),
    }  # fmt: skip


def _paper_p(paper_p: pd.DataFrame, model: str, task: str, regime: str) -> str:
    """The paper's p-values (v vs q; q vs k) of one setting, as printed."""
    paper_model = {v: k for k, v in names.paper_models().items()}.get(model)
    rows = paper_p[(paper_p["model"].map(clean) == paper_model) & (paper_p["task"] == names.paper_task(task))
                   & (paper_p["regime"] == regime) & paper_p["value"].notna()]  # fmt: skip
    return "; ".join(str(v) for v in rows["value"]) or "—"


def run_times(runs: pd.DataFrame) -> str:
    """Wall time per model/task/regime/run kind of the completed runs (records' ``time.wall_s``), to plan compute."""
    lines = ["# Run wall times", ""]
    done = runs[(runs["status"] == records.COMPLETED) & runs["wall_s"].notna()]
    if done.empty:
        return "\n".join([*lines, "No completed runs with a wall time yet.", ""])
    kind = done["label"].where(done["method"] != "beft", "b_v / b_q / b_k")
    table = (done.assign(kind=kind).groupby(["model", "task", "regime", "kind"])["wall_s"]
             .agg(runs="count", minutes=lambda s: round(s.mean() / 60, 1)).reset_index()
             .rename(columns={"minutes": "minutes per run"}))  # fmt: skip
    total_h = done["wall_s"].sum() / 3600
    lines += [table.to_markdown(index=False), "", f"In all {len(done)} runs, {total_h:.1f} hours of run wall time.",
              "", "Wall time from the run's start to its record (data, model, training and evaluation); runs that "
              "share a machine's cores take longer each."]  # fmt: skip
    return "\n".join(lines) + "\n"
