r"""Several pretext tasks as one loss: fixed or learned weights, and an easy-to-hard curriculum.

* ``weighting="fixed"``: :math:`\mathcal{L} = \sum_i w_i \mathcal{L}_i`.
* ``weighting="uncertainty"``: homoscedastic uncertainty weighting (Kendall et al., "Multi-Task
  Learning Using Uncertainty to Weigh Losses for Scene Geometry and Semantics", CVPR 2018),
  :math:`\mathcal{L} = \sum_i e^{-s_i} w_i \mathcal{L}_i + s_i` with a learned log-variance
  :math:`s_i` per task: a task whose loss stays high is down-weighted, and the :math:`+ s_i`
  term keeps every weight from collapsing to zero.
* A :class:`Curriculum` brings tasks in one after another, each ramping up from weight 0, as the
  curriculum pre-training of CHEST (Wang et al., TOIS 2023) orders its tasks from easy to hard.
  Which order is easy-to-hard is the recipe's choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from graphrec.pretext.base import PretextBatch, PretextModel, PretextTask

Weighting = Literal["fixed", "uncertainty"]


@dataclass
class Curriculum:
    """Task ``order[k]`` becomes active at step ``k * stage_steps``; its weight then ramps linearly
    from ``1 / stage_steps`` (its first step) to ``1`` over ``stage_steps`` steps. Tasks not in
    ``order`` are active from the start at weight 1.

    Example:
        >>> curriculum = Curriculum(["masked_node", "masked_edge"], stage_steps=10)
        >>> [curriculum.weight("masked_edge", step) for step in (9, 10, 19)]
        [0.0, 0.1, 1.0]
    """

    order: Sequence[str]
    stage_steps: int

    def __post_init__(self) -> None:
        self.order = list(self.order)
        if self.stage_steps < 1:
            raise ValueError(f"Curriculum: stage_steps = {self.stage_steps}; expected a positive int")
        if len(set(self.order)) < len(self.order):
            raise ValueError(f"Curriculum: order lists a task twice: {self.order}")

    def start(self, name: str) -> int:
        """The step at which task ``name`` becomes active."""
        return self.order.index(name) * self.stage_steps if name in self.order else 0

    def weight(self, name: str, step: int) -> float:
        """The ramp weight of task ``name`` at ``step``: 0 before its start, 1 when fully in."""
        if name not in self.order:
            return 1.0
        return min(1.0, max(0.0, (step - self.start(name) + 1) / self.stage_steps))


class MultiTask(PretextTask):
    r"""A weighted sum of pretext tasks; itself a :class:`PretextTask`.

    Args:
        tasks (dict[str, PretextTask]): The tasks by name (the names used in ``weights``,
            ``curriculum.order`` and :attr:`last_losses`).
        weighting (str, optional): ``"fixed"`` or ``"uncertainty"``. (default: ``"fixed"``)
        weights (dict[str, float], optional): Fixed weight :math:`w_i` per task (1 for tasks
            left out); with ``"uncertainty"`` they scale the task losses too. (default: ``None``)
        curriculum (Curriculum, optional): When each task comes in; inactive tasks are not
            computed at all. (default: ``None``: all tasks from the start at full weight)

    Attributes:
        last_losses (dict[str, float]): The latest step's loss of every computed task, and
            ``"total"``.
    """

    name = "multitask"

    def __init__(self, tasks: Mapping[str, PretextTask], weighting: Weighting = "fixed",
                 weights: Mapping[str, float] | None = None, curriculum: Curriculum | None = None) -> None:
        super().__init__()
        owner = type(self).__name__
        if not tasks:
            raise ValueError(f"{owner}: tasks is empty; expected at least one pretext task")
        if weighting not in ("fixed", "uncertainty"):
            raise ValueError(f"{owner}: weighting = {weighting!r}; expected 'fixed' or 'uncertainty'")
        names = list(tasks)
        weights = dict(weights or {})
        ordered = list(curriculum.order) if curriculum else []
        for label, given in (("weights", list(weights)), ("curriculum.order", ordered)):
            unknown = [n for n in given if n not in tasks]
            if unknown:
                raise ValueError(f"{owner}: {label} names task {unknown[0]!r}, which is not among the tasks {names}")
        for name, weight in weights.items():
            if weight < 0:
                raise ValueError(f"{owner}: weights[{name!r}] = {weight}; expected a non-negative number")
        self.tasks = torch.nn.ModuleDict(dict(tasks))
        self.weighting = weighting
        self.weights = {name: float(weights.get(name, 1.0)) for name in names}
        self.curriculum = curriculum
        # s_i = log sigma_i^2, one per task; starts at 0 (weight 1).
        self.log_vars = torch.nn.Parameter(torch.zeros(len(names))) if weighting == "uncertainty" else None
        self.last_losses: dict[str, float] = {}

    def reset_parameters(self) -> None:
        for task in self.tasks.values():
            if hasattr(task, "reset_parameters"):
                task.reset_parameters()
        if self.log_vars is not None:
            torch.nn.init.zeros_(self.log_vars)

    @property
    def seed_types(self) -> list[str]:
        """The node types any of the tasks puts its loss on."""
        return list(dict.fromkeys(t for task in self.tasks.values() for t in task.seed_types))

    def ramp(self, name: str, step: int) -> float:
        """The curriculum weight of task ``name`` at ``step`` (1 without a curriculum)."""
        return 1.0 if self.curriculum is None else self.curriculum.weight(name, step)

    def active(self, step: int) -> list[str]:
        """Names of the tasks computed at ``step``."""
        return [name for name in self.tasks if self.ramp(name, step) > 0]

    def task_weights(self) -> dict[str, float]:
        r"""The current multiplier of each task's loss before the curriculum ramp: :math:`w_i`, or
        :math:`e^{-s_i} w_i` with uncertainty weighting."""
        if self.log_vars is None:
            return dict(self.weights)
        scale = torch.exp(-self.log_vars.detach()).tolist()
        return {name: self.weights[name] * s for name, s in zip(self.tasks, scale)}

    def loss(self, model: PretextModel, batch: PretextBatch) -> Tensor:
        total: Tensor | None = None
        losses: dict[str, float] = {}
        for index, (name, task) in enumerate(self.tasks.items()):
            ramp = self.ramp(name, batch.step)
            if ramp <= 0:
                continue
            value = task.loss(model, batch)
            losses[name] = float(value.detach())
            term = self.weights[name] * value
            if self.log_vars is not None:
                term = torch.exp(-self.log_vars[index]) * term + self.log_vars[index]
            term = ramp * term
            total = term if total is None else total + term
        if total is None:
            raise ValueError(f"{type(self).__name__}: no task is active at step {batch.step}")
        losses["total"] = float(total.detach())
        self.last_losses = losses
        return total

    def __repr__(self) -> str:
        curriculum = f", curriculum={self.curriculum}" if self.curriculum else ""
        return f"{type(self).__name__}(tasks={list(self.tasks)}, weighting={self.weighting!r}{curriculum})"
