r"""Small trainable parts for fine-tuning a frozen pre-trained encoder: adapters and prompts.

* :class:`Adapter`: a bottleneck MLP added residually after an encoder layer,
  :math:`\mathbf{h} \leftarrow \mathbf{h} + \mathbf{W}_{up}\,\sigma(\mathbf{W}_{down}\mathbf{h})`
  (`Houlsby et al., ICML 2019 <https://arxiv.org/abs/1902.00751>`_; for recommenders, the model
  patches of PeterRec, `Yuan et al., SIGIR 2020 <https://arxiv.org/abs/2001.04253>`_). The up
  projection starts at zero, so an inserted adapter leaves the encoder's output unchanged.
* :class:`NodePrompt`: learned vectors added to the input features of each node type before the
  encoder, :math:`\mathbf{x}_v \leftarrow \mathbf{x}_v + \mathbf{p}_{t(v)}`, in the manner of
  graph prompt tuning (`Fang et al., "Universal Prompt Tuning for Graph Neural Networks",
  NeurIPS 2023 <https://arxiv.org/abs/2209.15240>`_). With ``num_prompts > 1`` each node mixes
  ``num_prompts`` basis prompts with weights computed from its own input.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from graphrec.nn.encoder import HeteroEncoder


class Adapter(torch.nn.Module):
    r"""A residual bottleneck, :math:`\mathbf{h} + \mathbf{W}_{up}\,\mathrm{ReLU}(\mathbf{W}_{down}\mathbf{h})`.

    Args:
        channels (int): Width :math:`D` of the representations it adapts.
        bottleneck (int, optional): Hidden width. (default: ``16``)
    """

    def __init__(self, channels: int, bottleneck: int = 16) -> None:
        super().__init__()
        if bottleneck < 1:
            raise ValueError(f"bottleneck = {bottleneck}; expected a positive int")
        self.channels, self.bottleneck = channels, bottleneck
        self.down = torch.nn.Linear(channels, bottleneck)
        self.up = torch.nn.Linear(bottleneck, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.down.reset_parameters()
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.up(torch.relu(self.down(h)))  # [N, D]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, bottleneck={self.bottleneck})"


def add_adapters(encoder: HeteroEncoder, node_types: Iterable[str], bottleneck: int = 16) -> torch.nn.ModuleList:
    """Inserts one :class:`Adapter` per layer and node type into ``encoder`` (which applies them after
    each layer through :meth:`HeteroEncoder.adapt`); returns them.

    Raises:
        ValueError: ``encoder`` is not a :class:`HeteroEncoder`, has no layers, or has adapters already.
    """
    if not isinstance(encoder, HeteroEncoder):
        raise ValueError(f"add_adapters needs a graphrec.nn.HeteroEncoder; got {type(encoder).__name__}")
    if encoder.num_layers < 1:
        raise ValueError(f"{encoder!r} has no layers to put adapters after")
    if encoder.adapters is not None:
        raise ValueError(f"{encoder!r} has adapters already")
    node_types = list(node_types)
    encoder.adapters = torch.nn.ModuleList(
        torch.nn.ModuleDict({t: Adapter(encoder.channels, bottleneck) for t in node_types})
        for _ in range(encoder.num_layers)
    )
    return encoder.adapters


class NodePrompt(torch.nn.Module):
    r"""Learned prompt vectors added to node inputs, one set per node type.

    With one prompt a type's nodes all get the same vector :math:`\mathbf{p}_t`; with
    :math:`K > 1` prompts, node :math:`v` gets
    :math:`\sum_k \mathrm{softmax}_k(\mathbf{x}_v^\top \mathbf{p}_{t,k})\,\mathbf{p}_{t,k}`.
    Prompts start at zero (with a small random basis for :math:`K > 1` so the attention is
    defined), so an untrained prompt leaves the inputs unchanged.

    Args:
        node_types (iterable of str): Types that get prompts; others pass unchanged.
        channels (int): Width :math:`D` of the inputs.
        num_prompts (int, optional): Basis prompts per type :math:`K`. (default: ``1``)
    """

    def __init__(self, node_types: Iterable[str], channels: int, num_prompts: int = 1) -> None:
        super().__init__()
        if num_prompts < 1:
            raise ValueError(f"num_prompts = {num_prompts}; expected a positive int")
        self.channels, self.num_prompts = channels, num_prompts
        self.prompts = torch.nn.ParameterDict(
            {t: torch.nn.Parameter(torch.zeros(num_prompts, channels)) for t in node_types})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for prompt in self.prompts.values():
            if self.num_prompts == 1:
                torch.nn.init.zeros_(prompt)
            else:
                torch.nn.init.normal_(prompt, std=0.01)

    def forward(self, x_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        out = dict(x_dict)
        for node_type, prompt in self.prompts.items():
            if node_type not in x_dict:
                continue
            x = x_dict[node_type]  # [N, D]
            if self.num_prompts == 1:
                out[node_type] = x + prompt[0]
            else:
                weights = torch.softmax(x @ prompt.T, dim=-1)  # [N, K]
                out[node_type] = x + weights @ prompt
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({list(self.prompts)}, channels={self.channels}, num_prompts={self.num_prompts})"
