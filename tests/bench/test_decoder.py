"""The decoder section's batches are the run's own: the first training micro-batch and evaluation batch of the
regime's subsets, drawn as the decoder pipeline draws them."""

from beft.bench import decoder, settings
from beft.data import regimes, sources


def test_rows_are_the_first_batches_of_the_runs_subsets(data_dir, smollm2_tokenizer, tmp_path):
    spec = settings.train_spec("model=smollm2", "task=cb", f"data.dir={data_dir}", f"data.cache_dir={tmp_path}")
    rows = decoder._rows(spec, smollm2_tokenizer)
    validation = sources.load_splits(spec.task, spec.data.dir)["validation"]
    first = regimes.eval_indices(len(validation), spec.data.num_eval, spec.seed)[: len(rows["eval"])]
    assert len(rows["train"]) == spec.trainer_args["per_device_train_batch_size"]
    assert len(rows["eval"]) == min(spec.trainer_args["per_device_eval_batch_size"], len(validation))
    assert [r["gold"].index(1) for r in rows["eval"]] == [validation[i]["label"] for i in first]
