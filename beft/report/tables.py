"""``make tables``: every paper table (1-16) rebuilt from the result records, the paper's numbers beside ours.

For each transcribed paper table (results/paper/tableNN_*.csv, a copy of spec/paper_tables) every row is matched to
the runs that reproduce it: model, task, regime, the run label of the paper's method and bias (``bias_ft`` and
``added_bias_ft`` b_v -> ``beft-v``, ``all_biases`` -> ``bitfit``, ``full_ft`` -> ``full``, ``bias_lora`` b_q ->
``bias_lora-q``; ``lora``, ``prefix``, ``icl``, ``zero_shot``, ``vera``, ``dora``, ``rand_uniform`` as they are) and
the paper's seeds. Ours is the mean +- population std over the completed runs, on the paper's scale (scores x100,
decoder SQuAD/DROP as token F1). Parameter rows compare the records' ``params`` (``percent``; ``permille`` = trainable
/ pre-trained total, for the decoder tables; bias PEFT's ``relative_percent`` and ``saving_percent``); Table 14's rows
only accept runs whose (m, n, r) is the paper's. p-value rows get our paired t-test; Table 1's Avg. the mean of its
columns. Missing or failed runs are listed under the table, never dropped silently. The summary states, per
model/task/regime, whether b_v > b_q > b_k held, with paired t-tests by seed (Appendix C.2).

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
# The paper's method names -> conf/method names; every other name (lora, prefix, icl, zero_shot, vera, dora,
# rand_uniform, bias_lora, bias_vera, bias_vera1d, bias_dora, bias_pissa, bias_balora) is the same in both.
METHODS = {"bias_ft": "beft", "beft": "beft", "added_bias_ft": "beft", "all_biases": "bitfit", "full_ft": "full"}
SCORE_METRICS = {"accuracy", "f1", "f1_macro", "mcc", "spearman"}  # x100 from the records' 0-1 values
PARAM_METRICS = {"params_percent", "params_permille", "runtime_s"}
BIAS_PEFT_METRICS = {"params_relative_percent", "params_relative_permille", "params_saving_percent"}
AVERAGE_METRIC = "mean_of_9_columns"  # Table 1's "Avg.": the plain mean of the row's 9 task columns
ANY_TASK = "all"  # a per-method row that holds for every task (the decoder tables' params column)
ANY_BIAS = "any"  # a per-method row that holds for b_v, b_q and b_k alike (Tables 4, 13, 14's Params rows)
PAPER_TABLES = [f"table{n:02d}" for n in range(1, 17)]
_RESHAPE = re.compile(r"\(m,\s*n,\s*r\)\s*=\s*\((\d+),\s*(\d+),\s*(\d+)\)")
RECORD_COLUMNS = ["path", "model", "task", "regime", "label", "seed", "variant", "status", "params_percent",
                  "params_permille", "bias_relative_percent", "bias_saving_percent", "bias_reshape", "runtime_s",
                  "score_metric", "score_split", "wall_s"]  # fmt: skip


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
        params = rec.get("params") or {}
        peft = params.get("bias_peft") or {}
        reshape = peft.get("reshape") or {}
        row = {
            "path": str(path.parent),
            "model": run.get("model"),
            "task": run.get("task"),
            "regime": run.get("regime"),
            "label": label,
            "seed": run.get("seed"),
            "variant": run.get("variant"),
            "status": rec.get("status"),
            "params_percent": params.get("percent"),
            "params_permille": params.get("permille"),
            "bias_relative_percent": peft.get("relative_percent"),
            "bias_saving_percent": peft.get("saving_percent"),
            "bias_reshape": tuple(reshape.get(k) for k in "mnr") if reshape else None,
            "runtime_s": rec.get("train_runtime_s"),
            "score_metric": (rec.get("score") or {}).get("metric"),
            "score_split": (rec.get("score") or {}).get("split"),
            "wall_s": (rec.get("time") or {}).get("wall_s"),
        }
        for split, values in (rec.get("final") or {}).items():
            for metric, value in values.items():
                row[f"{split}/{metric}"] = value
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else RECORD_COLUMNS)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value))


def _value(run: pd.Series, metric: str, split: str, method: str) -> float | None:
    """The paper's ``metric`` of one run record, on the paper's scale (scores x100)."""
    if metric in SCORE_METRICS:
        value = run.get(f"{split}/{metric}")
        return 100.0 * float(value) if _present(value) else None
    if metric == "params_permille":
        value = run.get("params_permille")
        if _present(value):
            return float(value)
        return 10.0 * float(run["params_percent"]) if _present(run.get("params_percent")) else None
    if metric in ("params_percent", "runtime_s"):
        return float(run[metric]) if _present(run.get(metric)) else None
    if metric in BIAS_PEFT_METRICS:
        if method == "beft":  # "Directly" (Table 4): the bias vector itself, d of d
            relative = 100.0
        elif _present(run.get("bias_relative_percent")):
            relative = float(run["bias_relative_percent"])
        else:
            return None
        return {"params_relative_percent": relative, "params_relative_permille": 10.0 * relative,
                "params_saving_percent": 100.0 - relative}[metric]  # fmt: skip
    return None


def _reshape_of(row: pd.Series) -> tuple[int, int, int] | None:
    """The (m, n, r) a bias-PEFT row names in its notes (Table 14), else None."""
    m = _RESHAPE.search(str(row.get("notes", "")))
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def ranking_targets(results_dir: Path) -> dict[tuple[str, str, str, int], str]:
    """(model, task, regime, seed) -> the bias the magnitude+angle ranking selected (the paper's dagger)."""
    out = {}
    for path in results_dir.rglob(records.RANKING_FILE):
        rec = records.read_record(path.parent, records.RANKING_FILE)
        if rec and rec.get("status") == records.COMPLETED:
            run = rec["run"]
            out[(run["model"], run["task"], run["regime"], run["seed"])] = rec["target"]
    return out


class _Lookup:
    """Finds the completed run (or says why there is none) for one paper cell and seed."""

    def __init__(self, runs: pd.DataFrame, model: str, regime: str, reshape: tuple[int, int, int] | None):
        self.runs = runs[(runs["model"] == model) & (runs["regime"] == regime)] if len(runs) else runs
        self.model, self.regime, self.reshape = model, regime, reshape

    def value(self, task: str | None, split: str | None, labels: list[str], metric: str, method: str, seed: int):
        """(value, None) or (None, why-missing line). ``task`` None = any task; several labels = any of them."""
        found = self.runs
        if len(found):
            found = found[found["label"].isin(labels) & (found["seed"] == seed)]
            if task is not None:
                found = found[found["task"] == task]
        done = found[found["status"] == records.COMPLETED] if len(found) else found
        mismatch = None
        if self.reshape is not None and len(done):
            same = done["bias_reshape"].map(lambda r: r is not None and tuple(r) == self.reshape)
            if not same.all():
                got = next(tuple(r) for r, ok in zip(done["bias_reshape"], same, strict=True) if not ok)
                mismatch = f"reshape (m,n,r)={got}, the paper's is {self.reshape}"
            done = done[same]
        order = {label: i for i, label in enumerate(labels)}
        done = done.assign(_o=done["label"].map(order)).sort_values(["_o", "task"]) if len(done) else done
        for _, run in done.iterrows():
            value = _value(run, metric, split or _split_with(done, metric), method)
            if value is not None:
                return value, None
        label = labels[0] if len(labels) == 1 else f"{{{','.join(labels)}}}"
        name = f"{self.model}/{task or '<any task>'}/{self.regime}/{label}/seed={seed}"
        if mismatch:
            return None, f"{name} ({mismatch})"
        if len(done):
            return None, f"{name} (completed, but its record has no {metric})"
        status = found.iloc[0]["status"] if len(found) else "missing"
        return None, f"{name} ({status})"


def _cell(row: pd.Series, model: str, runs: pd.DataFrame, targets: dict, own_model: bool) -> dict[str, Any]:
    """Our value of one paper row: mean +- population std over the paper's seeds (or our paired t-test p-value), the
    runs it needs and what is missing."""
    metric, regime = row["metric"], row["regime"]
    task_text, bias = _clean(row["task"]), _clean(row["bias"])
    method = METHODS.get(row["method"], row["method"])
    seeds = paper_seeds(row["seeds"])
    cell: dict[str, Any] = {"ours": None, "ours_std": None, "n": 0, "seeds": len(seeds), "missing": [], "runs": [],
                            "selected": ""}  # fmt: skip
    if metric == AVERAGE_METRIC:
        return cell  # filled in from the row's task columns (_averages)
    if task_text == ANY_TASK:
        task, split = None, None
    elif task_text in TASKS:
        task, split = TASKS[task_text]
    else:
        cell["missing"] = [f"{model}/{task_text}: task unknown to this suite"]
        return cell
    if metric not in SCORE_METRICS | PARAM_METRICS | BIAS_PEFT_METRICS | {"p_value"}:
        cell["missing"] = [f"{model}/{task_text}: metric {metric!r} is not computed from records"]
        return cell
    reshape = _reshape_of(row) if own_model and method.startswith("bias_") else None
    lookup = _Lookup(runs, model, regime, reshape)
    if metric == "p_value":  # two-sided paired t-test by seed of the two compared biases (Appendix C.2)
        pair = [b.strip() for b in bias.split(" vs ")]
        labels = [run_label("beft", b) for b in pair]
        by: list[dict[int, float]] = [{}, {}]
        main = row.get("_task_metric") or _record_metric(runs, model, task)
        for i, label in enumerate(labels):
            for seed in seeds:
                value, why = lookup.value(task, split, [label], main, "beft", seed)
                cell["runs"].append(f"{model}/{task}/{regime}/{label}/seed={seed}")
                if value is None:
                    cell["missing"].append(why)
                else:
                    by[i][seed] = value
        result = stats.paired_ttest(*by)
        cell.update(ours=result["p"], n=result["n"])
        return cell
    labels = [run_label(method, b) for b in "vqk"] if bias == ANY_BIAS else [run_label(method, bias)]
    values = []
    for seed in seeds:
        value, why = lookup.value(task, split, labels, metric, method, seed)
        if task is not None and len(labels) == 1:
            cell["runs"].append(f"{model}/{task}/{regime}/{labels[0]}/seed={seed}")
        if value is None:
            cell["missing"].append(why)
        else:
            values.append(value)
    if values:
        cell["ours"], cell["ours_std"] = stats.mean_std(values)
    cell["n"] = len(values)
    if method == "beft" and task is not None and targets.get((model, task, regime, 0)) == bias.removeprefix("b_"):
        cell["selected"] = "†"
    return cell


def _record_metric(runs: pd.DataFrame, model: str, task: str | None) -> str:
    """The main metric the records of ``model`` on ``task`` report (``score.metric``), else accuracy."""
    found = runs[(runs["model"] == model) & (runs["task"] == task)]["score_metric"].dropna() if len(runs) else ()
    return str(next(iter(found), "accuracy"))


def build_table(paper: pd.DataFrame, runs: pd.DataFrame, model_map: dict[str, str], targets: dict) -> pd.DataFrame:
    """Paper rows of one table (those with a model of ``model_map``) beside ours and what is missing.

    Every row of the paper's CSV stays, including those we cannot fill (their ``missing`` says why). ``runs`` lists
    the run folders (``<model>/<task>/<regime>/<label>/seed=<n>``) a row needs; rows that any task or any bias can
    fill (the params rows) list none.
    """
    if len(runs) == 0 or "model" not in runs:
        runs = pd.DataFrame(columns=RECORD_COLUMNS)
    paper = paper.assign(_task_metric=_score_metric_by_task(paper))
    out = []
    for _, row in paper.iterrows():
        paper_model = _clean(row["model"])
        model = model_map.get(paper_model)
        if model is None:
            continue
        cell = _cell(row, model, runs, targets, own_model=MODELS.get(paper_model) == model)
        ours = cell["ours"]
        diff = None if ours is None or pd.isna(row["value"]) or row["metric"] == "p_value" else ours - row["value"]
        out.append({
            "model": model, "paper_model": paper_model, "task": _clean(row["task"]), "regime": row["regime"],
            "method": row["method"], "bias": row["bias"], "metric": row["metric"], "paper": row["value"],
            "paper_std": row["std"], "ours": ours, "ours_std": cell["ours_std"], "n": cell["n"],
            "seeds": cell["seeds"], "diff": diff, "selected": cell["selected"], "missing": "; ".join(cell["missing"]),
            "runs": cell["runs"],
        })  # fmt: skip
    return _averages(pd.DataFrame(out))


def _score_metric_by_task(paper: pd.DataFrame) -> list[str | None]:
    """Per row, the score metric the table reports for the row's model and task (for its p-value rows)."""
    scores = paper[paper["metric"].isin(SCORE_METRICS)]
    first = {(m, t): metric for m, t, metric in zip(scores["model"], scores["task"], scores["metric"], strict=True)}
    return [first.get((m, t)) for m, t in zip(paper["model"], paper["task"], strict=True)]


def _averages(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1's Avg.: the plain mean of our values of the row's task columns, once all of them are there
    (n = columns with a value / columns)."""
    if table.empty:
        return table
    for i in table.index[table["metric"] == AVERAGE_METRIC]:
        key = table.loc[i, ["model", "regime", "method", "bias"]]
        same = (table[["model", "regime", "method", "bias"]] == key).all(axis=1)
        columns = table[same & table["metric"].isin(SCORE_METRICS)]
        have = [v for v in columns["ours"] if _present(v)]
        table.at[i, "n"], table.at[i, "seeds"] = len(have), len(columns)
        if columns.size and len(have) == len(columns):
            mean = sum(have) / len(have)
            table.at[i, "ours"] = mean
            table.at[i, "diff"] = None if pd.isna(table.at[i, "paper"]) else mean - table.at[i, "paper"]
    return table


def _fmt(value: Any, std: Any = None, metric: str = "") -> str:
    """A number as the paper prints it: scores with 2 decimals, parameter fractions with 3, p-values with 3
    significant digits."""
    if not _present(value) or str(value) == "":
        return "—"
    spec = ".3g" if metric == "p_value" else ".3f" if metric in ("params_percent", "params_permille") else ".2f"
    text = f"{float(value):{spec}}"
    if _present(std) and str(std) != "":
        text += f" ± {float(std):{spec}}"
    return text


LEGEND = (
    "Ours: mean ± population std over the paper's seeds (std shown for n > 1; n = completed runs / seeds); † = the "
    "bias our magnitude+angle ranking selected. diff = ours − paper. Scores ×100. p_value rows: our two-sided paired "
    "t-test by seed (n = paired seeds). Rows of task `all` / bias `any` take the parameter count of any such run; "
    "Avg = the mean of the row's task columns once all are there (n = columns with a value / columns)."
)


def render(table: pd.DataFrame, title: str) -> tuple[str, str]:
    """(Markdown, LaTeX) of one table; the missing runs are listed under it."""
    if table.empty:
        empty = f"# {title}\n\nNo rows of this table apply to this model.\n"
        return empty, f"% {title}: no rows\n"
    models = [m if MODELS.get(p) == m else f"{m} (for {p})" for m, p in zip(table["model"], table["paper_model"],
              strict=True)]  # fmt: skip
    shown = pd.DataFrame({
        "model": models, "task": table["task"], "regime": table["regime"], "method": table["method"],
        "bias": table["bias"], "metric": table["metric"],
        "paper": [_fmt(v, s, m) for v, s, m in zip(table["paper"], table["paper_std"], table["metric"], strict=True)],
        "ours": [_fmt(v, s if n > 1 and m != "p_value" else None, m) + (f" {d}" if d else "") for v, s, n, m, d in
                 zip(table["ours"], table["ours_std"], table["n"], table["metric"], table["selected"], strict=True)],
        "n/seeds": [f"{n}/{k}" for n, k in zip(table["n"], table["seeds"], strict=True)],
        "diff": [_fmt(v, None, m) for v, m in zip(table["diff"], table["metric"], strict=True)],
    })  # fmt: skip
    missing = list(dict.fromkeys(m for cell in table["missing"] if cell for m in cell.split("; ")))
    md = [f"# {title}", "", shown.to_markdown(index=False, disable_numparse=True), ""]
    md.append(LEGEND)
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
        metric_col = _main_column(group, task)
        if metric_col is None:
            continue
        group = group[group[metric_col].notna()]
        by = {
            label[-1]: {int(r["seed"]): 100 * r[metric_col] for _, r in runs_of.iterrows()}
            for label, runs_of in group.groupby("label")
        }
        if not all(b in by for b in "vqk"):
            continue
        # like for like: only the seeds all three biases have (mid-sweep, one bias may be a seed ahead)
        seeds = set(by["v"]) & set(by["q"]) & set(by["k"])
        if not seeds:
            continue
        by = {b: {s: x for s, x in by[b].items() if s in seeds} for b in "vqk"}
        mean_std = {b: stats.mean_std(list(by[b].values())) for b in "vqk"}
        vq, qk = stats.paired_ttest(by["v"], by["q"]), stats.paired_ttest(by["q"], by["k"])
        held = mean_std["v"][0] > mean_std["q"][0] > mean_std["k"][0]
        paper = _paper_p(paper_p, model, task, regime)
        rows.append({
            "model": model, "task": task, "regime": regime, "metric": metric_col.split("/")[1],
            **{f"b_{b}": _fmt(*mean_std[b]) for b in "vqk"},
            "seeds": len(seeds),
            "b_v > b_q > b_k": "yes" if held else "no",
            "p (v vs q)": _p(vq["p"]), "p (q vs k)": _p(qk["p"]), "paper p (v vs q; q vs k)": paper,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    held = int((table["b_v > b_q > b_k"] == "yes").sum()) if len(table) else 0
    lines += [f"The ordering held in {held} of {len(table)} settings (means over seeds).", "",
              table.to_markdown(index=False) if len(table) else "", "",
              "Means, stds and p over the seeds all three biases have. p: two-sided paired t-test by seed "
              "(scipy.stats.ttest_rel); — = fewer than 2 seeds."]  # fmt: skip
    return "\n".join(lines) + "\n"


def run_times(runs: pd.DataFrame) -> str:
    """Wall time per model/task/regime/run kind of the completed runs (records' ``time.wall_s``), to plan compute."""
    lines = ["# Run wall times", ""]
    done = runs[(runs["status"] == records.COMPLETED) & runs["wall_s"].notna()]
    if done.empty:
        return "\n".join([*lines, "No completed runs with a wall time yet.", ""])
    kind = done["label"].where(~done["label"].str.startswith("beft-"), "b_v / b_q / b_k")
    table = (done.assign(kind=kind).groupby(["model", "task", "regime", "kind"])["wall_s"]
             .agg(runs="count", minutes=lambda s: round(s.mean() / 60, 1)).reset_index()
             .rename(columns={"minutes": "minutes per run"}))  # fmt: skip
    total_h = done["wall_s"].sum() / 3600
    lines += [table.to_markdown(index=False), "", f"In all {len(done)} runs, {total_h:.1f} hours of run wall time.",
              "", "Wall time from the run's start to its record (data, model, training and evaluation); runs that "
              "share a machine's cores take longer each."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _main_column(group: pd.DataFrame, task: str) -> str | None:
    """The ``<split>/<metric>`` column of the runs' main score: the records' ``score`` (decoders: CB accuracy,
    SQuAD/DROP F1), else the encoder task's main metric."""
    for split, metric in zip(group.get("score_split", []), group.get("score_metric", []), strict=True):
        column = f"{split}/{metric}"
        if _present(split) and _present(metric) and column in group and group[column].notna().any():
            return column
    return next((c for c in group.columns if "/" in c and group[c].notna().any() and _main(c, task)), None)


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


def read_paper(path: Path) -> pd.DataFrame:
    """One transcribed paper table, cells as printed (``n/a`` stays text; only empty cells are missing)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def analogue_maps(analogues: Iterable[str]) -> dict[str, dict[str, str]]:
    """``OURS=PAPER_MODEL`` specs -> {ours: {paper model: ours}}; one model may stand in for several paper models
    (``smollm2=meta-llama/Llama-2-7b-hf`` and ``smollm2=EleutherAI/gpt-j-6b`` build one ``_smollm2`` table each)."""
    maps: dict[str, dict[str, str]] = {}
    for spec in analogues:
        ours, paper_model = spec.split("=", 1)
        maps.setdefault(ours, {})[paper_model] = ours
    return maps


def build_all(results_dir: Path, paper_dir: Path, out_dir: Path, analogues: Iterable[str] = ()) -> list[Path]:
    """Write every table (Markdown, LaTeX, bar chart), the summary and the run times; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = load_records(results_dir) if results_dir.is_dir() else pd.DataFrame(columns=RECORD_COLUMNS)
    if runs.empty:
        runs = pd.DataFrame(columns=RECORD_COLUMNS)
    runs = runs[runs["variant"].isna()]  # variants (changed hyperparameters) never stand in for the paper's runs
    targets = ranking_targets(results_dir) if results_dir.is_dir() else {}
    papers = {}
    for path in sorted(paper_dir.glob("table*.csv")):
        if path.stem[:7] in PAPER_TABLES:
            frame = read_paper(path)
            papers[path.stem[:7]] = (path.stem, frame.assign(value=pd.to_numeric(frame["value"], errors="coerce")))
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
            md, latex = render(table, title)
            for ext, text in ((".md", md), (".tex", latex)):
                _write(out_dir / f"{name}{suffix}{ext}", text)
                written.append(out_dir / f"{name}{suffix}{ext}")
            scores = table[table["metric"].isin(SCORE_METRICS)] if not table.empty else table
            if not scores.empty and scores["ours"].notna().any():  # bars of the scores (not params, runtimes, p)
                written.append(plots.table_bars(scores, title, out_dir / f"{name}{suffix}.png"))
    paper_p = pd.concat([p for _, p in papers.values()])
    paper_p = paper_p[paper_p["metric"] == "p_value"]
    _write(out_dir / "summary.md", summary(runs, paper_p))
    _write(out_dir / "runtimes.md", run_times(runs))
    written += [out_dir / "summary.md", out_dir / "runtimes.md"]
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
