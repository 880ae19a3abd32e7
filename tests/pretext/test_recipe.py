"""Tests of pre-training recipes: the shipped files, building against graphs, and errors that name the key."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from graphrec.errors import ConfigError
from graphrec.pretext import (
    ContrastiveViews, MaskedEdgePrediction, MaskedNodePrediction, MetaPathPrediction, MultiTask, PretextBatch,
    build_multitask, load_pretext_recipe,
)
from graphrec.pretext.recipe import default_pretext_dir
from tests.pretext.conftest import make_graph, make_model, num_nodes

DIM = 16
SHIPPED = ["chest", "masked-edge", "contrastive", "template"]


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_load_and_build_on_the_synthetic_graph(name, synthetic_graph):
    recipe = load_pretext_recipe(name)
    assert recipe.name == name and recipe.source.endswith(f"{name}.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the synthetic graph has every node type: nothing is skipped
        multitask = build_multitask(recipe, synthetic_graph, DIM)
    assert isinstance(multitask, MultiTask) and list(multitask.tasks) == recipe.tasks.enabled()
    model = make_model(synthetic_graph, DIM)
    batch = PretextBatch(dict(synthetic_graph.edge_index_dict), num_nodes(synthetic_graph), step=recipe.steps - 1,
                         generator=torch.Generator().manual_seed(0))
    loss = multitask.loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and set(multitask.last_losses) == {*recipe.tasks.enabled(), "total"}


def test_chest_recipe(synthetic_graph):
    recipe = load_pretext_recipe("chest")
    assert recipe.weighting == "uncertainty"
    assert recipe.curriculum.order == ["masked_node", "masked_edge", "metapath", "contrastive"]
    multitask = build_multitask(recipe, synthetic_graph, DIM)
    tasks = multitask.tasks
    assert isinstance(tasks["masked_node"], MaskedNodePrediction) and tasks["masked_node"].fields == ["genre", "tag"]
    assert isinstance(tasks["masked_edge"], MaskedEdgePrediction)
    assert isinstance(tasks["metapath"], MetaPathPrediction) and len(tasks["metapath"].metapaths) == 5
    assert isinstance(tasks["contrastive"], ContrastiveViews)
    stage = recipe.curriculum.stage_steps
    assert [multitask.active(k * stage) for k in range(4)] == [recipe.curriculum.order[:k + 1] for k in range(4)]


def test_chest_runs_on_a_movielens_like_graph_skipping_what_it_lacks():
    graph = make_graph(tag=False, social=False)  # genre and KG entities, no tags or friends
    with pytest.warns(UserWarning, match=r"skips .*user-user-item \(no user -> user edges\); "
                                         r"item-tag-item \(no item -> tag edges\)"):
        multitask = build_multitask(load_pretext_recipe("chest"), graph, DIM)
    assert multitask.tasks["masked_node"].fields == ["genre"]
    names = ["-".join(m) for m in multitask.tasks["metapath"].metapaths]
    assert names == ["user-item-user", "user-item-genre-item-user", "item-entity-item"]


def test_chest_runs_on_a_lastfm_like_graph_skipping_what_it_lacks():
    graph = make_graph(genre=False, entity=False)  # tags and friends, no genre or KG
    with pytest.warns(UserWarning, match=r"user-item-genre-item-user \(no item -> genre edges\); "
                                         r"item-entity-item \(no item -> entity edges\)"):
        multitask = build_multitask(load_pretext_recipe("chest"), graph, DIM)
    assert multitask.tasks["masked_node"].fields == ["tag"]
    names = ["-".join(m) for m in multitask.tasks["metapath"].metapaths]
    assert names == ["user-item-user", "user-user-item", "item-tag-item"]


def test_overrides_and_default_name(tmp_path):
    assert load_pretext_recipe("chest", {"steps": 5, "curriculum": {"stage_steps": 2}}).curriculum.stage_steps == 2
    recipe = load_pretext_recipe(write(tmp_path, "tasks: {masked_edge: {}}", "mine.yaml"))
    assert recipe.name == "mine" and recipe.steps == 200 and recipe.lr == 1e-3 and recipe.weighting == "fixed"
    assert recipe.tasks.masked_edge.mask_rate == 0.15


@pytest.mark.parametrize("text, message", [
    ("tasks: {masked_edge: {}}\nstepz: 3", r"unknown key 'stepz' \(did you mean 'steps'\?\)"),
    ("tasks: {masked_nod: {}}", r"unknown key 'tasks.masked_nod' \(did you mean 'masked_node'\?\)"),
    ("tasks: {masked_edge: {mask_ratio: 0.2}}",
     r"unknown key 'tasks.masked_edge.mask_ratio' \(did you mean 'mask_rate'"),
    ("tasks: {masked_edge: {mask_rate: high}}", r"key 'tasks.masked_edge.mask_rate' must be a number"),
    ("tasks: {masked_edge: {mask_rate: 1.5}}", r"key 'tasks.masked_edge.mask_rate' must be a fraction in \(0, 1\)"),
    ("tasks: {masked_edge: {edge_types: [[user, item]]}}", r"key 'tasks.masked_edge.edge_types\[0\]' must be"),
    ("tasks: {metapath: {metapaths: [[user]]}}", r"key 'tasks.metapath.metapaths\[0\]' must list at least two"),
    ("tasks: {contrastive: {view: crop}}", r"key 'tasks.contrastive.view' is 'crop'"),
    ("tasks: {}", r"key 'tasks' turns on no task"),
    ("tasks: {masked_edge: {}}\nweights: {masked_node: 2}", r"key 'weights' names task 'masked_node'"),
    ("tasks: {masked_edge: {}}\ncurriculum: {order: [masked_edges]}",
     r"key 'curriculum.order' names task 'masked_edges' \(did you mean 'masked_edge'\?\)"),
    ("tasks: {masked_edge: {}}\nweighting: learned", r"key 'weighting' is 'learned'"),
    ("tasks: {masked_edge: {}}\nsteps: 0", r"key 'steps' must be at least 1"),
])
def test_recipe_errors_name_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_pretext_recipe(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("tasks, message", [
    ("masked_node: {fields: [colour]}",
     r"key 'tasks.masked_node.fields': node type 'item' has no field 'colour' in the graph; its fields: \['genre'\]"),
    ("masked_node: {node_type: artist}", r"key 'tasks.masked_node.node_type' is 'artist'"),
    ("masked_node: {node_type: user}", r"key 'tasks.masked_node.fields': node type 'user' has no attribute fields"),
    ("masked_node: {target: text}", r"key 'tasks.masked_node.target' is 'text', but node type 'item' has no text"),
    ("masked_edge: {edge_types: [[user, likes, item]]}",
     r"key 'tasks.masked_edge.edge_types' names \['user', 'likes', 'item'\]"),
    ("metapath: {metapaths: [[user, item, user], [user, user, item]]}",
     r"key 'tasks.metapath.metapaths': 1 of the meta-paths apply"),
    ("contrastive: {node_types: [user, artist]}", r"key 'tasks.contrastive.node_types' names 'artist'"),
])
def test_tasks_that_cannot_apply_to_the_graph_name_the_key(tmp_path, tasks, message):
    graph = make_graph(tag=False, social=False, text=False)
    path = write(tmp_path, f"tasks:\n  {tasks}\n")
    recipe = load_pretext_recipe(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError, match=message) as info:
            build_multitask(recipe, graph, DIM)
    assert str(path) in str(info.value)


def test_a_path_lm_task_file_is_not_a_recipe():
    with pytest.raises(ConfigError, match=r"path-lm.yaml: key 'task' \('path_lm'\) marks a single-task file"):
        load_pretext_recipe("path-lm")
    with pytest.raises(ConfigError, match=r"no pretext task or recipe 'chset' \(did you mean 'chest'\?\)"):
        load_pretext_recipe("chset")


def test_template_documents_every_key():
    lines = (default_pretext_dir() / "template.yaml").read_text().splitlines()
    keyed = [line for line in lines if line.strip() and not line.lstrip().startswith(("#", "-"))]
    undocumented = [line for line in keyed if "#" not in line]
    assert not undocumented, undocumented
