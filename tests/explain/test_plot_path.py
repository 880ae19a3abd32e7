"""`graphrec plot-path`: the explained paths of a path-LM run and a user's neighbourhood, drawn as PNGs."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from graphrec.cli import main
from graphrec.config import RunConfig
from graphrec.explain.api import ExplainedRun, recommend_with_paths
from graphrec.explain.plot import plot_neighbourhood, plot_paths
from graphrec.pipeline import load_run_data, run
from graphrec.schema import from_mapping
from tests.explain.test_runner import finished, synthetic_root, task_file  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def lightgcn_run(synthetic_root, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("lgcn-runs")
    config = from_mapping(RunConfig, {
        "graph": {"recipe": "synthetic", "data_root": str(synthetic_root), "cache_dir": str(synthetic_root / "cache")},
        "train": {"epochs": 1, "progress": False}, "output": {"dir": str(out), "name": "lgcn"}}, "test")
    return run(config).run_dir


def assert_drawn(png) -> None:
    """The PNG exists and holds a picture: many non-white pixels in several colours."""
    pixels = imread(str(png))[..., :3]  # [H, W, 3] in [0, 1]
    inked = (pixels < 0.95).any(axis=-1)
    assert inked.mean() > 0.01, f"{png} is almost blank"
    assert len(np.unique((pixels[inked] * 255).astype(np.uint8), axis=0)) > 20


def drawn_texts(figure) -> set[str]:
    return {text.get_text().replace("\n", " ") for text in figure.axes[0].texts}


def test_plot_path_cli_writes_the_png(finished, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "plots" / "u1.png"
    assert main(["plot-path", "--run", str(finished.run_dir), "--user", "u1", "-k", "3", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"{out}  (")
    assert_drawn(out)
    assert main(["plot-path", "--run", str(finished.run_dir), "--user", "u2"]) == 0  # default: into the run folder
    assert_drawn(finished.run_dir / "path-u2.png")


def test_the_drawn_graph_is_the_explained_paths(finished):  # noqa: F811
    loaded = ExplainedRun(finished.run_dir)
    items = recommend_with_paths(loaded, ["u1"], k=3)[0]["items"]
    assert items, "the tiny path LM should explain some items for u1"
    plot = plot_paths(loaded, "u1", k=3)
    graph = plot.graph
    nodes = {(step["type"], step["id"]) for row in items for step in row["path"][0::2]}
    hops = {((head["type"], head["id"]), (tail["type"], tail["id"]), relation["relation"])
            for row in items for head, relation, tail in zip(row["path"][0:-2:2], row["path"][1::2], row["path"][2::2])}
    assert set(graph) == nodes
    assert set(graph.edges(keys=True)) == hops
    assert graph.nodes[("user", "u1")]["position"] == 0
    ends = {node: attrs["rank"] for node, attrs in graph.nodes(data=True) if attrs.get("end")}
    assert ends == {("item", row["item"]): row["rank"] for row in items}
    texts = drawn_texts(plot.figure)
    for row in items:  # every recommended item is drawn with its rank, every relation is written
        assert f"#{row['rank']} {row['name']}"[:20] in " | ".join(texts)
        for step in row["path"][1::2]:
            assert step["relation"].removeprefix("rev_").replace("_", " ") in texts
    assert "user u1" in texts


def test_neighbourhood_of_any_run(lightgcn_run, tmp_path, capsys):
    out = tmp_path / "hood.png"
    assert main(["plot-path", "--run", str(lightgcn_run), "--user", "u1", "--neighbourhood", "--max-nodes", "12",
                 "--out", str(out)]) == 0
    assert "12 nodes" in capsys.readouterr().out
    assert_drawn(out)
    plot = plot_neighbourhood(lightgcn_run, "u1", hops=2, max_nodes=12)
    graph = plot.graph
    assert graph.number_of_nodes() == 12 and graph.graph["center"] == ("user", 1)
    assert {attrs["hop"] for _, attrs in graph.nodes(data=True)} == {0, 1, 2}
    _, data = load_run_data(lightgcn_run)
    train = set(map(tuple, data.train.T.tolist()))
    held_out = set(map(tuple, data.test.T.tolist())) | set(map(tuple, data.valid.T.tolist()))
    watched = {v[1] for u, v, attrs in graph.edges(data=True)
               if u == ("user", 1) and attrs["relation"][1] == "interacts"}
    assert watched and all((1, item) in train for item in watched)  # the training graph only
    assert not any((1, item) in held_out for item in watched)
    for head, tail in graph.edges():  # only edges from one hop to the next are drawn
        assert abs(graph.nodes[head]["hop"] - graph.nodes[tail]["hop"]) == 1


def test_plot_path_errors(finished, lightgcn_run, tmp_path, capsys):  # noqa: F811
    def fails(*argv: str) -> str:
        assert main(["plot-path", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("graphrec: error: ") and err.count("\n") == 1, err  # one line, no traceback
        return err

    assert "unknown user id 'nobody'" in fails("--run", str(finished.run_dir), "--user", "nobody")
    assert "unknown user id 'nobody'" in fails("--run", str(lightgcn_run), "--user", "nobody", "--neighbourhood")
    assert "not a path_lm" in fails("--run", str(lightgcn_run), "--user", "u1")
    assert "not a run folder" in fails("--run", str(tmp_path / "missing"), "--user", "u1")
    assert "-k must be at least 1, found 0" in fails("--run", str(finished.run_dir), "--user", "u1", "-k", "0")
    assert "--hops must be 1, 2 or 3, found 5" in fails("--run", str(lightgcn_run), "--user", "u1", "--neighbourhood",
                                                        "--hops", "5")
    with pytest.raises(SystemExit) as exited:  # a usage mistake: argparse's one line, exit code 2
        main(["plot-path", "--run", str(lightgcn_run)])
    assert exited.value.code == 2 and "the following arguments are required: --user" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
