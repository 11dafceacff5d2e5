"""``python -m beft.report.attention RUN [RUN ...]``: how sharp and sparse the attention probabilities are, per layer.

The paper explains b_q's weakness by the shape of the attention rows (Section 3, Fig. 3(b)/(c); Appendix B.1,
Figs. 7-8): a row of ``A = softmax(Q K^T / sqrt(d_k))`` is sharp and sparse (most entries near 0, a few near 1), so
the softmax Jacobian ``J = diag(a) - a a^T`` that carries a change of b_q to the output is nearly zero. The paper
shows heat-maps and histograms without numeric definitions; this module measures, per layer, on a fixed seeded subset
of the task's evaluation examples, for the pre-trained encoder and after each run's trained biases (its peft adapter):

- sparsity: the share of attention entries below ``threshold`` (default 0.01);
- entropy: the mean row entropy ``-sum_j a_j ln a_j`` in nats (lower = sharper);
- row max: the mean largest entry of a row (higher = sharper);
- Jacobian norm: the mean Frobenius norm of ``diag(a) - a a^T``, ``sqrt(sum a_j^2 - 2 sum a_j^3 + (sum a_j^2)^2)``
  (0 for a one-hot row; what b_q's effect on the output passes through, docs/method.md §4.2).

Padding never counts: only rows of real query tokens, and in each row only the real key tokens (entries, rows and
sums are taken over them). Every mean is over all (example, head, query token) rows of the layer; sparsity is over all
their entries. The figure (one panel per measure, one line per model) and the JSON (the numbers, the examples' split,
count and seed, the adapters) go to ``<results>/<model>/<task>/<regime>/attention/seed=<seed>/`` next to the runs, or
to ``--out`` (docs/usage.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import transformers
from torch import nn
from transformers import DataCollatorWithPadding

from beft import adapters, atomic, records
from beft.data import features, sources
from beft.data.tasks import TaskSpec
from beft.errors import BeftError

MEASURES = {  # key -> axis label; the order of the figure's panels
    "sparsity": "share of entries < threshold (sparsity)",
    "entropy": "mean row entropy, nats (lower = sharper)",
    "row_max": "mean row max (higher = sharper)",
    "jacobian_norm": "mean ||diag(a) - a a^T||_F",
}
PRETRAINED = "pre-trained"
OUT_DIR = "attention"  # beside the method folders of a regime, like ``ranking``
JSON_FILE, FIGURE_FILE = "attention.json", "attention.png"


# --- the measures: plain functions of a layer's attention probabilities -------------------------------------------


def valid_pairs(mask: torch.Tensor) -> torch.Tensor:
    """(batch, 1, query, key) bool: both the query and the key are real tokens (``mask`` is the attention mask)."""
    real = mask.bool()
    return (real[:, :, None] & real[:, None, :])[:, None]


def layer_sums(probs: torch.Tensor, mask: torch.Tensor, threshold: float) -> dict[str, float]:
    """Sums of one layer's statistics over its real rows and entries; ``probs`` is (batch, heads, query, key)."""
    pairs = valid_pairs(mask).expand_as(probs)
    rows = pairs.any(-1)  # real query rows
    a = probs.double() * pairs  # padding entries are zero and drop out of every sum
    sum_sq, sum_cube = (a**2).sum(-1), (a**3).sum(-1)
    jacobian = (sum_sq - 2 * sum_cube + sum_sq**2).clamp_min(0).sqrt()
    return {
        "entries": float(pairs.sum()),
        "below": float(((probs < threshold) & pairs).sum()),
        "rows": float(rows.sum()),
        "entropy": float(torch.special.entr(a).sum(-1)[rows].sum()),
        "row_max": float(a.amax(-1)[rows].sum()),
        "jacobian_norm": float(jacobian[rows].sum()),
    }


def add_sums(total: Mapping[str, float] | None, part: Mapping[str, float]) -> dict[str, float]:
    return dict(part) if total is None else {k: total[k] + part[k] for k in part}


def measures(sums: Mapping[str, float]) -> dict[str, float]:
    """The means of the module docstring from a layer's accumulated sums."""
    return {
        "sparsity": sums["below"] / sums["entries"],
        "entropy": sums["entropy"] / sums["rows"],
        "row_max": sums["row_max"] / sums["rows"],
        "jacobian_norm": sums["jacobian_norm"] / sums["rows"],
    }


# --- the model side ------------------------------------------------------------------------------------------------


