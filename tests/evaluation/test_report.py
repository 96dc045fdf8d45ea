"""summary.md / summary.json / plots from constructed result rows with known statistics."""

import csv
import json
import warnings
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

from medfew.evaluation.plots import plot_bars, plot_lines
from medfew.evaluation.report import SMOKE, markdown, summarize, summary_table, to_frame, write_report
from medfew.evaluation.results import COLUMNS

CONFUSION = json.dumps({"classes": ["benign", "malignant"], "counts": [[1, 0], [1, 2]]})


def row(learner: str, seed: int, bal_acc: float, setting: str = "per_class=5", **changes) -> dict:
    """A result row as the csv module reads it back: every value a string."""
    kind, value = setting.split("=")
    base = dict(
        dataset="toy", protocol="label_budget", fold="official", data_hash="0123456789abcdef", learner=learner,
        learner_hash="h", setting=setting, kind=kind, value=value, seed=seed, split_hash=f"s{seed}", episode=0,
        n_way=2, n_present=2, n_support=10, n_query=4, acc=bal_acc, bal_acc=bal_acc, macro_f1=bal_acc, auroc=bal_acc,
        ece=0.1, seconds=0.1, per_class_acc="{}", confusion=CONFUSION,
    )  # fmt: skip
    return {k: str(v) for k, v in (base | changes).items()}


def report(rows: list[dict], metrics=("bal_acc",), reference="finetune", **kwargs) -> tuple[dict, str]:
    summary = summarize(to_frame(rows), metrics, reference, n_resamples=1000, **kwargs)
    return summary, markdown(summary, n_resamples=1000)


def table_row(text: str, learner: str) -> str:
    """The first line of the first metric table that starts with ``learner``."""
    return next(line for line in text.split("## ", 2)[1].splitlines() if line.startswith(f"| {learner} |"))


def test_summary_statistics_marks_and_plots(tmp_path: Path):
    # finetune 0.6, 0.7, 0.8 (mean 0.7); other = finetune + 0.1 on every seed; second setting only for finetune
    rows = [row("finetune", s, v) for s, v in enumerate([0.6, 0.7, 0.8])]
    rows += [row("other", s, v + 0.1) for s, v in enumerate([0.6, 0.7, 0.8])]
    rows += [row("finetune", s, 0.9, "per_class=20") for s in range(3)]
    summary = write_report(rows, tmp_path, metrics=["bal_acc", "ece"], plot_metrics=["bal_acc"], n_resamples=1000)
    cell = summary["results"]["bal_acc"]["finetune"]["per_class=5"]
    # 27 equally likely resamples of 3 seeds; the mean 0.6 has probability 1/27 > 2.5%: interval [0.6, 0.8]
    assert (cell["mean"], cell["low"], cell["high"], cell["n"]) == pytest.approx((0.7, 0.6, 0.8, 3))
    versus = summary["results"]["bal_acc"]["other"]["per_class=5"]["vs_reference"]
    assert versus["mean_diff"] == pytest.approx(0.1) and versus["p_wilcoxon"] == pytest.approx(0.25)
    assert versus["p_wilcoxon_holm"] == pytest.approx(0.25)  # a family of one comparison
    assert "per_class=20" not in summary["results"]["bal_acc"]["other"]
    assert summary["identical_splits"] and summary["folds"] == ["official"]
    text = (tmp_path / "summary.md").read_text()
    assert "| other | **0.800 [0.700, 0.900], n=3** | not run |" in text
    assert "| finetune | 0.700 [0.600, 0.800], n=3 | 0.900 [0.900, 0.900], n=3 |" in text  # alone in its column: no "best"
    assert "Holm" in text and "Folds: official (data 0123456789abcdef)" in text
    assert json.loads((tmp_path / "summary.json").read_text())["results"]["bal_acc"]["other"]["per_class=5"]["n"] == 3
    assert (tmp_path / "label_efficiency_per_class.png").stat().st_size > 0
    assert (tmp_path / "confusion_per_class_5.png").stat().st_size > 0
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temporary left


