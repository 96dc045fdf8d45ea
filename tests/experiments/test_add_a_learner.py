"""The "add a learner" recipe: Matching Networks, added as one file + one config, shows up in a
comparison table next to the shipped learners with no other change."""

from pathlib import Path

from medfew.evaluation import compare


def test_matching_net_appears_in_the_comparison_table(bloodcells, compose_root, tmp_path: Path):
    cfg = compose_root(
        "config",
        tmp_path,
        [
            "experiment=bloodcells_fewshot", "debug=smoke", "learners=[prototype_pixels,matching_net]",
            "report.reference=prototype_pixels", "protocol.shots=[5]",
        ],
    )  # fmt: skip
    summary = compare(cfg)
    assert summary["learners"] == ["prototype_pixels", "matching_net"]
    cell = summary["results"]["acc"]["matching_net"]["shots=5"]
    assert cell["n"] == 2 and 0 <= cell["mean"] <= 1 and cell["vs_reference"]["n"] == 2
    assert "| matching_net |" in (tmp_path / "summary.md").read_text()
    assert list((tmp_path / "work").glob("matching_net-*/*/seed0/checkpoints/last.ckpt"))  # it meta-trained on base classes
