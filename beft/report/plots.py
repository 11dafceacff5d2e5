"""Figures drawn from records: importance heat-maps (paper Fig. 2/4 style) and the across-regimes figure (Fig. 4)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from beft import atomic  # noqa: E402

ROLE_LABELS = {"q": "b_q", "k": "b_k", "v": "b_v", "o": "b_o (m1)", "ln1": "LN1", "m2": "m2", "m3": "m3", "ln2": "LN2"}
MAX_WIDTH_IN = 15.0  # at DPI 130: at most about 2,000 pixels wide
DPI = 130
TITLES = {"angle": "Magnitude + angle (ours)", "magnitude": "Magnitude", "fisher": "Empirical Fisher"}


def save(fig, path: str | Path) -> Path:
    """Write the figure atomically (the temporary file's name has no image suffix: the format is the path's)."""
    path = Path(path)

    def savefig(tmp: Path) -> None:
        fig.savefig(tmp, format=path.suffix[1:], dpi=DPI, bbox_inches="tight")

    try:
        return atomic.write_with(path, savefig)
    finally:
        plt.close(fig)


def heatmap(summary: Mapping[str, Any], approach: str, title: str, path: str | Path) -> Path:
    """Bias kinds x layers with an "Avg." column, one approach (a ``importance.summarise`` result)."""
    roles = [r for r in ROLE_LABELS if r in summary["per_layer"]] + [
        r for r in summary["per_layer"] if r not in ROLE_LABELS
    ]
    values = np.array([summary["per_layer"][r] + [summary["mean"][r]] for r in roles])
    layers = values.shape[1] - 1
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * (layers + 1), 0.9 + 0.45 * len(roles)))
    im = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(layers + 1), [str(i) for i in range(layers)] + ["Avg."])
    ax.set_yticks(range(len(roles)), [ROLE_LABELS.get(r, r) for r in roles])
    ax.axvline(layers - 0.5, color="white", linewidth=2)
    fmt = "{:.1e}" if approach == "fisher" else "{:.3f}"
    bright = values > values.min() + 0.6 * (values.max() - values.min())
    for i in range(len(roles)):
        for j in range(layers + 1):
            color = "black" if bright[i, j] else "white"
            ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=6.5, color=color)
    ax.set_xlabel("layer")
    target = summary.get("target")
    suffix = f"  (target: b_{target})" if target else ""
    ax.set_title(f"{TITLES.get(approach, approach)}: {title}{suffix}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    return save(fig, path)


def regimes_figure(
    regimes: Sequence[str],
    importance: Mapping[str, Mapping[str, Mapping[str, float]]],
    scores: Mapping[str, Mapping[str, float]],
    metric: str,
    title: str,
    missing: Sequence[str],
    path: str | Path,
) -> Path:
    """Fig. 4: per approach, the mean importance of b_v/b_q/b_k per regime; last panel, the score of fine-tuning each.

    ``importance[approach][regime][role]`` and ``scores[regime][role]``; absent values are drawn as gaps.
    """
    roles = ["v", "q", "k"]
    panels = [*TITLES, "score"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.0))
    x = np.arange(len(regimes))
    width = 0.26
    for ax, panel in zip(axes, panels, strict=True):
        source = scores if panel == "score" else importance.get(panel, {})
        for k, role in enumerate(roles):
            vals = [source.get(regime, {}).get(role, np.nan) for regime in regimes]
            ax.bar(x + (k - 1) * width, vals, width, label=f"b_{role}")
        ax.set_xticks(x, regimes)
        ax.set_title(f"{metric} of fine-tuning" if panel == "score" else TITLES[panel], fontsize=9)
        if panel == "fisher":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    axes[0].legend(fontsize=8)
    note = "\n" + textwrap.fill(f"missing: {', '.join(missing)}", 160) if missing else ""
    fig.suptitle(title + note, fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def difference_map(values: np.ndarray, labels: list[list[str]], rows: list[str], columns: list[str], title: str,
                   path: str | Path) -> Path:  # fmt: skip
    """A heat-map of ours minus the paper's (``values``, NaN where there is no difference), each cell annotated with
    ``labels``; grey cells have no difference (a missing run, or no paper value)."""
    width = min(MAX_WIDTH_IN, 2.4 + 1.05 * len(columns))
    fig, ax = plt.subplots(figsize=(width, 1.3 + 0.42 * len(rows)))
    finite = values[np.isfinite(values)]
    limit = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, fontsize=8, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(len(rows)):
        for j in range(len(columns)):
            strong = np.isfinite(values[i, j]) and abs(values[i, j]) > 0.6 * limit
            ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=6.5, color="white" if strong else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01, label="ours − paper (points)")
    fig.tight_layout()
    return save(fig, path)


BIAS_COLORS = {"v": "#1f77b4", "q": "#ff7f0e", "k": "#2ca02c", "auto": "#9467bd"}


def params_vs_score(points: Sequence[Mapping[str, Any]], title: str, missing: Sequence[str], path: str | Path) -> Path:
    """Fig. 1: score against trainable parameters, one point per bias and way of training it (mean +- std over
    seeds), the paper's value as a grey cross at the same x. A point: x, y, err, bias, kind, paper (or None)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    markers = {"directly": "o", "+LoRA": "s"}
    for p in points:
        ax.errorbar(p["x"], p["y"], yerr=p["err"], fmt=markers.get(p["kind"], "D"), color=BIAS_COLORS[p["bias"]],
                    capsize=3, label=f"b_{p['bias']} {p['kind']} (n={p['n']})")  # fmt: skip
        if p["paper"] is not None:
            ax.plot(p["x"], p["paper"], "x", color="#777777", markersize=7)
    ax.plot([], [], "x", color="#777777", label="the paper's value (at our x)")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("score (×100)")
    ax.legend(fontsize=7, loc="best")
    return _finish(fig, ax, title, missing, path)


