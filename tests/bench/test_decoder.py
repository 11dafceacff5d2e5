"""The decoder section's batches are the run's own: one optimizer step's training examples (and the run's micro-batch
of them) and the first evaluation batch of the regime's subsets, drawn as the decoder pipeline draws them."""

from beft.bench import decoder, settings
from beft.data import regimes, sources


def test_rows_are_the_first_batches_of_the_runs_subsets(data_dir, smollm2_tokenizer, tmp_path):
    spec = settings.train_spec("model=smollm2", "task=cb", f"data.dir={data_dir}", f"data.cache_dir={tmp_path}")
    rows = decoder._rows(spec, smollm2_tokenizer)
    args = spec.trainer_args
    splits = sources.load_splits(spec.task, spec.data.dir)
    train = regimes.subset_indices(len(splits["train"]), spec.data.num_train, spec.seed)
    first = regimes.eval_indices(len(splits["validation"]), spec.data.num_eval, spec.seed)[: len(rows["eval"])]
    assert args["per_device_train_batch_size"] < len(rows["step"])  # CB splits a step into micro-batches
    assert len(rows["step"]) == args["per_device_train_batch_size"] * args["gradient_accumulation_steps"]
    assert rows["micro"] == rows["step"][: args["per_device_train_batch_size"]]
    assert [r["gold"].index(1) for r in rows["step"]] == [
        splits["train"][i]["label"] for i in train[: len(rows["step"])]
    ]
    assert len(rows["eval"]) == min(args["per_device_eval_batch_size"], len(splits["validation"]))
    assert [r["gold"].index(1) for r in rows["eval"]] == [splits["validation"][i]["label"] for i in first]
