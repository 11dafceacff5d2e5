"""The paper's names of models, tasks and methods map to this suite's configs, read from conf/."""

from __future__ import annotations

from beft.report import names


def test_paper_models_are_the_hub_ids_of_the_models_the_paper_ran():
    assert names.paper_models() == {
        "bert-base-cased": "bert_base",
        "roberta-base": "roberta_base",
        "bert-large-cased": "bert_large",
        "facebook/opt-1.3b": "opt_1_3b",
        "facebook/opt-6.7b": "opt_6_7b",
        "meta-llama/Llama-2-7b-hf": "llama2_7b",
        "EleutherAI/gpt-j-6b": "gptj_6b",
        "deepseek-ai/deepseek-coder-1.3b-base": "deepseek_coder_1_3b",
    }  # the offline models (minilm, smollm2) are not in the paper


def test_paper_task_columns_and_mnli_splits():
    assert names.paper_tasks() == {
        "SST-2": ("sst2", None), "RTE": ("rte", None), "QQP": ("qqp", None), "QNLI": ("qnli", None),
        "MNLI-m": ("mnli", "matched"), "MNLI-mm": ("mnli", "mismatched"), "CoLA": ("cola", None),
        "MRPC": ("mrpc", None), "STS-B": ("stsb", None), "CB": ("cb", None), "WiC": ("wic", None),
        "BoolQ": ("boolq", None), "WSC": ("wsc", None), "MultiRC": ("multirc", None), "COPA": ("copa", None),
        "ReCoRD": ("record", None), "SQuAD": ("squad", None), "DROP": ("drop", None),
    }  # fmt: skip
    assert names.paper_task("sst2") == "SST-2" and names.paper_task("mnli") is None


def test_main_column_is_the_encoder_tasks_main_metric():
    assert names.main_column("qqp") == "validation/f1"
    assert names.main_column("cb") == "validation/f1_macro"  # decoders report accuracy: their records' score says so
    assert names.main_column("mnli") == "matched/accuracy"
    assert names.main_column("not_a_task") == "validation/accuracy"


def test_methods_and_run_labels():
    assert [names.config_method(m) for m in ("bias_ft", "added_bias_ft", "all_biases", "full_ft", "lora")] == [
        "beft", "beft", "bitfit", "full", "lora"]  # fmt: skip
    assert names.run_label("beft", "b_v") == "beft-v" and names.run_label("bias_lora", "b_q") == "bias_lora-q"
    assert names.run_label("lora", "n/a") == "lora" and names.run_label("bitfit", "all") == "bitfit"
