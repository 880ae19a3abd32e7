"""Run reports: a self-contained page per run, escaped text, the comparison page, the CLI, and Chromium's rendering."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from graphrec.cli import main
from graphrec.config import RunConfig
from graphrec.data.synthetic import generate, write
from graphrec.errors import DataError
from graphrec.pipeline import load_run_data, run
from graphrec.report import compare_runs, sample_recommendations, write_report
from graphrec.schema import from_mapping
from tests.conftest import write_tiny

CHROMIUM = Path("/usr/bin/chromium")
MALICIOUS = "<script>alert('x')</script>"


def config_for(root: Path, out: Path, name: str, **sections) -> RunConfig:
    payload = {
        "seed": 0,
        "graph": {"recipe": "synthetic", "data_root": str(root), "cache_dir": str(root / "cache")},
        "train": {"epochs": 4, "batch_size": 512, "lr": 0.01, "progress": False, "device": "cpu", "eval_every": 2},
        "output": {"dir": str(out), "name": name},
    }
    for key, value in sections.items():
        payload.setdefault(key, {}).update(value)
    return from_mapping(RunConfig, payload, "test")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A LightGCN and an MF run on a small synthetic graph."""
    root = tmp_path_factory.mktemp("report-data")
    write(generate(num_users=120, num_items=60, num_communities=4, interactions_per_user=12, seed=1),
          root / "synthetic")
    out = tmp_path_factory.mktemp("report-runs")
    return {model: run(config_for(root, out, model, model={"name": model})).run_dir for model in ("lightgcn", "mf")}


@pytest.fixture(scope="module")
def malicious_run(tmp_path_factory) -> Path:
    """A run on the tiny graph whose item titles (and run folder name) carry HTML."""
    root = tmp_path_factory.mktemp("tiny-malicious")
    items = "item,title,genres\n" + "".join(f"i{n},{MALICIOUS} {n},Drama\n" for n in range(1, 6))
    recipe = write_tiny(root / "tiny", **{"items.csv": items})
    config = from_mapping(RunConfig, {
        "graph": {"recipe": str(recipe), "data_root": str(recipe.parent), "cache_dir": str(root / "cache")},
        "split": {"ratios": [0.6, 0.2, 0.2]},
        "train": {"epochs": 2, "batch_size": 4, "progress": False, "device": "cpu", "monitor": "recall@2"},
        "eval": {"ks": [2]},
    }, "test")
    return run(config, run_dir=root / "run <b>&").run_dir


@pytest.fixture(scope="module")
def path_run(tmp_path_factory) -> Path:
    """A two-epoch path-LM run: its report shows the paths that explain the items."""
    root = tmp_path_factory.mktemp("report-paths")
    write(generate(num_users=60, num_items=40, num_communities=4, interactions_per_user=10, num_kg_entities=30,
                   seed=2), root / "synthetic")
    task = root / "task.yaml"
    task.write_text(yaml.safe_dump({
        "task": "path_lm", "paths": {"hops": [3], "paths_per_user": 10},
        "model": {"dim": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.0},
        "decode": {"hops": 3, "beam_width": 4, "batch_size": 64, "valid_users": 20},
    }))
    config = config_for(root, root / "runs", "paths", model={"name": "path_lm", "pretext": str(task)},
                        train={"epochs": 2, "batch_size": 256, "lr": 0.005, "eval_every": 1, "monitor": "ndcg@10"},
                        eval={"ks": [10]})
    return run(config).run_dir


