"""Tests of MultiTask: fixed and learned (uncertainty) weights, and the curriculum."""

from __future__ import annotations

import math

import pytest
import torch

from graphrec.pretext import Curriculum, MultiTask, PretextBatch, PretextTask


class ConstantTask(PretextTask):
    """A loss of ``value`` (a parameter times zero keeps it differentiable); records the steps it ran at."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.steps: list[int] = []

    def loss(self, model, batch):
        self.steps.append(batch.step)
        return self.value + 0 * self.anchor


def batch(step: int) -> PretextBatch:
    return PretextBatch({}, {}, step=step)


def test_fixed_weights_sum_and_last_losses():
    multitask = MultiTask({"a": ConstantTask(2.0), "b": ConstantTask(3.0)}, weights={"b": 0.5})
    total = multitask.loss(None, batch(0))
    assert math.isclose(float(total.detach()), 2.0 + 0.5 * 3.0)
    assert multitask.last_losses == {"a": 2.0, "b": 3.0, "total": 3.5}
    assert multitask.task_weights() == {"a": 1.0, "b": 0.5}


def test_uncertainty_weights_are_learned_towards_the_inverse_loss():
    multitask = MultiTask({"high": ConstantTask(4.0), "low": ConstantTask(0.25)}, weighting="uncertainty")
    assert math.isclose(float(multitask.loss(None, batch(0)).detach()), 4.25)  # s = 0: plain sum
    optimizer = torch.optim.Adam(multitask.parameters(), lr=0.05)
    for step in range(400):
        optimizer.zero_grad()
        multitask.loss(None, batch(step)).backward()
        optimizer.step()
    # the optimum of exp(-s) L + s is s = log L
    assert torch.allclose(multitask.log_vars.detach(), torch.tensor([math.log(4.0), math.log(0.25)]), atol=0.05)
    weights = multitask.task_weights()
    assert weights["high"] < 0.3 < 3.5 < weights["low"]


def test_curriculum_activates_and_ramps_tasks_at_their_stage():
    tasks = {"a": ConstantTask(1.0), "b": ConstantTask(2.0), "c": ConstantTask(4.0), "always": ConstantTask(8.0)}
    multitask = MultiTask(tasks, curriculum=Curriculum(["a", "b", "c"], stage_steps=4))
    totals = {}
    for step in range(14):
        totals[step] = float(multitask.loss(None, batch(step)).detach())
        if step < 4:
            assert set(multitask.last_losses) == {"a", "always", "total"}
    assert tasks["a"].steps[0] == 0 and tasks["always"].steps[0] == 0
    assert tasks["b"].steps[0] == 4 and tasks["c"].steps[0] == 8  # inactive tasks are not computed
    assert multitask.active(3) == ["a", "always"] and multitask.active(8) == ["a", "b", "c", "always"]
    # a ramps 1/4, 2/4, 3/4, 1; b enters at step 4 with weight 1/4
    assert math.isclose(totals[0], 0.25 * 1 + 8)
    assert math.isclose(totals[3], 1 + 8)
    assert math.isclose(totals[4], 1 + 0.25 * 2 + 8)
    assert math.isclose(totals[9], 1 + 2 + 0.5 * 4 + 8)
    assert math.isclose(totals[13], 1 + 2 + 4 + 8)


def test_curriculum_weight_by_hand():
    curriculum = Curriculum(["x", "y"], stage_steps=10)
    assert [curriculum.weight("y", s) for s in (0, 9, 10, 14, 19, 50)] == [0.0, 0.0, 0.1, 0.5, 1.0, 1.0]
    assert curriculum.start("y") == 10 and curriculum.weight("z", 0) == 1.0


def test_errors_name_the_argument():
    tasks = {"a": ConstantTask(1.0)}
    with pytest.raises(ValueError, match=r"weights names task 'b', which is not among the tasks \['a'\]"):
        MultiTask(tasks, weights={"b": 1.0})
    with pytest.raises(ValueError, match="curriculum.order names task 'b'"):
        MultiTask(tasks, curriculum=Curriculum(["a", "b"], 5))
    with pytest.raises(ValueError, match="weighting = 'gradnorm'"):
        MultiTask(tasks, weighting="gradnorm")
    with pytest.raises(ValueError, match="tasks is empty"):
        MultiTask({})
    with pytest.raises(ValueError, match="stage_steps = 0"):
        Curriculum(["a"], 0)
    with pytest.raises(ValueError, match="lists a task twice"):
        Curriculum(["a", "a"], 3)
