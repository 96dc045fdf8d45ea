"""A run folder keeps one identity and a true record: reruns on other episodes or labelled subsets
are refused before anything is rewritten, the command's record (.hydra/) is the last accepted
run's, and a folder or file that cannot be written stops the run at once, never after scoring."""

import csv
import os
import subprocess
from pathlib import Path

import pytest

from medfew.evaluation import compare
from medfew.evaluation.results import ResultsFile
from medfew.files import RunLock

EPISODES = [
    "data=bloodcells", "data.image_size=16", "protocol=episodes", "protocol.shots=[1]", "protocol.n_episodes=3",
    "protocol.n_query=5", "seeds=[0]", "learners=[prototype_pixels]", "report.reference=prototype_pixels", "report.n_resamples=200",
]  # fmt: skip
BUDGET = ["protocol.per_class=[5]", "protocol.fractions=[]", "seeds=[0]", "learners=[prototype_pixels]", "report.n_resamples=200"]
KEPT = ("results.csv", "data.json", "config_resolved.yaml", "summary.json", ".hydra/overrides.yaml")
ROOT = Path(__file__).resolve().parents[2]
SMOKE = ["experiment=bloodcells_fewshot", "learners=[prototype_pixels]", "protocol.shots=[1]", "protocol.n_episodes=3", "logger=none", "debug=smoke"]
RECORD = ("config.yaml", "hydra.yaml", "overrides.yaml")
#: a command run where no new file can be made in a folder, as a user finds a read-only folder (root writes there anyway)
DENIED = """
import errno, tempfile
from medfew import cli

def denied(*args, dir=None, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied", dir)

tempfile.TemporaryFile = denied
cli.main()
"""


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def snapshot(folder: Path) -> dict[str, str]:
    return {name: (folder / name).read_text() for name in KEPT if (folder / name).exists()}


@pytest.mark.parametrize(
    "change, differs",
    [
        ("protocol.n_way=2", "protocol.n_way: null there, 2 now"),
        ("protocol.episode_seed=1", "protocol.episode_seed: 0 there, 1 now"),
        ("protocol.n_query=4", "protocol.n_query: 5 there, 4 now"),
        ("protocol.n_episodes=4", "protocol.n_episodes: 3 there, 4 now"),
    ],
)
def test_a_rerun_on_other_episodes_is_refused_by_name(change, differs, bloodcells, compose_root, tmp_path):
    compare(compose_root("config", tmp_path, EPISODES))
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=rf"holds results of other tasks: fold 'all', shots=1, seed 0 .* split hash \w{{16}} there, \w{{16}} now; what differs: {differs}\. Use another run folder"):
        compare(compose_root("config", tmp_path, [*EPISODES, change]))
    assert snapshot(tmp_path) == before and list(before) == list(KEPT)  # nothing rewritten, the command's record included


def test_other_episode_options_are_refused_even_for_new_shots(bloodcells, compose_root, tmp_path):
    compare(compose_root("config", tmp_path, EPISODES))
    with pytest.raises(ValueError, match=r"holds results of another protocol: what differs: protocol.n_way: null there, 2 now\. Use another"):
        compare(compose_root("config", tmp_path, [*EPISODES, "protocol.shots=[5]", "protocol.n_way=2"]))


def test_more_shots_seeds_and_learners_extend_a_run_folder_that_then_resumes(bloodcells, compose_root, tmp_path):
    compare(compose_root("config", tmp_path, EPISODES))
    first = read_rows(tmp_path / "results.csv")
    grown = [*EPISODES, "protocol.shots=[1,5]", "seeds=[0,1]", "learners=[prototype_pixels,logreg_pixels]"]
    summary = compare(compose_root("config", tmp_path, grown))
    rows = read_rows(tmp_path / "results.csv")
    assert rows[: len(first)] == first and len(rows) == 2 * 2 * 2 * 3  # learners x shots x seeds x episodes
    assert summary["identical_splits"]
    compare(compose_root("config", tmp_path, grown))
    assert read_rows(tmp_path / "results.csv") == rows


def test_a_row_of_another_labelled_subset_is_refused(breastmnist, compose_root, tmp_path):
    compare(compose_root("config", tmp_path, BUDGET))
    rows = read_rows(tmp_path / "results.csv")
    ResultsFile(tmp_path / "results.csv").path.unlink()
    ResultsFile(tmp_path / "results.csv").append([row | {"split_hash": "0" * 16} for row in rows])
    with pytest.raises(ValueError, match="per_class=5, seed 0 .* split hash 0{16} there, .* the settings are the same, so the tasks drawn from them changed"):
        compare(compose_root("config", tmp_path, BUDGET))