def test_report_is_self_contained_with_metrics_curve_buckets_and_samples(runs):
    folder = runs["lightgcn"]
    path = write_report(folder)
    assert path == folder / "report.html"
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # written atomically, nothing left over
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for external in ('src="http', "href=", "<script", "<link", "url(", "@import"):
        assert external not in page, external
    assert page.count('src="data:image/png;base64,') == 2  # the training curve and the bucket chart
    metrics = json.loads((folder / "metrics.json").read_text())
    for part in ("test", "valid"):
        for key in ("recall@20", "ndcg@10"):
            assert f"{metrics[part][key]:.4f}" in page, (part, key)
    assert "<h1>lightgcn</h1>" in page and "lightgcn on synthetic" in page
    assert "Test metrics per activity bucket" in page and "&lt;10" in page
    assert f'{metrics["test_buckets"]["<10"]["recall@20"]:.4f}' in page
    assert "Sample recommendations" in page and page.count('<div class="user">') == 3
    environment = json.loads((folder / "environment.json").read_text())
    assert environment["git_commit"] is None or environment["git_commit"] in page
    assert next(iter(environment["data_files"].values())) in page  # the data checksums


def test_sample_lists_mark_test_hits_and_mask_training_items(runs):
    samples = sample_recommendations(runs["lightgcn"], num_users=3, k=10)
    assert len(samples) == 3
    activity = [sample["activity"] for sample in samples]
    assert activity == sorted(activity)  # least to most active
    _, data = load_run_data(runs["lightgcn"])
    idmap = data.bundle.idmap
    for sample in samples:
        user = idmap.index_of("user", sample["user"])
        train_items = set(data.train[1][data.train[0] == user].tolist())
        test_items = set(data.test[1][data.test[0] == user].tolist())
        listed = [idmap.index_of("item", row["item"]) for row in sample["items"]]
        assert len(listed) == 10 and not train_items & set(listed)
        assert [row["hit"] for row in sample["items"]] == [item in test_items for item in listed]
    assert any(row["hit"] for sample in samples for row in sample["items"])  # a trained model hits something


def test_item_titles_and_folder_names_are_escaped(malicious_run):
    page = write_report(malicious_run).read_text(encoding="utf-8")
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # the titles, shown as text
    assert "run &lt;b&gt;&amp;" in page


def test_missing_parts_are_left_out(runs, tmp_path, caplog):
    folder = tmp_path / "bare"
    shutil.copytree(runs["mf"], folder)
    (folder / "curve.png").unlink()
    (folder / "environment.json").unlink()
    metrics = json.loads((folder / "metrics.json").read_text())
    del metrics["test_buckets"]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["graph"]["data_root"] = str(tmp_path / "moved")  # the data is gone: no sample lists
    config["graph"]["cache_dir"] = str(tmp_path / "no-cache")
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    page = write_report(folder).read_text(encoding="utf-8")
    assert "no sample recommendations for" in caplog.text and str(tmp_path / "moved") in caplog.text
    assert f'{metrics["test"]["recall@20"]:.4f}' in page
    for part in ("Training curves", "per activity bucket", "Sample recommendations", "Environment", "data:image"):
        assert part not in page, part


