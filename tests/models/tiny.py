"""Tiny randomly initialised models of every architecture family: structure tests in milliseconds."""

from __future__ import annotations

from transformers import (
    AutoModelForCausalLM,
    BertConfig,
    BertForSequenceClassification,
    GPTJConfig,
    LlamaConfig,
    OPTConfig,
    RobertaConfig,
    RobertaForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForMultipleChoice,
    XLMRobertaForSequenceClassification,
)

HIDDEN, LAYERS, LABELS = 32, 2, 2


def tiny_bert(num_labels: int = LABELS):
    cfg = BertConfig(
        vocab_size=100,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=num_labels,
    )
    return BertForSequenceClassification(cfg)


def tiny_roberta(num_labels: int = LABELS):
    cfg = RobertaConfig(
        vocab_size=100,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=40,
        num_labels=num_labels,
    )
    return RobertaForSequenceClassification(cfg)


def tiny_xlmr_config(vocab_size: int = 100, num_labels: int = LABELS) -> XLMRobertaConfig:
    """XLM-R's layout; two token types so that a BERT tokenizer's pair encodings fit (tests pair it with MiniLM's)."""
    return XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=160,
        type_vocab_size=2,
        num_labels=num_labels,
    )


def tiny_xlmr(num_labels: int = LABELS):
    return XLMRobertaForSequenceClassification(tiny_xlmr_config(num_labels=num_labels))


def tiny_xlmr_choice():
    """XLM-R with a multiple-choice head: one logit per (question, choice) pair."""
    return XLMRobertaForMultipleChoice(tiny_xlmr_config())


def tiny_opt(vocab_size: int = 100):
    cfg = OPTConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        ffn_dim=64,
        word_embed_proj_dim=HIDDEN,
        max_position_embeddings=40,
    )
    return AutoModelForCausalLM.from_config(cfg)


def tiny_llama():
    cfg = LlamaConfig(
        vocab_size=100,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
    )
    return AutoModelForCausalLM.from_config(cfg)


def tiny_gptj():
    cfg = GPTJConfig(
        vocab_size=100,
        n_embd=HIDDEN,
        n_layer=LAYERS,
        n_head=2,
        rotary_dim=8,
        n_positions=40,
        bos_token_id=0,
        eos_token_id=0,
    )
    return AutoModelForCausalLM.from_config(cfg)


def tiny_opt_tokenizer(add_bos_token: bool = True):
    """A byte-level BPE tokenizer laid out as OPT's: <s>=0, <pad>=1, </s>=2 (its BOS, EOS and UNK), <unk>=3, then the
    256 byte symbols (no merges); like OPT's, it starts every encoding with </s> (id 2)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import GPT2Tokenizer

    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", *sorted(ByteLevel.alphabet())])}
    return GPT2Tokenizer(
        vocab=vocab,
        merges=[],
        bos_token="</s>",
        eos_token="</s>",
        unk_token="</s>",
        pad_token="<pad>",
        add_bos_token=add_bos_token,
    )