def test_rows_read_back_from_csv_keep_nan_and_refuse_inf(tmp_path: Path):
    rows = [row("finetune", 0, 0.7, auroc="nan", n_present=1), row("finetune", 1, 0.8, auroc="")]
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with path.open(newline="") as f:
        read = list(csv.DictReader(f))
    frame = to_frame(read)
    assert frame["auroc"].isna().all() and frame["bal_acc"].tolist() == [0.7, 0.8]
    summary, text = report(read, metrics=("auroc", "bal_acc"))
    assert summary["results"]["auroc"]["finetune"]["per_class=5"]["n"] == 0
    assert "| finetune | n/a (NaN in the results (cause not recorded); one class in the evaluated labels: AUROC needs two) |" in text
    with pytest.raises(ValueError, match=r"auroc = inf outside \[0, 1\] \(finetune, per_class=5, seed 0\)"):
        to_frame([row("finetune", 0, 0.7, auroc="inf")])
    with pytest.raises(ValueError, match=r"n_present = 0.0 \(classes present in the evaluated labels\) must be >= 1 \(finetune, per_class=5\)"):
        to_frame([row("finetune", 0, 0.7, n_present=0)])
    with pytest.raises(ValueError, match="column acc: cannot read 'high' as a number"):
        to_frame([row("finetune", 0, 0.7, acc="high")])
    with pytest.raises(ValueError, match=r"lack the columns \['fold', 'data_hash'\]"):
        to_frame([{k: v for k, v in row("finetune", 0, 0.7).items() if k not in ("fold", "data_hash")}])


def test_partly_undefined_cells_count_and_explain_their_missing_units():
    rows = [row("finetune", s, 0.7 + s / 10, auroc="nan" if s == 0 else "0.9", n_present=1 if s == 0 else 2) for s in range(3)]
    summary, text = report(rows, metrics=("auroc",))
    cell = summary["results"]["auroc"]["finetune"]["per_class=5"]
    assert (cell["mean"], cell["n"], cell["missing"]) == (pytest.approx(0.9), 2, 1)
    assert "+1 n/a" in text and "- finetune, per_class=5: 1 of 3 units n/a (one class in the evaluated labels: AUROC needs two)" in text


def test_one_unit_has_no_interval_and_no_test():
    summary, text = report([row("finetune", 0, 0.7), row("other", 0, 0.8)])
    assert "| finetune | 0.700 (n = 1: no interval) |" in text
    assert "| other | **0.800 (n = 1: no interval)** |" in text  # "best" needs no interval; † needs a test
    assert "| other | per_class=5 | +0.100 | – (n = 1: no test) | – | – | – | 1 |" in text
    assert "†" not in table_row(text, "other")


def test_no_paired_tests_without_the_reference_learner():
    rows = [row(lr, s, v + s / 10) for lr, v in (("a", 0.6), ("b", 0.7)) for s in range(3)]
    summary, text = report(rows, reference="finetune")
    assert summary["reference"] is None and summary["requested_reference"] == "finetune"
    assert "No paired tests: the reference `finetune` is none of the learners here." in text
    assert "†" not in text and "Paired comparison" not in text
    assert all(c["vs_reference"] is None for cells in summary["results"]["bal_acc"].values() for c in cells.values())


def test_only_learners_above_chance_are_bolded_ece_included():
    # n_way = 2: chance balanced accuracy 0.5. "guess" is at chance with a perfect ECE of 0.0
    rows = [row("good", s, 0.9, ece=0.2) for s in range(3)] + [row("guess", s, 0.5, ece=0.0) for s in range(3)]
    summary, text = report(rows, metrics=("bal_acc", "ece", "acc"), reference=None)
    best = {m: {lr for lr, cells in summary["results"][m].items() if cells["per_class=5"]["best"]} for m in ("bal_acc", "ece", "acc")}
    assert best == {"bal_acc": {"good"}, "ece": {"good"}, "acc": {"good"}}
    # accuracy's chance is the majority-class share: 3 of the 4 images per row are "malignant"
    assert summary["settings"][0]["chance"] == {"acc": 0.75, "bal_acc": 0.5, "macro_f1": 0.5, "auroc": 0.5, "ece": None}
    guesses = [row(lr, s, 0.5, ece=e) for lr, e in (("guess", 0.0), ("other guess", 0.2)) for s in range(3)]
    at_chance, text = report(guesses, metrics=("ece",), reference=None)
    assert not any(cells["per_class=5"]["best"] for cells in at_chance["results"]["ece"].values()) and "**0." not in text


def test_a_mean_at_chance_after_float32_rounding_is_never_bold():
    # 0.5 as a float32 mean reads back as 0.5000000059604645: above 0.5 only by rounding
    rows = [row("guess", s, 0.5000000059604645) for s in range(3)] + [row("worse", s, 0.4) for s in range(3)]
    summary, text = report(rows, metrics=("bal_acc", "auroc", "macro_f1"), reference=None)
    assert not any(c["best"] for by_learner in summary["results"].values() for cells in by_learner.values() for c in cells.values())
    assert "**" not in text.split("## ", 1)[1]


@pytest.mark.parametrize(
    "rows, instead",
    [
        ([row("finetune", s, 0.7 + s / 10) for s in range(3)], "No paired tests: `finetune` is the only learner here."),
        ([row("finetune", 0, 0.7), row("other", 0, 0.8)], "No paired tests: no learner has 2 or more units paired with `finetune`."),
    ],
)
def test_the_dagger_is_explained_only_when_a_paired_test_ran(rows, instead):
    summary, text = report(rows)
    assert summary["reference"] == "finetune"
    assert "†" not in text and instead in text