def test_another_unlabeled_pool_is_refused(breastmnist, compose_root, tmp_path):
    compare(compose_root("config", tmp_path, BUDGET))
    with pytest.raises(ValueError, match='another protocol: what differs: protocol.unlabeled_pool: "train" there, "rest" now'):
        compare(compose_root("config", tmp_path, [*BUDGET, "protocol.unlabeled_pool=rest"]))


def test_a_read_only_results_file_stops_the_run_before_any_scoring(breastmnist, compose_root, tmp_path, monkeypatch):
    """Tests run as root, whom a file's mode does not stop: ``os.access`` answers here as it would for a user."""
    results = ResultsFile(tmp_path / "results.csv")
    results.append([])
    real_access = os.access

    def access(path, mode, **kwargs):
        return not (mode == os.W_OK and Path(path) == results.path) and real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(PermissionError, match=f"cannot write {results.path}: the file {results.path} is read-only"):
        compare(compose_root("config", tmp_path, BUDGET))
    assert results.read() == [] and not (tmp_path / "data.json").exists()


def test_rows_that_cannot_be_written_are_kept_beside_the_results(breastmnist, compose_root, tmp_path, full_disk):
    overrides = [*BUDGET, "learners=[prototype_pixels,logreg_pixels]", "report.reference=logreg_pixels"]
    kept = tmp_path / f"results.unsaved-{os.getpid()}.csv"
    with pytest.raises(OSError, match=rf"No space left on device; the rows scored since the last save \(1\) are kept in {kept}"):
        compare(compose_root("config", tmp_path, overrides))
    assert [row["learner"] for row in ResultsFile(kept).read()] == ["logreg_pixels"]
    assert [row["learner"] for row in ResultsFile(tmp_path / "results.csv").read()] == ["prototype_pixels"]


def medfew(python: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "medfew", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_refused_run_leaves_the_record_of_the_run_that_wrote_the_folder(scripts, data_env, tmp_path):
    folder = tmp_path / "run"
    scripts.run_ok([scripts.python, "-m", "medfew", "run", *SMOKE, f"hydra.run.dir={folder}"], data_env)
    record = {name: (folder / ".hydra" / name).read_text() for name in RECORD}
    assert "- protocol.n_episodes=3" in record["overrides.yaml"] and "  n_way: null\n" in record["config.yaml"]
    other = medfew(scripts.python, data_env, "run", *SMOKE, f"hydra.run.dir={folder}", "protocol.n_way=2")
    assert other.returncode != 0 and "what differs: protocol.n_way: null there, 2 now" in other.stderr
    with RunLock(folder):
        locked = medfew(scripts.python, data_env, "run", *SMOKE, f"hydra.run.dir={folder}", "seeds=[1]")
    assert locked.returncode != 0 and f"is writing to {folder}" in locked.stderr
    assert {name: (folder / ".hydra" / name).read_text() for name in RECORD} == record


@pytest.mark.slow
def test_audit_leaves_the_record_of_its_command(scripts, data_env, tmp_path):
    scripts.run_ok([scripts.python, "-m", "medfew", "audit", "data=breastmnist", f"hydra.run.dir={tmp_path}"], data_env)
    assert (tmp_path / ".hydra" / "overrides.yaml").read_text() == f"- data=breastmnist\n"
    assert (tmp_path / "duplicates.csv").exists()


@pytest.mark.parametrize("command", ["run", "metatrain", "audit"])
def test_a_run_folder_under_a_file_stops_the_command_with_one_line(command, scripts, data_env, tmp_path):
    """Root writes into read-only folders; a folder whose parent is a file cannot be made by anyone."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = medfew(scripts.python, data_env, command, f"hydra.run.dir={blocker}/run")
    expected = f"medfew {command}: cannot write to the run folder {blocker}/run (Not a directory); make it writable or choose another folder"
    assert done.returncode == 1 and "Traceback" not in done.stderr and done.stderr.strip().splitlines()[-1] == expected


def test_a_read_only_run_folder_stops_the_command_with_one_line(scripts, data_env, tmp_path):
    """Root writes into read-only folders, so the command runs with new files refused (``DENIED``)."""
    done = subprocess.run(
        [scripts.python, "-c", DENIED, "run", f"hydra.run.dir={tmp_path}"], cwd=ROOT, env=data_env, capture_output=True, text=True, timeout=300
    )
    expected = f"medfew run: cannot write to the run folder {tmp_path} (Permission denied); make it writable or choose another folder"
    assert done.returncode == 1 and "Traceback" not in done.stderr and done.stderr.strip().splitlines()[-1] == expected
