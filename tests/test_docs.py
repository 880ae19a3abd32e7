"""Every code block of README.md and docs/*.md runs, or says why it does not.

The blocks of one page run in order in one empty folder (with ``configs/``, ``graphs/``,
``pretext/`` and ``examples/`` of the checkout linked in, as a user in the repository root has
them): ``python`` blocks share one namespace; each line of a ``bash`` block is a command, either
``graphrec ...`` (run by :func:`graphrec.cli.main`, in this process) or ``python ...`` (a
subprocess); a ``yaml`` block is loaded by graphrec's own loader for what it is (graph recipe, run
config, pretext recipe, path-LM task). Training is shrunk by :data:`TINY`, added after the
overrides of every config a command loads, so that the pages run in about a minute.

A block can carry a marker, an HTML comment on the line before its fence:

* ``<!-- not run: REASON -->``: skipped; the reason is required.
* ``<!-- file: PATH -->``: the block is written to ``PATH`` (a YAML block is checked first).
* ``<!-- output -->``: each line must be a line of what the previous block printed, in order
  (a line ``...`` skips any number of lines, ``...`` inside a line any text);
  ``<!-- output: numbers vary -->`` also lets every number stand for any number.
* ``<!-- example: PATH -->``: the block is the file ``PATH`` of the checkout, verbatim; the file is
  run in the page's namespace, and :data:`EXAMPLE_CHECKS` asserts what it must achieve.
"""

from __future__ import annotations

import re
import runpy
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import graphrec.config
import graphrec.pipeline
from graphrec import docgen
from graphrec.cli import main as graphrec_main
from graphrec.config import RunConfig
from graphrec.explain.spec import load_task
from graphrec.graph.recipe import Recipe, load_recipe
from graphrec.pretext import load_pretext_recipe
from graphrec.schema import from_mapping

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = ("configs", "graphs", "pretext", "examples")
# Added after a config's own overrides: the last value of a key wins.
TINY = ["train.epochs=1", "train.progress=false", "train.device=cpu", "pretrain.steps=2"]
RUN_LANGUAGES = {"python", "bash", "sh", "shell"}
MARKER = re.compile(r"<!--\s*(not run|file|output|example)\s*(?::\s*(.*?))?\s*-->")
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    marker: str | None = None  # not run | file | output | example
    argument: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def code_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with the marker comment before each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[index])
        if not opening:
            index += 1
            continue
        indent, fence, language = opening.groups()
        start, body = index, []
        index += 1
        while index < len(lines) and lines[index].strip() != fence:
            body.append(lines[index][len(indent):] if lines[index].startswith(indent) else lines[index].lstrip())
            index += 1
        index += 1
        before = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        marker = MARKER.fullmatch(before)
        blocks.append(Block(page, start + 1, language.lower(), "\n".join(body) + "\n",
                            marker.group(1) if marker else None, (marker.group(2) or "") if marker else ""))
    return blocks


# ---------------------------------------------------------------------------------------- checks
def check_yaml(text: str, where: str, folder: Path) -> None:
    """Load a YAML block with the loader of what it is: recipe, run config, pretext recipe or path-LM task."""
    payload = yaml.safe_load(text)
    assert isinstance(payload, dict), f"{where}: a YAML block should be a mapping, found {type(payload).__name__}"
    keys = set(payload)
    path = folder / "_block.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        if "interactions" in keys:
            load_recipe(path)
        elif payload.get("task") == "path_lm":
            load_task(path)
        elif "tasks" in keys:
            load_pretext_recipe(path)
        elif keys <= set(RunConfig.__dataclass_fields__):
            ORIGINAL_LOAD_CONFIG(path)
        elif keys <= set(Recipe.__dataclass_fields__):  # a part of a recipe
            from_mapping(Recipe, {"name": "part", "interactions": {"path": "x.csv"}, **payload}, where)
        else:
            pytest.fail(f"{where}: YAML block is no graph recipe, run config, pretext recipe or path-LM task "
                        f"(keys {sorted(keys)}); mark it <!-- not run: REASON -->")
    finally:
        path.unlink()


def check_output(expected: str, printed: str, where: str, numbers_vary: bool) -> None:
    """Each expected line (whitespace collapsed) is a printed line, in order; ``...`` skips lines or text."""
    def norm(line: str) -> str:
        return " ".join(line.split())

    printed_lines = [norm(line) for line in printed.splitlines() if line.strip()]
    position = 0
    for line in (norm(line) for line in expected.splitlines() if line.strip()):
        if line == "...":
            continue
        pattern = re.escape(line).replace(re.escape("..."), "<<ANY>>")
        if numbers_vary:
            pattern = NUMBER.sub("<<N>>", pattern).replace("<<N>>", NUMBER.pattern)
        matcher = re.compile(pattern.replace("<<ANY>>", ".*") + r"\Z")
        found = next((k for k in range(position, len(printed_lines)) if matcher.match(printed_lines[k])), None)
        assert found is not None, f"{where}: expected output line not printed (in order): {line!r}\n" \
                                  f"printed:\n{printed}"
        position = found + 1


