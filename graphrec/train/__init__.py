"""Training: the loop, resumable checkpoints and training curves."""

from graphrec.train.checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights
from graphrec.train.curves import plot_history
from graphrec.train.negatives import NegativeSampler
from graphrec.train.sequence import SequenceTrainer
from graphrec.train.trainer import Trainer, TrainResult

__all__ = [
    "Trainer",
    "TrainResult",
    "SequenceTrainer",
    "NegativeSampler",
    "save_checkpoint",
    "load_checkpoint",
    "save_weights",
    "load_weights",
    "plot_history",
]
