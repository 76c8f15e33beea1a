"""Notebooks are thin and committed clean: checked statically (nbval executes them)."""

from __future__ import annotations

import ast
import re

import nbformat
import pytest

from helpers import config

NOTEBOOKS = sorted(config.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; run `make strip`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_tagged_parameters_cell_of_typed_commented_assignments(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected one cell tagged 'parameters'"
    for line in tagged[0].source.splitlines():
        if line.strip():
            assert re.match(r"^\w+: .+ = .+  # .+", line), f"{path.name}: parameter line without type or comment: {line!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_code_is_thin(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Lambda, ast.For, ast.While)), (
                f"{path.name}: logic belongs in src/helpers/, found {type(node).__name__} in:\n{cell.source}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not re.search(r"\.(csv|parquet|jsonl?)\b|data/", node.value), (
                    f"{path.name}: literal path {node.value!r} outside the parameters cell")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_reads_every_parameter_the_runner_checks(path):
    """papermill skips a line it cannot parse (a second '=' in the comment, a 'str | None' annotation) and then
    warns 'Passed unknown parameter' on every run that sets it."""
    import papermill

    from helpers import report

    seen = papermill.inspect_notebook(str(path))
    assert set(seen) == set(report.notebook_parameters(path))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stakeholder_prose_carries_no_analyst_instructions(path):
    """File paths, parameters and notebook plumbing belong in cells tagged ``analyst`` (shown only in JupyterLab)."""
    import re

    from helpers.report import HIDDEN_CELL_TAGS

    assert "analyst" in HIDDEN_CELL_TAGS
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown" or "analyst" in cell.metadata.get("tags", []):
            continue
        found = re.findall(r"(?i)\b(?:data|config|notebooks|reports)/|\.(?:parquet|ipynb|yaml)\b|parameters? (?:below|cell)"
                           r"|change the parameters|the \w+ notebook", cell.source)
        assert not found, (path.name, found, cell.source[:120])