def test_fine_tuned_run_shows_the_pretext_curve_and_what_trained(runs, tmp_path):
    pretrained = tmp_path / "pretrain"
    pretrained.mkdir()
    shutil.copy(runs["mf"] / "curve.png", pretrained / "pretrain_curve.png")  # any PNG stands in for the plot
    folder = tmp_path / "finetuned"
    shutil.copytree(runs["mf"], folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["finetune"] = {"strategy": "adapter", "trainable_parameters": 12864, "total_parameters": 100768,
                           "checkpoint": str(pretrained / "encoder.safetensors")}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    page = write_report(folder, num_users=0).read_text(encoding="utf-8")
    assert "pre-training (pretext) losses" in page and page.count("data:image/png;base64,") == 3
    assert "12,864 of 100,768" in page and "Sample recommendations" not in page


def test_path_lm_report_shows_the_explaining_paths(path_run):
    page = write_report(path_run, num_users=2, k=5).read_text(encoding="utf-8")
    assert page.count('<div class="user">') == 2
    assert re.search(r'<div class="why">You interacted with <em>[^<]+</em>\.', page)
    assert "test unconstrained" in page and "validity" in page


def test_compare_two_runs_bolds_the_best_of_each_row(runs, tmp_path):
    page = compare_runs([runs["lightgcn"], runs["mf"]], tmp_path / "compare.html").read_text(encoding="utf-8")
    assert 'src="http' not in page and "<script" not in page
    assert ">lightgcn<" in page and ">mf<" in page
    metrics = {name: json.loads((folder / "metrics.json").read_text()) for name, folder in runs.items()}
    values = {name: metrics[name]["test"]["recall@20"] for name in runs}
    row = re.search(r"<tr><th class=\"key\">recall@20</th>(.*?)</tr>", page).group(1)  # the test group comes first
    best = max(values, key=values.get)
    assert f"<strong>{values[best]:.4f}</strong>" in row
    assert row.count("<strong>") == 1 and f"{min(values.values()):.4f}" in row
    configs = page[page.index("Config keys that differ"):]
    assert "model.name" in configs and "output.name" not in configs and "train.lr" not in configs
    assert page.count('src="data:image/png;base64,') == 2  # both curves


def test_not_a_run_folder_is_a_data_error_naming_it(runs, tmp_path):
    with pytest.raises(DataError, match=rf"{re.escape(str(tmp_path))}: not a finished run folder \(no metrics.json\)"):
        write_report(tmp_path)
    with pytest.raises(DataError, match="not a finished run folder"):
        compare_runs([runs["mf"], tmp_path], tmp_path / "compare.html")


def test_cli_report_one_and_several_runs(runs, tmp_path, monkeypatch, capsys):
    (runs["mf"] / "report.html").unlink(missing_ok=True)
    assert main(["report", str(runs["mf"]), "--users", "1", "-k", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(runs["mf"] / "report.html")
    assert (runs["mf"] / "report.html").read_text().count("<li") == 3
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(runs["lightgcn"]), str(runs["mf"])]) == 0
    assert capsys.readouterr().out.strip() == "report-compare.html"
    assert (tmp_path / "report-compare.html").is_file()
    assert main(["report", str(runs["lightgcn"]), str(runs["mf"]), "--out", str(tmp_path / "c.html")]) == 0
    assert (tmp_path / "c.html").is_file()
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphrec: error: ") and "not a finished run folder" in err and "Traceback" not in err
    assert main(["report", str(runs["mf"]), "-k", "0"]) == 2
    assert "-k must be at least 1, found 0" in capsys.readouterr().err
    assert main(["report", str(runs["mf"]), "--users", "-1"]) == 2
    assert "--users must be at least 0, found -1" in capsys.readouterr().err


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.is_file(), reason="headless Chromium (/usr/bin/chromium) is not installed")
def test_chromium_renders_the_report(runs, tmp_path):
    from matplotlib.image import imread

    page = write_report(runs["lightgcn"])
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    metrics = json.loads((runs["lightgcn"] / "metrics.json").read_text())
    assert "<table>" in dom.stdout and f'{metrics["test"]["recall@20"]:.4f}' in dom.stdout
    assert dom.stdout.count("<img ") == 2 and "Sample recommendations" in dom.stdout

    screenshot = tmp_path / "report.png"
    shot = chromium(f"--screenshot={screenshot}", "--window-size=1280,2000", page.as_uri(),
                    profile=tmp_path / "profile-shot")
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    assert screenshot.stat().st_size > 20_000
    pixels = imread(screenshot)[..., :3]  # [2000, 1280, 3] floats in [0, 1]
    assert pixels.shape[:2] == (2000, 1280)
    background = (pixels == pixels[5, 5]).all(axis=-1).mean()
    assert background < 0.9  # not a blank page: cards, text and plots cover a good part of it
    assert pixels.std() > 0.05
    # the orange validation line of the training curve is drawn somewhere on the page
    orange = (pixels[..., 0] > 0.9) & (pixels[..., 1] > 0.4) & (pixels[..., 1] < 0.6) & (pixels[..., 2] < 0.2)
    assert orange.sum() > 50
