"""``make tables``: every paper table rebuilt from the result records, the paper's numbers beside ours.

For each transcribed paper table (results/paper/tableNN_*.csv, a copy of spec/paper_tables) every row is matched to
the runs that reproduce it (model, task, regime, method, bias; the paper's seeds). Ours is the mean +- population std
over the completed runs; missing or failed runs are listed in the table, never dropped silently. The summary states,
per model/task/regime, whether b_v > b_q > b_k held, with paired t-tests by seed (Appendix C.2).

``--analogue minilm=bert-base-cased`` also builds each table for a model the paper did not use, against the paper's
numbers of the named model (the CPU reproduction runs MiniLM where the paper ran BERT-base).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from beft import records
from beft.report import plots, stats

# The paper's names -> this suite's config names.
MODELS = {
    "bert-base-cased": "bert_base",
    "roberta-base": "roberta_base",
    "bert-large-cased": "bert_large",
    "facebook/opt-1.3b": "opt_1_3b",
    "facebook/opt-6.7b": "opt_6_7b",
    "meta-llama/Llama-2-7b-hf": "llama2_7b",
    "EleutherAI/gpt-j-6b": "gptj_6b",
    "deepseek-ai/deepseek-coder-1.3b-base": "deepseek_coder_1_3b",
}
TASKS = {
    "SST-2": ("sst2", None), "RTE": ("rte", None), "QQP": ("qqp", None), "QNLI": ("qnli", None),
    "MNLI-m": ("mnli", "matched"), "MNLI-mm": ("mnli", "mismatched"), "CoLA": ("cola", None),
    "MRPC": ("mrpc", None), "STS-B": ("stsb", None), "CB": ("cb", None), "WiC": ("wic", None),
    "BoolQ": ("boolq", None), "WSC": ("wsc", None), "MultiRC": ("multirc", None), "COPA": ("copa", None),
    "ReCoRD": ("record", None), "SQuAD": ("squad", None), "DROP": ("drop", None),
}  # fmt: skip
METHODS = {"bias_ft": "beft", "beft": "beft", "added_bias_ft": "beft", "all_biases": "bitfit", "full_ft": "full"}
SCORE_METRICS = {"accuracy", "f1", "f1_macro", "mcc", "spearman"}
PAPER_TABLES = [f"table{n:02d}" for n in range(1, 17)]


def _clean(text: str) -> str:
    return re.sub(r"\s*\(inferred\)", "", str(text)).strip()


def paper_seeds(text: str) -> list[int]:
    """The seeds a paper row averages over (EXPERIMENTS.md 8.1: unstated multi-seed = 0, 1, 2)."""
    text = str(text)
    if text.isdigit():
        return [int(text)]
    if m := re.fullmatch(r"(\d+)-(\d+)", text):
        return list(range(int(m[1]), int(m[2]) + 1))
    if m := re.match(r"(\d+) seeds", text):
        return list(range(int(m[1])))
    if text.startswith("multi"):
        return [0, 1, 2]
    return [0]


def run_label(method: str, bias: str) -> str:
    bias = bias.removeprefix("b_")
    return f"{method}-{bias}" if method == "beft" or method.startswith("bias_") else method


def load_records(results_dir: Path) -> pd.DataFrame:
    """One row per run record (completed or failed), with every final metric as ``<split>/<metric>``."""
    rows = []
    for path in sorted(results_dir.rglob(records.RECORD_FILE)):
        try:
            rec = json.loads(path.read_text())
        except json.JSONDecodeError:
            rows.append({"path": str(path), "status": "unreadable"})
            continue
        run = rec.get("run", {})
        label = run.get("label") or path.parent.parent.name
        row = {
            "path": str(path.parent),
            "model": run.get("model"),
            "task": run.get("task"),
            "regime": run.get("regime"),
            "label": label,
            "seed": run.get("seed"),
            "variant": run.get("variant"),
            "status": rec.get("status"),
            "params_percent": rec.get("params", {}).get("percent"),
            "runtime_s": rec.get("train_runtime_s"),
        }
        for split, values in (rec.get("final") or {}).items():
            for metric, value in values.items():
                row[f"{split}/{metric}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def _value(run: pd.Series, metric: str, split: str) -> float | None:
    if metric in SCORE_METRICS:
        value = run.get(f"{split}/{metric}")
        return None if value is None or pd.isna(value) else 100.0 * float(value)
    if metric == "params_percent":
        return run.get("params_percent")
    if metric == "params_permille":
        return None if run.get("params_percent") is None else 10.0 * run["params_percent"]
    if metric == "runtime_s":
        return run.get("runtime_s")
    return None


def ranking_targets(results_dir: Path) -> dict[tuple[str, str, str, int], str]:
    """(model, task, regime, seed) -> the bias the magnitude+angle ranking selected (the paper's dagger)."""
    out = {}
    for path in results_dir.rglob(records.RANKING_FILE):
        rec = records.read_record(path.parent, records.RANKING_FILE)
        if rec and rec.get("status") == records.COMPLETED:
            run = rec["run"]
            out[(run["model"], run["task"], run["regime"], run["seed"])] = rec["target"]
    return out


def build_table(paper: pd.DataFrame, runs: pd.DataFrame, model_map: dict[str, str], targets: dict) -> pd.DataFrame:
    """Paper rows of one table (those with a model of ``model_map``) beside our mean +- std and what is missing."""
    out = []
    for _, row in paper.iterrows():
        model = model_map.get(_clean(row["model"]))
        task = TASKS.get(_clean(row["task"]))
        metric = row["metric"]
        if model is None or task is None or metric == "p_value" or pd.isna(row["value"]):
            continue
        if metric not in SCORE_METRICS | {"params_percent", "params_permille", "runtime_s"}:
            continue
        method = METHODS.get(row["method"], row["method"])
        label = run_label(method, str(row["bias"]))
        seeds = paper_seeds(row["seeds"])
        task_name, split = task
        found = runs[
            (runs.get("model") == model) & (runs.get("task") == task_name) & (runs.get("regime") == row["regime"])
            & (runs.get("label") == label)
        ] if len(runs) else runs  # fmt: skip
        values, missing = [], []
        for seed in seeds:
            match = found[found["seed"] == seed] if len(found) else found
            completed = match[match["status"] == records.COMPLETED] if len(match) else match
            value = None
            if len(completed):
                record_split = split or _split_with(completed, metric)
                value = _value(completed.iloc[0], metric, record_split)
            if value is None:
                status = match.iloc[0]["status"] if len(match) else "missing"
                missing.append(f"{model}/{task_name}/{row['regime']}/{label}/seed={seed} ({status})")
            else:
                values.append(value)
        mean, std = stats.mean_std(values) if values else (None, None)
        bias = str(row["bias"]).removeprefix("b_")
        dagger = "†" if targets.get((model, task_name, row["regime"], 0)) == bias else ""
        out.append({
            "task": _clean(row["task"]), "regime": row["regime"], "method": row["method"], "bias": row["bias"],
            "metric": metric, "paper": row["value"], "paper_std": row["std"],
            "ours": mean, "ours_std": std, "n": len(values), "seeds": len(seeds),
            "diff": None if mean is None else mean - float(row["value"]), "selected": dagger,
            "missing": "; ".join(missing),
        })  # fmt: skip
    return pd.DataFrame(out)


def _fmt(value: Any, std: Any = None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    text = f"{float(value):.{digits}f}"
    if std is not None and not (isinstance(std, float) and pd.isna(std)) and str(std) != "":
        text += f" ± {float(std):.{digits}f}"
    return text


def render(table: pd.DataFrame, title: str) -> tuple[str, str]:
    """(Markdown, LaTeX) of one table; the missing runs are listed under it."""
    if table.empty:
        empty = f"# {title}\n\nNo rows of this table apply to this model.\n"
        return empty, f"% {title}: no rows\n"
    shown = pd.DataFrame({
        "task": table["task"], "regime": table["regime"], "method": table["method"], "bias": table["bias"],
        "metric": table["metric"],
        "paper": [_fmt(v, s) for v, s in zip(table["paper"], table["paper_std"], strict=True)],
        "ours": [_fmt(v, s) + (f" {d}" if d else "") for v, s, d in
                 zip(table["ours"], table["ours_std"], table["selected"], strict=True)],
        "n/seeds": [f"{n}/{k}" for n, k in zip(table["n"], table["seeds"], strict=True)],
        "diff": [_fmt(v) for v in table["diff"]],
    })  # fmt: skip
    missing = [m for cell in table["missing"] if cell for m in cell.split("; ")]
    md = [f"# {title}", "", shown.to_markdown(index=False), ""]
    md.append("Ours: mean ± population std over the paper's seeds (n = completed runs / seeds); † = the bias our "
              "magnitude+angle ranking selected. diff = ours − paper.")  # fmt: skip
    md += ["", f"## Missing or failed runs ({len(missing)})", ""] + [f"- {m}" for m in missing] if missing else []
    latex = shown.to_latex(index=False, caption=title, escape=True)
    return "\n".join(md) + "\n", latex


def summary(runs: pd.DataFrame, paper_p: pd.DataFrame) -> str:
    """Per model/task/regime with b_v/b_q/b_k runs: did b_v > b_q > b_k hold, with paired t-tests by seed."""
    lines = ["# Does b_v > b_q > b_k hold?", ""]
    done = runs[(runs["status"] == records.COMPLETED) & runs["label"].isin(["beft-v", "beft-q", "beft-k"])]
    if done.empty:
        return "\n".join([*lines, "No completed b_v/b_q/b_k runs yet.", ""])
    rows = []
    for (model, task, regime), group in done.groupby(["model", "task", "regime"], sort=True):
        metric_col = next(c for c in group.columns if "/" in c and group[c].notna().any() and _main(c, task))
        by = {
            label[-1]: {int(r["seed"]): 100 * r[metric_col] for _, r in runs_of.iterrows()}
            for label, runs_of in group.groupby("label")
        }
        if not all(b in by for b in "vqk"):
            continue
        means = {b: stats.mean_std(list(by[b].values()))[0] for b in "vqk"}
        vq, qk = stats.paired_ttest(by["v"], by["q"]), stats.paired_ttest(by["q"], by["k"])
        held = means["v"] > means["q"] > means["k"]
        paper = _paper_p(paper_p, model, task, regime)
        rows.append({
            "model": model, "task": task, "regime": regime, "metric": metric_col.split("/")[1],
            **{f"b_{b}": _fmt(*stats.mean_std(list(by[b].values()))) for b in "vqk"},
            "seeds": len(set(by["v"]) & set(by["q"]) & set(by["k"])),
            "b_v > b_q > b_k": "yes" if held else "no",
            "p (v vs q)": _p(vq["p"]), "p (q vs k)": _p(qk["p"]), "paper p (v vs q; q vs k)": paper,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    held = int((table["b_v > b_q > b_k"] == "yes").sum()) if len(table) else 0
    lines += [f"The ordering held in {held} of {len(table)} settings (means over seeds).", "",
              table.to_markdown(index=False) if len(table) else "", "",
              "p: two-sided paired t-test over the seeds both runs have (scipy.stats.ttest_rel); "
              "— = fewer than 2 paired seeds."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _split_with(runs: pd.DataFrame, metric: str) -> str:
    """The evaluation split whose ``metric`` the runs report (tasks with one split: ``validation``)."""
    columns = [c for c in runs.columns if c.endswith(f"/{metric}") and runs[c].notna().any()]
    return columns[0].split("/")[0] if columns else "validation"


def _main(column: str, task: str) -> bool:
    split, metric = column.split("/", 1)
    main = {"qqp": "f1", "mrpc": "f1", "cola": "mcc", "stsb": "spearman", "cb": "f1_macro"}.get(task, "accuracy")
    return metric == main and split in ("validation", "matched")


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.3g}"


def _paper_p(paper_p: pd.DataFrame, model: str, task: str, regime: str) -> str:
    names = {v: k for k, v in MODELS.items()}
    tasks = {v[0]: k for k, v in TASKS.items() if v[1] is None}
    rows = paper_p[(paper_p["model"].map(_clean) == names.get(model)) & (paper_p["task"] == tasks.get(task))
                   & (paper_p["regime"] == regime) & paper_p["value"].notna()]  # fmt: skip
    return "; ".join(str(v) for v in rows["value"]) or "—"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def build_all(results_dir: Path, paper_dir: Path, out_dir: Path, analogues: Iterable[str] = ()) -> list[Path]:
    """Write every table (Markdown, LaTeX, bar chart) and the summary; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = load_records(results_dir) if results_dir.is_dir() else pd.DataFrame()
    if runs.empty:
        runs = pd.DataFrame(columns=["model", "task", "regime", "label", "seed", "variant", "status"])
    runs = runs[runs["variant"].isna()]  # variants (changed hyperparameters) never stand in for the paper's runs
    targets = ranking_targets(results_dir) if results_dir.is_dir() else {}
    papers = {}
    for path in sorted(paper_dir.glob("table*.csv")):
        if path.stem[:7] in PAPER_TABLES:
            frame = pd.read_csv(path, dtype=str)
            papers[path.stem[:7]] = (path.stem, frame.assign(value=pd.to_numeric(frame["value"], errors="coerce")))
    variants = [("", {k: v for k, v in MODELS.items()})]
    for spec in analogues:
        ours, paper_model = spec.split("=", 1)
        variants.append((f"_{ours}", {paper_model: ours}))
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
                title += f" — {suffix[1:]} (analogue of {next(iter(model_map))})"
            md, latex = render(table, title)
            for ext, text in ((".md", md), (".tex", latex)):
                _write(out_dir / f"{name}{suffix}{ext}", text)
                written.append(out_dir / f"{name}{suffix}{ext}")
            if not table.empty and table["ours"].notna().any():
                written.append(plots.table_bars(table, title, out_dir / f"{name}{suffix}.png"))
    paper_p = pd.concat([p for _, p in papers.values()])
    paper_p = paper_p[paper_p["metric"] == "p_value"]
    _write(out_dir / "summary.md", summary(runs, paper_p))
    written.append(out_dir / "summary.md")
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
