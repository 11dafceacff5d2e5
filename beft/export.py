"""``python -m beft.export RUN_FOLDER [--adapter OUT] [--merged OUT]``: share a run's trained biases.

``--adapter`` copies the peft BEFT adapter (kilobytes; load it with ``PeftModel.from_pretrained``); ``--merged``
writes a plain transformers model with the bias deltas added into the base biases (no peft needed to load it).
RUN_FOLDER may also be an adapter folder; a run folder's own ``adapter/`` is used. A non-empty output folder is refused
(exit code 2) unless ``--overwrite``, which replaces it as a whole. Merging a bias added to a bias-free model is refused
with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

import transformers

from beft import adapters
from beft.errors import BeftError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m beft.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a run folder (with record.json and adapter/) or an adapter folder")
    parser.add_argument("--adapter", metavar="OUT", help="write the peft adapter folder here")
    parser.add_argument("--merged", metavar="OUT", help="write the merged plain transformers model here")
    parser.add_argument("--base", help="base model folder or hub id (default: the one the run used)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder as a whole")
    args = parser.parse_args(argv)
    transformers.logging.set_verbosity_error()  # "newly initialised head" of the base: the adapter has it
    transformers.logging.disable_progress_bar()
    if args.adapter is None and args.merged is None:
        parser.error("give --adapter OUT, --merged OUT or both")
    try:
        if args.adapter is not None:  # first: the adapter form stays available when merging is refused
            out = adapters.export(args.path, adapter_out=args.adapter, overwrite=args.overwrite)["adapter"]
            print(f"adapter: {out} ({adapters.folder_bytes(out):,} bytes)")
        if args.merged is not None:
            out = adapters.export(args.path, merged_out=args.merged, base=args.base, overwrite=args.overwrite)["merged"]
            print(f"merged model: {out}")
    except BeftError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
