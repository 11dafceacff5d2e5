"""``python -m beft.predict RUN_OR_ADAPTER (--text A [B] ... | --file F | --split S [--leaderboard DIR]) [--out F]``.

Loads the base model the run used (offline package, local folder or hub id; ``--base`` overrides it), applies the
peft BEFT adapter and prints one JSON line per example: the predicted label and the class probabilities (or the score
of a regression task). ``--text`` takes the task's text fields of one example in order (RTE: sentence1 sentence2) and
may be repeated; ``--file`` reads a TSV with a header row or a JSONL file whose fields are the task's (the original
GLUE/SuperGLUE files work), with a progress bar. ``--split`` labels a split of the task's data (``--data-dir``, else
BEFT_DATA_DIR, else the hub); with ``--leaderboard DIR`` a test split becomes the benchmark's submission file in DIR
(beft/leaderboard.py). A run without a bias adapter (full, rand_uniform, bias PEFT, LoRA) is loaded from its model
artifact (beft/artifacts.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import transformers
from tqdm.auto import tqdm

from beft import artifacts, atomic, leaderboard
from beft.data import formats, sources
from beft.data.tasks import TaskSpec
from beft.errors import BeftError, DataError


def read_rows(path: str | Path, task: TaskSpec) -> list[dict[str, str]]:
    """The task's text fields of every row of a TSV (header row) or JSONL file; a field may also go by the column
    name of the task's original release file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is not a file")
    rows = formats.read_jsonl(path) if path.suffix in (".jsonl", ".json") else sources.read_tsv(path)
    aliases = task.local.fields if task.local else {}
    out = []
    for line, row in rows:
        try:
            out.append({f: str(row[f] if f in row else row[aliases[f]]) for f in task.text_fields})
        except KeyError:
            raise DataError(f"{path}, line {line}: needs the fields {task.text_fields}; found {sorted(row)}") from None
    return out


@torch.no_grad()
def predict(
    model,
    tokenizer,
    rows: list[dict[str, str]],
    task: TaskSpec,
    max_length: int = 128,
    batch_size: int = 64,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One result per row: ``label`` and ``scores`` (class probabilities), or ``score`` for regression. Tokenised as
    in training (the task's fields in order, truncated to ``max_length``)."""
    model.eval()
    device = next(model.parameters()).device
    results: list[dict[str, Any]] = []
    starts = range(0, len(rows), batch_size)
    for start in tqdm(starts, desc="Predicting", unit="batch", disable=not progress):
        batch = rows[start : start + batch_size]
        enc = tokenizer(
            *[[r[f] for r in batch] for f in task.text_fields],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        ).to(device)
        logits = model(**enc).logits.float().cpu()
        for row, out in zip(batch, logits, strict=True):
            if task.is_regression:
                results.append({**row, "score": out.item()})
            else:
                probs = out.softmax(-1).tolist()
                label = task.label_names[int(out.argmax())]
                results.append({**row, "label": label, "scores": dict(zip(task.label_names, probs, strict=True))})
    return results


def _command_line_rows(texts: list[list[str]], task: TaskSpec) -> list[dict[str, str]]:
    fields = task.text_fields
    for example in texts:
        if len(example) != len(fields):
            raise DataError(f"--text takes {len(fields)} texts ({' '.join(fields)}); got {len(example)}: {example}")
    return [dict(zip(fields, example, strict=True)) for example in texts]


def _check_out(out: str | None) -> None:
    """``--out`` can be written (its folder is created): checked before the model loads."""
    if out is None:
        return
    if Path(out).is_dir():
        raise DataError(f"--out {out} is a folder; give a file name, e.g. {Path(out) / 'predictions.jsonl'}")
    if blocker := atomic.file_in_the_way(Path(out).absolute().parent):
        raise DataError(f"--out {out}: {blocker} is a file, not a folder; choose another output file")


def _split_rows(args, task: TaskSpec) -> tuple[TaskSpec, list[dict[str, str]], list | None]:
    """(task as conf/task describes it, the split's rows, the test split's example ids or None)."""
    task = leaderboard.task_from_conf(task.name, task)
    if args.leaderboard:
        leaderboard.targets(task, args.split, args.leaderboard, args.overwrite)
    data = sources.load_split(task, args.data_dir, args.split)
    rows = [{f: row[f] for f in task.text_fields} for row in data]
    return task, rows, data[sources.ID_FIELD] if sources.ID_FIELD in data.column_names else None


def _run(args) -> list[dict[str, Any]] | None:
    """The predictions to print, or None when they went into a leaderboard file."""
    run = artifacts.trained_run(args.path)
    task, ids = run.task, None
    if task.task_kind == "multiple_choice":
        raise BeftError(
            f"{args.path} is a multiple-choice run (task {task.name}): beft.predict labels texts with a classification "
            "head; score the choices with the model's multiple-choice head"
        )
    if args.split:
        task, rows, ids = _split_rows(args, task)
    else:
        rows = read_rows(args.file, task) if args.file else _command_line_rows(args.text, task)
    _check_out(args.out)
    model, tokenizer = run.load(args.base)
    results = predict(model, tokenizer, rows, task, run.max_length, args.batch_size, progress=not args.text)
    if args.leaderboard:
        paths = leaderboard.write(task, args.split, args.leaderboard, ids, results, args.overwrite)
        print(f"{len(results)} {args.split} predictions written to {', '.join(map(str, paths))}", file=sys.stderr)
        return None
    return results if ids is None else [{"idx": i, **r} for i, r in zip(ids, results, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m beft.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a run folder (with record.json and adapter/) or an adapter folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", nargs="+", action="append", metavar="TEXT", help="one example's text fields")
    source.add_argument("--file", help="TSV (header row) or JSONL with the task's text fields")
    source.add_argument("--split", help="a split of the task's data: validation, test, ... (test: unlabeled)")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("BEFT_DATA_DIR"),
        help="for --split (default: $BEFT_DATA_DIR, else the hub)",
    )
    parser.add_argument(
        "--leaderboard", metavar="DIR", help="with --split test: write the GLUE/SuperGLUE file into DIR"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing leaderboard file")
    parser.add_argument("--out", help="write the JSON lines here instead of stdout")
    parser.add_argument("--base", help="base model folder or hub id (default: the one the run used)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    transformers.logging.set_verbosity_error()  # "newly initialised head" of the base: the adapter has it
    transformers.logging.disable_progress_bar()
    if args.leaderboard and not args.split:
        parser.error("--leaderboard needs --split (the test split whose predictions it writes)")
    try:
        results = _run(args)
    except BeftError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if results is None:
        return 0
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if args.out:
        atomic.write_text(args.out, lines)
        print(f"{len(results)} predictions written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