def _finish(fig, ax, title: str, missing: Sequence[str], path: str | Path) -> Path:
    note = "\n" + textwrap.fill(f"missing: {'; '.join(missing)}", 130) if missing else ""
    ax.set_title(title + note, fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def efficiency_panels(panels: Mapping[str, Sequence[Mapping[str, Any]]], title: str, missing: Sequence[str],
                      path: str | Path) -> Path:  # fmt: skip
    """Fig. 11: per task, score against trainable parameters % for BEFT and the baselines (mean +- std over seeds),
    each point labelled with the method and its mean training time."""
    columns = 4
    rows = max(1, -(-len(panels) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(14, 3.1 * rows + 0.6), squeeze=False, sharex=True)
    for ax, (task, points) in zip(axes.flat, panels.items(), strict=False):
        for p in points:
            ax.errorbar(p["x"], p["y"], yerr=p["err"], fmt="o", capsize=3)
            ax.annotate(f"{p['label']}\n{p['runtime']}", (p["x"], p["y"]), fontsize=6.5, xytext=(4, 4),
                        textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlim(3e-3, 500)  # from BEFT's ~0.01 % to full fine-tuning's 100 %
        ax.margins(y=0.3)  # room for the point labels
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{task} ({points[0]['metric']})" if points else f"{task}: no runs", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    fig.supxlabel("trainable parameters (%)", fontsize=8)
    fig.supylabel("score (×100)", fontsize=8)
    note = "\n" + textwrap.fill(f"missing: {'; '.join(missing)}", 180) if missing else ""
    fig.suptitle(title + note, fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def learning_curves(curves: Mapping[str, Mapping[str, Any]], metric: str, title: str, path: str | Path) -> Path:
    """One setting's learning curves: per bias, the mean +- population std over seeds of the metric per epoch."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for bias, curve in curves.items():
        epochs, mean, std = (np.asarray(curve[k], dtype=float) for k in ("epochs", "mean", "std"))
        color = BIAS_COLORS.get(bias)
        name = "BEFT (auto)" if bias == "auto" else f"b_{bias}"
        ax.plot(epochs, mean, marker="." if len(epochs) < 40 else None, color=color, label=f"{name} (n={curve['n']})")
        ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} (×100)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)