@torch.no_grad()
def attention_measures(model: nn.Module, batches: Sequence[Mapping[str, torch.Tensor]], threshold: float) -> dict:
    """Per layer (a list) and over all layers (``mean``): the measures of ``model`` on ``batches``."""
    model.eval()
    totals: list[dict[str, float] | None] = []
    for batch in batches:
        attentions = model(**batch, output_attentions=True).attentions
        if not attentions or attentions[0] is None:
            raise BeftError("the model returned no attention probabilities (it needs attn_implementation='eager')")
        totals += [None] * (len(attentions) - len(totals))
        for i, probs in enumerate(attentions):
            totals[i] = add_sums(totals[i], layer_sums(probs, batch["attention_mask"], threshold))
    per_layer = [measures(t) for t in totals]
    mean = {k: float(np.mean([layer[k] for layer in per_layer])) for k in MEASURES}
    return {"per_layer": per_layer, "mean": mean}


def eager(model: nn.Module) -> nn.Module:
    """Attention probabilities come back only from the eager implementation (SDPA returns none)."""
    model.set_attn_implementation("eager")
    return model.eval()


def example_batches(tokenizer, task: TaskSpec, data_dir, num_examples: int, seed: int, max_length: int, batch_size):
    """The seeded subset of the task's main evaluation split, tokenised as in training (padding: longest in batch)."""
    split = task.eval_splits[task.main_split]
    ds = sources.load_splits(task, data_dir, train=False)[split]
    picked = np.random.RandomState(seed).permutation(len(ds))[: min(num_examples, len(ds))]
    ds = ds.select(sorted(picked.tolist()))
    feats = features.tokenize(ds, task.text_fields, tokenizer, max_length, "dynamic", cache_dir=None)
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in feats.column_names]
    rows = feats.select_columns(columns).to_list()
    collate = DataCollatorWithPadding(tokenizer)
    batches = [collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    lengths = [len(r["input_ids"]) for r in rows]
    return batches, {
        "split": split,
        "examples": len(rows),
        "seed": seed,
        "max_length": max_length,
        **uniform_reference(lengths),
    }


def uniform_reference(lengths: Sequence[int]) -> dict[str, float]:
    """Entropy and row max of uniform rows (1/n over the n real keys), averaged over the rows as the measures are:
    an example of n tokens has n rows."""
    rows = sum(lengths)
    return {
        "mean_keys_per_row": sum(n * n for n in lengths) / rows,
        "uniform_entropy": sum(n * math.log(n) for n in lengths) / rows,
        "uniform_row_max": len(lengths) / rows,
    }


# --- runs ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    path: Path  # what the user named (run folder or adapter folder)
    adapter: Path
    meta: dict[str, Any]
    score: float | None = None  # the run's final main metric, when ``path`` is a run folder

    @property
    def label(self) -> str:
        roles = self.meta.get("bias_roles") or []
        return " + ".join(f"b_{r}" for r in roles) if roles else self.meta.get("run") or str(self.path)


def resolve_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Every path's adapter and metadata; one model kind, one model, one task, distinct labels (checked first)."""
    runs = []
    for path in paths:
        adapter = adapters.find_adapter(path)  # checks the run: completed, with an adapter
        beside = Path(path) / adapters.ADAPTER_DIR  # the copy the user pointed at, not the recorded absolute path
        adapter = beside if (beside / "adapter_config.json").is_file() else adapter
        record = records.read_run(path)
        score = None if record is None else record.final_score
        runs.append(Run(Path(path), adapter, adapters.read_meta(adapter), score))
    for run in runs:
        kind = run.meta["model"].get("kind", "encoder")
        if kind != "encoder":
            raise BeftError(f"{run.path} is a {kind} run: the attention analysis reads encoder runs only")
    for key in ("model", "task"):
        names = sorted({r.meta[key]["name"] for r in runs})
        if len(names) > 1:
            raise BeftError(f"the runs are of different {key}s ({', '.join(names)}): give runs of one {key}")
    labels = [r.label for r in runs]
    if len(set(labels)) < len(labels):
        runs = [Run(r.path, r.adapter, {**r.meta, "bias_roles": None}, r.score) for r in runs]  # label them by run name
    if len({r.label for r in runs}) < len(runs):
        raise BeftError(f"a run is given twice ({', '.join(sorted(r.label for r in runs))}): give each run once")
    return runs


def default_out(runs: Sequence[Run]) -> Path:
    """``<regime folder>/attention/seed=<seed>`` when every run is a run folder of one regime and seed."""
    parents = {r.path.resolve().parent.parent for r in runs if r.path.resolve() != r.adapter.resolve()}
    seeds = {r.path.resolve().name for r in runs}
    if len(parents) != 1 or len(seeds) != 1 or not next(iter(seeds)).startswith("seed="):
        raise BeftError("the runs are not run folders of one regime and seed: name the output folder with --out")
    return next(iter(parents)) / OUT_DIR / next(iter(seeds))


def analyse(runs: Sequence[Run], data_dir, num_examples: int, seed: int, threshold: float, batch_size: int) -> dict:
    """The JSON document: the measures of the pre-trained model and of every run, on the same examples."""
    base, tokenizer, task = adapters.load_base(runs[0].adapter)
    max_length = int(runs[0].meta.get("max_length") or 128)
    batches, examples = example_batches(tokenizer, task, data_dir, num_examples, seed, max_length, batch_size)
    pretrained = attention_measures(eager(base), batches, threshold)
    models: dict[str, Any] = {PRETRAINED: {"run": None, "path": None, "score": None, **pretrained}}
    for run in runs:
        base, _, _ = adapters.load_base(run.adapter)
        model = adapters.load_adapter(run.adapter, eager(base))
        measured = attention_measures(model, batches, threshold)
        models[run.label] = {"run": run.meta.get("run"), "path": str(run.path), "score": run.score, **measured}
    meta = runs[0].meta
    return {
        "model": meta["model"]["name"],
        "task": meta["task"]["name"],
        "metric": meta["task"].get("main_metric"),
        "examples": examples,
        "threshold": threshold,
        "measures": MEASURES,
        "models": models,
    }


# --- output --------------------------------------------------------------------------------------------------------


def figure(result: Mapping[str, Any], path: str | Path) -> Path:
    """One panel per measure: a line per model over the layers (about 1,300 x 950 pixels)."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7.2), sharex=True)
    for ax, (key, label) in zip(axes.flat, MEASURES.items(), strict=True):
        for name, entry in result["models"].items():
            values = [layer[key] for layer in entry["per_layer"]]
            score = "" if entry["score"] is None else f" ({result['metric']} {entry['score']:.3f})"
            style = {"color": "black", "linestyle": "--", "zorder": 5} if name == PRETRAINED else {"marker": "o"}
            ax.plot(range(len(values)), values, label=name + score, **style)
        ax.set_title(label.replace("threshold", f"{result['threshold']:g}"), fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.flat[0].legend(fontsize=9)
    ex = result["examples"]
    fig.suptitle(
        f"Attention probabilities, {result['model']} on {result['task']} "
        f"({ex['examples']} {ex['split']} examples, seed {ex['seed']}; padding excluded)\n"
        f"uniform rows over the same tokens would have entropy {ex['uniform_entropy']:.2f} nats, "
        f"row max {ex['uniform_row_max']:.3f} ({ex['mean_keys_per_row']:.1f} keys per row)",
        fontsize=11,
    )
    fig.tight_layout()
    from beft.report import plots  # matplotlib loads only when a figure is drawn

    return plots.save(fig, path)


def summary_lines(result: Mapping[str, Any]) -> Iterator[str]:
    yield f"{'model':<14}" + "".join(f"{k:>15}" for k in MEASURES) + "   (mean over layers)"
    for name, entry in result["models"].items():
        yield f"{name:<14}" + "".join(f"{entry['mean'][k]:>15.4f}" for k in MEASURES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m beft.report.attention", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders (record.json + adapter/) or adapter folders")
    parser.add_argument("--num-examples", type=int, default=256, help="evaluation examples (a seeded subset)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the examples' subset")
    parser.add_argument("--threshold", type=float, default=0.01, help="an entry below it counts as sparse")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data-dir", default=os.environ.get("BEFT_DATA_DIR"), help="default: $BEFT_DATA_DIR; none=hub")
    parser.add_argument("--out", help="output folder (default: <regime folder>/attention/seed=<seed> of the runs)")
    args = parser.parse_args(argv)
    transformers.logging.set_verbosity_error()  # "newly initialised head": the adapter brings the trained one
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        if args.num_examples < 1 or not 0 < args.threshold < 1:
            raise BeftError(
                f"--num-examples={args.num_examples} must be >= 1 and --threshold={args.threshold} in (0, 1)"
            )
        runs = resolve_runs(args.runs)
        out = Path(args.out) if args.out else default_out(runs)
        torch.manual_seed(args.seed)  # the base's head is random (the attention never reads it)
        result = analyse(runs, args.data_dir, args.num_examples, args.seed, args.threshold, args.batch_size)
    except BeftError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    atomic.write_text(out / JSON_FILE, json.dumps(result, indent=2) + "\n")
    figure(result, out / FIGURE_FILE)
    print("\n".join(summary_lines(result)))
    print(f"written: {out / JSON_FILE}, {out / FIGURE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
