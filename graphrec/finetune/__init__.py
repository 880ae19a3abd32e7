"""Fine-tuning a pre-trained encoder: which parameters train (full, partial, head, adapter, prompt)."""

from graphrec.finetune.pretrained import find_pretrained, load_pretrained, save_pretrained
from graphrec.finetune.strategies import STRATEGIES, StrategyReport, count_parameters, freeze, insert_modules

__all__ = ["STRATEGIES", "StrategyReport", "count_parameters", "freeze", "insert_modules", "find_pretrained",
           "load_pretrained", "save_pretrained"]
