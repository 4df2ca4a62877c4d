"""Tiny random decoder models built from configs (no download): a Qwen3-style one whose tokenizer appends
``<|endoftext|>`` through its post-processor, and a Llama-style one whose tokenizer only prepends ``<s>``."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

WORDS = (
    "the a of to and in is that for it with as on be by this are or from an at prime number theorem proof "
    "integer sum triangle circle angle function code list array loop return value python pony actor biology "
    "cell gene protein energy water climate economy market price robot sensor motor query document answer"
).split()


def _tokenizer(kind: str) -> PreTrainedTokenizerFast:
    specials = ["<unk>", "<s>", "</s>", "<|endoftext|>", "<pad>"]
    tokens = dict.fromkeys([*specials, *WORDS, *"abcdefghijklmnopqrstuvwxyz0123456789"])  # unique, in order
    vocab = {token: i for i, token in enumerate(tokens)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    if kind == "qwen3":
        tok.post_processor = processors.TemplateProcessing(
            single="$A <|endoftext|>", special_tokens=[("<|endoftext|>", vocab["<|endoftext|>"])]
        )
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def build_tiny_decoder(folder: Path, kind: str = "qwen3", seed: int = 0, hidden_size: int = 32) -> Path:
    """Write a tiny random decoder (2 layers, ``hidden_size`` wide) and its tokenizer to ``folder``; returns it."""
    torch.manual_seed(seed)
    tokenizer = _tokenizer(kind)
    common = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    )
    if kind == "qwen3":
        model = Qwen3Model(Qwen3Config(head_dim=8, **common))
    else:
        model = LlamaModel(LlamaConfig(**common))
    model.config.architectures = ["Qwen3ForCausalLM" if kind == "qwen3" else "LlamaForCausalLM"]
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_cross_encoder(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random BERT cross-encoder (``BertForSequenceClassification``, one label, 2 layers) with the
    packaged MiniLM's WordPiece tokenizer to ``folder``; returns it. Real model, random weights: its scores are
    arbitrary but fixed, which is what plumbing tests need."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from reasonembed_rag.models import get_spec, package_path

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(package_path(get_spec("minilm-l6")))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=512, num_labels=1, initializer_range=0.5,
    )
    BertForSequenceClassification(config).eval().save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
