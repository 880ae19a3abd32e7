"""Tests of graphrec.text; :func:`write_tiny_bert` makes the small random model they share."""

from __future__ import annotations

from pathlib import Path

import torch

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["red", "blue", "green", "shoe", "boot", "sock", "hat", "cap", "scarf", "apple", "pear", "plum",
         "the", "a", "with", "and", "for", "big", "small", "soft", "warm", "cold", "new", "old"]


def write_tiny_bert(directory: Path, words: list[str] = WORDS, seed: int = 0) -> Path:
    """Save a 2-layer, 32-wide BERT with random weights and a word-level vocabulary into ``directory``.

    Built from a config and a hand-written ``vocab.txt``, so no download is needed; any word
    outside ``words`` (and ``w0`` .. ``w99``) becomes ``[UNK]``.
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = SPECIAL_TOKENS + list(words) + [f"w{i}" for i in range(100)]
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
    BertModel(config).save_pretrained(directory)
    BertTokenizer(str(vocab_file)).save_pretrained(directory)
    return directory