def test_holm_correction_spans_the_table():
    # 6 seeds, other above finetune on every one: exact Wilcoxon p = 2 / 64 < 0.05 per comparison
    def rows(settings):
        return [row(lr, s, 0.6 + s / 50 + (lr == "other") * (0.05 + s / 100), st) for st in settings for lr in ("finetune", "other") for s in range(6)]

    _, one = report(rows(["per_class=5"]))
    assert table_row(one, "other").startswith("| other | **0.725 [") and table_row(one, "other").endswith(", n=6** † |")
    summary, two = report(rows(["per_class=5", "per_class=10"]))  # two comparisons: Holm p = 2 x 2 / 64 > 0.05
    versus = summary["results"]["bal_acc"]["other"]["per_class=5"]["vs_reference"]
    assert versus["p_wilcoxon"] == pytest.approx(2 / 64) and versus["p_wilcoxon_holm"] == pytest.approx(4 / 64)
    assert "†" not in table_row(two, "other")


def test_kfold_units_pool_folds_and_pair_by_fold_and_seed():
    folds = {f"repeat0-fold{k}": f"{k:016x}" for k in range(3)}
    rows = [
        row(lr, s, 0.6 + k / 10 + s / 100 + (lr == "other") * 0.05, fold=fold, data_hash=h)
        for lr in ("finetune", "other") for k, (fold, h) in enumerate(folds.items()) for s in range(2)
    ]  # fmt: skip
    summary, text = report(rows)
    cell = summary["results"]["bal_acc"]["other"]["per_class=5"]
    assert cell["n"] == 6 and cell["mean"] == pytest.approx(0.755)
    assert cell["vs_reference"]["n"] == 6 and cell["vs_reference"]["mean_diff"] == pytest.approx(0.05)
    assert summary["folds"] == list(folds) and summary["data_hashes"] == {fold: [h] for fold, h in folds.items()}
    assert summary["settings"][0]["unit"] == "fold x seed" and "Units (what n counts): fold x seed. Folds: repeat0-fold0 (data 0000000000000000), repeat0-fold1" in text


def test_episodes_are_units_averaged_over_seeds():
    rows = [row("finetune", s, 0.5 + e / 10 + s / 100, "shots=5", episode=e) for e in range(4) for s in range(2)]
    summary, _ = report(rows)
    cell = summary["results"]["bal_acc"]["finetune"]["shots=5"]
    assert cell["n"] == 4 and cell["mean"] == pytest.approx(0.655)
    assert summary["settings"][0]["unit"] == "fold x episode"


def test_one_learners_rows_of_different_data_in_one_fold_are_refused():
    rows = [row("finetune", 0, 0.7), row("finetune", 1, 0.6, data_hash="ffffffffffffffff")]
    with pytest.raises(ValueError, match=r"finetune, fold 'official': rows of different data.*0123456789abcdef \(per_class=5\) vs ffffffffffffffff \(per_class=5\)"):
        report(rows)


def test_learners_on_different_data_are_flagged():
    summary, text = report([row("finetune", 0, 0.7), row("other [data.image_size=64]", 0, 0.6, data_hash="ffffffffffffffff")])
    assert summary["data_hashes"] == {"official": ["0123456789abcdef", "ffffffffffffffff"]}
    assert "WARNING: learners were scored on different data" in text


def test_different_splits_are_flagged():
    summary, text = report([row("finetune", 0, 0.7), row("other", 0, 0.6, split_hash="elsewhere")])
    assert not summary["identical_splits"]
    assert "WARNING" in text


def test_header_and_smoke_warning():
    header = {"smoke": True, "novel classes": ["benign", "malignant"], "data fingerprints": {"official": "0123456789abcdef"}}
    summary, text = report([row("finetune", 0, 0.7)], header=header)
    lines = text.splitlines()
    assert lines[2] == f"> **{SMOKE}**" and SMOKE == "SMOKE RUN: tiny settings, the numbers mean nothing"
    assert "- novel classes: benign, malignant" in lines and "- data fingerprints: official: 0123456789abcdef" in lines
    assert "- smoke: true" in lines and summary["header"] == header
    _, plain = report([row("finetune", 0, 0.7)])
    assert "SMOKE" not in plain


