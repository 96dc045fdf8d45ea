"""The notebooks execute at tiny settings (MEDFEW_NOTEBOOK_SMOKE=1) and are stored without outputs."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("MEDFEW_DATA") or ROOT.parent / "shared" / "data")  # as tests/conftest.py

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "add_a_learner", "your_own_data"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path):
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert cells and all(not c.outputs and c.execution_count is None for c in cells)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_at_smoke_settings(path: Path, breastmnist, bloodcells, brain_mri, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in {
        "MEDFEW_NOTEBOOK_SMOKE": "1",
        "MEDFEW_NOTEBOOK_OUT": str(tmp_path),
        "MEDFEW_DATA": str(DATA_DIR),
    }.items():
        monkeypatch.setenv(name, value)  # the kernel inherits the environment
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    tables = [o for c in notebook.cells for o in c.get("outputs", []) if "| learner |" in o.get("data", {}).get("text/markdown", "")]
    assert tables, "no comparison table shown"
    if path.stem == "quickstart":
        assert images, "no plot shown"
    if path.stem == "your_own_data":
        assert len(tables) == 4 and "my_scans" in tables[-1]["data"]["text/markdown"]  # 2 folders x (few-shot, k-fold)
        assert "patients in two parts: 0" in "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    if path.stem == "add_a_learner":
        assert "| nearest_neighbour |" in tables[0]["data"]["text/markdown"] and "| matching_net |" in tables[0]["data"]["text/markdown"]