def commands(text: str) -> list[list[str]]:
    """The commands of a shell block: ``\\``-continued lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    return [argv for argv in (shlex.split(line, comments=True) for line in joined.splitlines()) if argv]


def run_command(argv: list[str], where: str, folder: Path) -> str:
    """Runs one command of a shell block in ``folder``; returns what it printed (a subprocess's output)."""
    program, args = argv[0], argv[1:]
    if program in ("graphrec", ".venv/bin/graphrec") or argv[:3] == ["python", "-m", "graphrec"]:
        args = argv[3:] if program == "python" else args
        code = graphrec_main(args)
        assert code == 0, f"{where}: `{shlex.join(argv)}` exited with {code}"
        return ""
    if program == "python":
        done = subprocess.run([sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{where}: `{shlex.join(argv)}` failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr
    pytest.fail(f"{where}: cannot run `{shlex.join(argv)}` (only graphrec and python commands run); "
                f"mark the block <!-- not run: REASON -->")


ORIGINAL_LOAD_CONFIG = graphrec.config.load_config


def tiny_load_config(path=None, overrides=()):
    return ORIGINAL_LOAD_CONFIG(path, [*overrides, *TINY])


def check_nn_example(namespace: dict) -> None:
    pretext, bpr = namespace["pretext_losses"], namespace["bpr_losses"]
    assert sum(pretext[-5:]) / 5 < 0.9 * sum(pretext[:5]) / 5, f"masked-edge loss did not fall: {pretext}"
    assert sum(bpr[-5:]) / 5 < 0.8 * sum(bpr[:5]) / 5, f"BPR loss did not fall: {bpr}"
    assert namespace["auc"] > 0.6, f"held-out AUC {namespace['auc']:.3f}; the model learned nothing"


EXAMPLE_CHECKS = {"examples/nn_in_your_model.py": check_nn_example}


# ---------------------------------------------------------------------------------------- tests
def test_every_block_runs_or_says_why():
    problems = []
    for page in PAGES:
        for block in code_blocks(page):
            if block.marker in ("not run", "file", "example") and not block.argument.strip():
                problems.append(f"{block.where}: <!-- {block.marker}: ... --> needs a reason or a path")
            if block.marker is None and block.language not in RUN_LANGUAGES | {"yaml"}:
                problems.append(f"{block.where}: a '{block.language or 'plain'}' block runs only with a marker "
                                f"(<!-- output -->, <!-- file: PATH --> or <!-- not run: REASON -->)")
    assert not problems, "\n".join(problems)


def test_every_example_is_shown_verbatim_on_a_page():
    shown = {block.argument: block for page in PAGES for block in code_blocks(page) if block.marker == "example"}
    for path in sorted((ROOT / "examples").glob("*.py")):
        key = str(path.relative_to(ROOT))
        assert key in shown, f"{key} is on no docs page (<!-- example: {key} --> before its block)"
        assert shown[key].text == path.read_text(encoding="utf-8"), \
            f"{shown[key].where} differs from {key}; copy the file into the page"
        assert key in EXAMPLE_CHECKS, f"{key} has no check of what it achieves in EXAMPLE_CHECKS"


def test_relative_links_point_to_files():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: link to missing {target}"


def test_generated_pages_are_current():
    stale = [str(path.relative_to(ROOT)) for path in docgen.stale_pages()]
    assert not stale, f"{stale} differ from what the code gives; run python -m graphrec.docgen"


def test_every_config_field_is_documented():
    missing = docgen.undocumented_fields()
    assert not missing, f"config keys without a description in their dataclass's Attributes: section: {missing}"


def test_every_exported_name_has_a_docstring():
    missing = docgen.undocumented_api()
    assert not missing, f"names in __all__ without a docstring: {missing}"


def test_attribute_docs_reads_continuations_and_stops_at_the_next_section():
    class Example:
        """Summary.

        Attributes:
            alpha: First line
                and its continuation.
            beta (int): Second.

        Note:
            gamma: not an attribute.
        """

    assert docgen.attribute_docs(Example) == {"alpha": "First line and its continuation.", "beta": "Second."}


def test_yaml_check_rejects_an_unknown_key(tmp_path):
    with pytest.raises(Exception, match="unknown key 'train.epoch'"):
        check_yaml("train:\n  epoch: 5\n", "page.md:1", tmp_path)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_runs(page, tmp_path, monkeypatch, capsys):
    blocks = [b for b in code_blocks(page) if b.marker != "not run"]
    if not blocks:
        pytest.skip(f"{page.name} has no block to run")
    for name in LINKED:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRAPHREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(graphrec.config, "load_config", tiny_load_config)
    monkeypatch.setattr(graphrec.pipeline, "load_config", tiny_load_config)
    namespace: dict = {"__name__": "__docs__"}
    printed = ""
    for block in blocks:
        if block.marker == "output":
            check_output(block.text, printed, block.where, numbers_vary=block.argument == "numbers vary")
            continue
        if block.marker == "file":
            if block.language == "yaml":
                check_yaml(block.text, block.where, tmp_path)
            target = tmp_path / block.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text, encoding="utf-8")
            continue
        if block.marker == "example":
            namespace.update(runpy.run_path(str(ROOT / block.argument), run_name="__main__"))
            EXAMPLE_CHECKS[block.argument](namespace)
        elif block.language == "python":
            exec(compile(block.text, block.where, "exec"), namespace)
        elif block.language in ("bash", "sh", "shell"):
            extra = "".join(run_command(argv, block.where, tmp_path) for argv in commands(block.text))
            captured = capsys.readouterr()
            printed = captured.out + captured.err + extra
            continue
        elif block.language == "yaml":
            check_yaml(block.text, block.where, tmp_path)
            continue
        captured = capsys.readouterr()
        printed = captured.out + captured.err
