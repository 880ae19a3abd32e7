"""What trains when a pre-trained :class:`graphrec.nn.GraphRecommender` is fine-tuned.

The strategies follow the paradigms of the pre-train / fine-tune survey (Liu, Zhang and Gulla,
"Pre-train, Prompt and Recommendation"):

==========  ==================================================================================
full        every weight trains ("fine-tune the whole model")
partial     the parameters under the named prefixes stay frozen, the rest trains ("fine-tune part
            of the model"), e.g. ``frozen: [embedding, encoder.convs.0]``
head        the inputs and the encoder are frozen; only the prediction head trains ("fine-tune an
            extra part"); the encoder output is then computed once and reused
adapter     a bottleneck adapter after each encoder layer (model patch), plus the head, trains
prompt      learned prompt vectors added to the node inputs, plus the head, train
==========  ==================================================================================

Freezing sets ``requires_grad = False``; a frozen tensor never changes (tested by comparing tensors).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from graphrec.errors import ConfigError
from graphrec.nn.adapters import NodePrompt, add_adapters
from graphrec.nn.recommender import GraphRecommender
from graphrec.utils import suggest

STRATEGIES = ("full", "partial", "head", "adapter", "prompt")


@dataclass
class StrategyReport:
    """What a strategy left trainable, as written to the run folder."""

    strategy: str
    trainable_parameters: int
    total_parameters: int
    trainable_modules: list[str]

    def as_dict(self) -> dict:
        return {"strategy": self.strategy, "trainable_parameters": self.trainable_parameters,
                "total_parameters": self.total_parameters, "trainable_modules": self.trainable_modules}


def insert_modules(model: GraphRecommender, strategy: str, adapter_dim: int = 16, num_prompts: int = 1) -> None:
    """Adds the modules a strategy trains (adapters, prompts) to ``model``; weights are left as they are.

    Called before pre-trained (or fine-tuned) weights are loaded, so the model's shape matches the
    checkpoint it will read.
    """
    check_strategy(strategy)
    node_types = model.embedding.node_types
    if strategy == "adapter":
        add_adapters(model.encoder, node_types, adapter_dim)
    elif strategy == "prompt":
        model.prompt = NodePrompt(node_types, model.embedding_dim, num_prompts).to(model.side_edges_device())


def freeze(model: GraphRecommender, strategy: str, frozen: list[str] | tuple[str, ...] = ()) -> StrategyReport:
    """Sets ``requires_grad`` on every parameter of ``model`` as ``strategy`` says; what trains.

    Raises:
        ConfigError: an unknown strategy, ``partial`` without prefixes or with one that names no
            parameter, or a strategy that would leave nothing to train (e.g. ``head`` with the
            parameter-free dot-product head).
    """
    check_strategy(strategy)
    names = [name for name, _ in model.named_parameters()]
    if strategy == "partial":
        if not frozen:
            raise ConfigError("key 'finetune.frozen' is empty; strategy 'partial' needs the parameter-name prefixes "
                              f"to freeze, e.g. [embedding] or [encoder.convs.0]; modules: {_modules(names)}")
        for prefix in frozen:
            if not any(_under(name, prefix) for name in names):
                raise ConfigError(f"key 'finetune.frozen' names '{prefix}', which matches no parameter; "
                                  f"modules: {_modules(names)}")
        trains = lambda name: not any(_under(name, prefix) for prefix in frozen)  # noqa: E731
    else:
        kept = {"full": ("",), "head": ("head",), "adapter": ("head", "encoder.adapters"),
                "prompt": ("head", "prompt")}[strategy]
        trains = lambda name: any(_under(name, prefix) for prefix in kept)  # noqa: E731
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(trains(name))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        hint = " (the dot-product head has no parameters: set model.head to linear or mlp)" if strategy == "head" \
            else ""
        raise ConfigError(f"fine-tuning strategy '{strategy}' leaves no parameter to train{hint}")
    return StrategyReport(strategy, count_parameters(model, trainable_only=True), count_parameters(model),
                          _modules(trainable))


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (only those with ``requires_grad`` when asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"key 'finetune.strategy' is '{strategy}'{suggest(strategy, STRATEGIES)}; "
                          f"expected one of {', '.join(STRATEGIES)}")


def _under(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def _modules(names: list[str], depth: int = 3) -> list[str]:
    """The distinct leading parts (up to ``depth`` dotted components) of parameter names, in order."""
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(".".join(name.split(".")[:depth]), None)
    return list(seen)
