"""The study notebooks run headless, top to bottom, in fast mode (BAYES_BPS_FAST=1: tiny runs in
a temporary folder; about 20-35 s each on one thread). Any cell that raises fails the test."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # three notebooks: minutes

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_exist():
    assert [path.name[:3] for path in NOTEBOOKS] == ["01_", "02_", "03_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_in_fast_mode(path, monkeypatch, fast_work):
    monkeypatch.setenv("BAYES_BPS_FAST", "1")  # the kernel inherits this process's environment
    monkeypatch.setenv("BAYES_BPS_FAST_WORK", str(fast_work))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    final = notebook.cells[-1]
    assert final.cell_type == "code" and any(output.get("name") == "stdout" for output in final.outputs), \
        "the last cell should print the numbers the notebook found"