def test_summary_table_holds_numbers():
    rows = [row(lr, s, v + s / 10) for lr, v in (("finetune", 0.5), ("other", 0.6)) for s in range(3)]
    summary, _ = report(rows + [row("other", 0, 0.9, "per_class=10")], metrics=("bal_acc", "auroc"))
    table = summary_table(summary)
    assert len(table) == 2 * 3  # metrics x (learner, setting) cells
    assert {c: str(table[c].dtype) for c in ("mean", "low", "high", "n", "value", "p_wilcoxon_holm")} == {
        "mean": "float64", "low": "float64", "high": "float64", "n": "int64", "value": "float64", "p_wilcoxon_holm": "float64",
    }  # fmt: skip
    other = table[(table.metric == "bal_acc") & (table.learner == "other") & (table.setting == "per_class=5")].iloc[0]
    assert (other["mean"], other["n"], other["mean_diff"], other["p_wilcoxon"]) == pytest.approx((0.7, 3, 0.1, 0.25))
    single = table[(table.metric == "bal_acc") & (table.setting == "per_class=10")].iloc[0]
    assert np.isnan(single["low"]) and single["reason"] == "n = 1: no interval" and single["value"] == 10


def draws(character: str) -> bool:
    """Whether a font installed here, other than a box-for-everything one, has ``character``."""
    fonts = [entry.fname for entry in font_manager.fontManager.ttflist if not entry.name.startswith("Last Resort")]
    return any(ord(character) in FT2Font(font).get_charmap() for font in fonts)


def test_class_names_in_other_scripts_are_drawn_or_named_once(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    confusion = json.dumps({"classes": ["肺炎", "Ödem", "α-cell"], "counts": [[2, 1, 0], [0, 3, 0], [1, 0, 2]]})
    rows = [row(lr, s, 0.6 + s / 10, n_way=3, n_present=3, confusion=confusion) for lr in ("finetune", "other") for s in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_report(rows, tmp_path, metrics=["bal_acc"], plot_metrics=["bal_acc"], n_resamples=200)
    assert not [w for w in caught if "missing from font" in str(w.message)]
    named = [r.getMessage() for r in caplog.records if "no installed font draws" in r.getMessage()]
    if draws("肺"):
        assert not named
    else:  # Greek and accents: matplotlib's DejaVu Sans has them
        assert len(named) == 1 and named[0].startswith("no installed font draws 肺炎: the plots show boxes there")
        assert "fonts-noto-cjk" in named[0]


def test_plots_one_setting_as_bars_and_confusions_in_a_grid(tmp_path: Path):
    learners = [f"learner{i}" for i in range(6)]
    rows = [row(lr, s, 0.6 + i / 20 + s / 50) for i, lr in enumerate(learners) for s in range(2)]
    write_report(rows, tmp_path, metrics=["bal_acc", "auroc"], reference="learner0", n_resamples=200, header={"smoke": True})
    height, width, _ = matplotlib.image.imread(tmp_path / "confusion_per_class_5.png").shape
    assert width / height < 2  # 2 x 3 panels, not a 6:1 strip
    assert (tmp_path / "label_efficiency_per_class.png").stat().st_size > 0


def test_a_budget_axis_names_the_labelled_images_behind_each_fraction():
    rows = [
        row("a", seed, 0.6, setting, fold=f"fold{fold}", n_support=n + fold)
        for setting, n in (("fraction=0.01", 3), ("fraction=1", 45)) for fold in (0, 1) for seed in (0, 1)
    ]  # fmt: skip
    summary = summarize(to_frame(rows), ["bal_acc"], None, n_resamples=100)
    assert [s["labelled"] for s in summary["settings"]] == ["3-4", "45-46"]  # fold 1 trains on one more image
    fig, (lines, bars) = plt.subplots(1, 2)
    plot_lines(lines, summary, "bal_acc", summary["settings"], {"a": "C0"})
    plot_bars(bars, summary, "bal_acc", summary["settings"][0], {"a": "C0"})
    assert [t.get_text() for t in lines.get_xticklabels()] == ["1\n3-4 img", "100\n45-46 img"]
    assert bars.get_xlabel() == "learner (% of training labels: 1, 3-4 images)"
    plt.close(fig)


def test_identical_splits_holds_only_when_each_seed_saw_the_same_tasks():
    # both learners hold the splits x and y, but on other seeds: seed 0 of one is not seed 0 of the other
    crossed = [row("finetune", 0, 0.7, split_hash="x"), row("finetune", 1, 0.8, split_hash="y")]
    crossed += [row("other", 0, 0.6, split_hash="y"), row("other", 1, 0.7, split_hash="x")]
    summary, text = report(crossed)
    assert not summary["identical_splits"] and "split hashes differ" in text
    same = [row(learner, seed, 0.7) for learner in ("finetune", "other") for seed in (0, 1)]
    assert report(same)[0]["identical_splits"]


def test_rows_of_one_seed_on_two_episode_sets_are_never_pooled():
    rows = [row("finetune", 0, 0.7, split_hash="x", episode=0), row("finetune", 0, 0.5, split_hash="y", episode=1)]
    with pytest.raises(ValueError, match=r"finetune, fold 'official', per_class=5, seed 0: rows of different tasks .* split_hash x vs y"):
        report(rows)
