"""Item text: vectors from a local pre-trained language model, behaviour tuning, embedding init.

Importing this package is cheap: ``transformers`` is only imported when a model is loaded.
"""

from graphrec.text.cache import TextFeatureCache
from graphrec.text.encoder import TextEncoder, default_model_path
from graphrec.text.tune import TuneResult, behavior_tune, item_init

__all__ = ["TextEncoder", "TextFeatureCache", "default_model_path", "behavior_tune", "TuneResult", "item_init"]
