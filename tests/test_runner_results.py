"""Seed aggregation, OpenOOD's CSV format, the summary table and the leaderboard files (no OpenOOD)."""
import csv
import os

import numpy as np
import pytest

from gaia_openood.runner.leaderboard import COLUMNS, EntryInfo, leaderboard_row, write_leaderboard
from gaia_openood.runner.results import (MetricsTable, aggregate, format_mean_std, format_plain,
                                         write_openood_csv, write_summary)

ROWS = ("cifar100", "tin", "nearood", "mnist", "farood")
COLS = ("FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC")


def table(offset):
    values = np.arange(25, dtype=float).reshape(5, 5) + offset
    return MetricsTable(ROWS, COLS, values)


def test_aggregate_is_mean_and_population_std_over_runs():
    result = aggregate([table(0.0), table(1.0), table(5.0)])
    np.testing.assert_allclose(result.mean, table(2.0).values)
    np.testing.assert_allclose(result.std, np.full((5, 5), np.std([0.0, 1.0, 5.0])))
    assert result.runs == 3
    assert result.cell("tin", "AUROC") == format_mean_std(8.0, np.std([0.0, 1.0, 5.0]))


def test_aggregate_refuses_tables_of_another_layout():
    other = MetricsTable(ROWS[::-1], COLS, np.zeros((5, 5)))
    with pytest.raises(ValueError, match="disagree"):
        aggregate([table(0.0), other])
    with pytest.raises(ValueError, match="no runs"):
        aggregate([])
    with pytest.raises(ValueError, match="exactly one run"):
        aggregate([table(0.0), table(1.0)], plain=True)


def test_metrics_table_checks_its_shape():
    with pytest.raises(ValueError, match="do not fit"):
        MetricsTable(ROWS, COLS, np.zeros((4, 5)))


@pytest.mark.parametrize("mean, std, text", [
    (88.034, 0.254, "88.03 \u00b1 0.25"),
    (100.0, 0.0, "100.00 \u00b1 0.00"),
    (5.005, 12.3456, "5.00 \u00b1 12.35"),   # Python's rounding of 5.005 (binary 5.00499...)
    (float("nan"), float("nan"), "nan \u00b1 nan"),
])
def test_mean_std_cells_are_formatted_like_openood(mean, std, text):
    assert format_mean_std(mean, std) == text


def test_plain_cells_follow_pandas_float_format():
    assert format_plain(76.015) == "{:.2f}".format(76.015)
    assert format_plain(float("nan")) == ""


def test_openood_csv_bytes(tmp_path):
    values = np.array([[10.0, 90.0, 80.0, 70.0, 95.0]] * 5)
    result = aggregate([MetricsTable(ROWS, COLS, values), MetricsTable(ROWS, COLS, values + 1.0)])
    path = write_openood_csv(str(tmp_path / "ood" / "msp.csv"), result)
    cells = "10.50 \u00b1 0.50,90.50 \u00b1 0.50,80.50 \u00b1 0.50,70.50 \u00b1 0.50,95.50 \u00b1 0.50"
    expected = ",FPR@95,AUROC,AUPR_IN,AUPR_OUT,ACC\n" + "".join(f"{row},{cells}\n" for row in ROWS)
    with open(path, "rb") as handle:
        assert handle.read() == expected.replace("\n", os.linesep).encode("utf-8")


def test_single_model_csv_has_plain_cells(tmp_path):
    result = aggregate([table(0.125)], plain=True)
    path = write_openood_csv(str(tmp_path / "msp.csv"), result)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["", *COLS]
    assert rows[1] == ["cifar100", "0.12", "1.12", "2.12", "3.12", "4.12"]


def test_summary_puts_methods_side_by_side(tmp_path):
    results = {"msp": aggregate([table(0.0)]), "gaia_a": aggregate([table(1.0), table(3.0)])}
    csv_path, md_path = write_summary(str(tmp_path / "summary_ood"), results, {"gaia_a": "GAIA-A"}, "title")
    with open(csv_path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["Postprocessor", "AUROC cifar100", "AUROC tin", "AUROC nearood", "AUROC mnist",
                       "AUROC farood", "FPR@95 nearood", "FPR@95 farood", "ACC"]
    assert rows[1][0] == "msp" and rows[2][0] == "GAIA-A"
    assert rows[2][3] == format_mean_std(13.0, 1.0)   # AUROC of nearood (row 2, column 1) = 10 + 1 + 2
    assert rows[2][-1] == format_mean_std(16.0, 1.0)  # ACC of nearood
    markdown = open(md_path).read()
    assert markdown.startswith("# title\n")
    assert "| GAIA-A | " in markdown and "FPR@95" in markdown


def test_leaderboard_row_takes_split_aurocs_and_accuracy():
    result = aggregate([table(0.0), table(2.0)])
    row = leaderboard_row(result, "GAIA-A", EntryInfo(arch="ResNet50", description="torchvision ckpt"))
    assert list(row) == list(COLUMNS)
    assert row["Near-OOD_AUROC"] == format_mean_std(12.0, 1.0)
    assert row["Far-OOD_AUROC"] == format_mean_std(22.0, 1.0)
    assert row["ID_Accuracy"] == format_mean_std(15.0, 1.0)
    assert (row["Training"], row["Outlier_Data"], row["Arch"]) == ("CrossEntropy", "No", "ResNet50")


def test_leaderboard_files(tmp_path):
    results = {"msp": aggregate([table(0.0)], plain=True), "gaia_z": aggregate([table(1.0)], plain=True)}
    csvs = {m: write_openood_csv(str(tmp_path / "ood" / f"{m}.csv"), r) for m, r in results.items()}
    paths = write_leaderboard(str(tmp_path / "board"), "imagenet1k_ood.csv", results,
                              {"msp": "MSP", "gaia_z": "GAIA-Z"}, csvs, EntryInfo(description="torchvision ckpt"))
    assert [os.path.basename(p) for p in paths] == ["imagenet1k_ood.csv", "imagenet1k_ood_msp.csv",
                                                   "imagenet1k_ood_gaia_z.csv"]
    text = open(paths[0]).read().splitlines()
    assert text[0] == ",".join(COLUMNS)
    assert text[2] == "CrossEntropy,GAIA-Z,12.00,22.00,15.00,No,ResNet18,torchvision ckpt"
    assert open(paths[2], "rb").read() == open(csvs["gaia_z"], "rb").read()
