"""Report rows, averages, tables and scores.npz from a hand-made result."""
import csv

import numpy as np
import pytest

from gaia_openood.eval.metrics import ood_metrics
from gaia_openood.eval.report import format_tables, metric_rows, save_scores, write_csv
from gaia_openood.eval.scoring import EvalResult, MethodRecord


def make_result(bad_scores=False):
    rng = np.random.default_rng(0)
    conf = {
        "good": {"id": rng.normal(2, 1, 50), "a": rng.normal(0, 1, 30), "b": rng.normal(1, 1, 20)},
        "poor": {"id": rng.normal(0, 1, 50), "a": rng.normal(0, 1, 30), "b": rng.normal(0.5, 1, 20)},
    }
    if bad_scores:
        conf["poor"]["b"][3] = np.nan
    return EvalResult(
        benchmark="hand",
        methods=[MethodRecord("good", "Good", "test", "-"), MethodRecord("poor", "Poor", "test", "-")],
        skipped={"knn": "no ID training subset"},
        sets=[("id", "id", 50), ("a", "near", 30), ("b", "near", 20)],
        conf={k: {n: v.astype(np.float32) for n, v in d.items()} for k, d in conf.items()},
        id_labels=np.arange(50) % 2,
        id_pred=np.r_[np.arange(40) % 2, np.ones(10, int)],
        seconds={"good": 1.0, "poor": 2.0, "forward": 0.5},
        device="cpu",
    )


def test_rows_and_group_average():
    result = make_result()
    rows = metric_rows(result)
    assert [(r.method, r.dataset) for r in rows] == [
        ("good", "a"), ("good", "b"), ("good", "nearood"), ("poor", "a"), ("poor", "b"), ("poor", "nearood")
    ]
    a = ood_metrics(result.conf["good"]["id"], result.conf["good"]["a"])
    b = ood_metrics(result.conf["good"]["id"], result.conf["good"]["b"])
    assert rows[2].metrics.auroc == pytest.approx((a.auroc + b.auroc) / 2)
    assert rows[2].n_ood == 50 and rows[0].accuracy == pytest.approx(0.9)


def test_tables_mark_the_best_and_say_what_they_report():
    result = make_result()
    rows = metric_rows(result, "v1.5")
    markdown = format_tables(result, rows, fpr_definition="v1.5", markdown=True)
    assert "OpenOOD v1.5" in markdown and "far-OOD" not in markdown.split("### AUROC")[1]
    good_auroc = 100 * next(r for r in rows if r.method == "good" and r.dataset == "nearood").metrics.auroc
    assert f"**{good_auroc:.2f}**" in markdown
    assert "knn: no ID training subset" in markdown and "ID accuracy of the classifier: 90.00%" in markdown
    text = format_tables(result, rows, fpr_definition="v1.5")
    assert f"{good_auroc:.2f}*" in text and "**" not in text


def test_non_finite_scores_give_na_not_a_crash(tmp_path):
    result = make_result(bad_scores=True)
    rows = metric_rows(result)
    poor = {r.dataset: r.metrics for r in rows if r.method == "poor"}
    assert np.isnan(poor["b"].auroc) and np.isnan(poor["nearood"].auroc) and not np.isnan(poor["a"].auroc)
    assert "n/a" in format_tables(result, rows)
    write_csv(rows, tmp_path / "m.csv")
    with open(tmp_path / "m.csv") as handle:
        assert next(r for r in csv.DictReader(handle) if r["method"] == "poor" and r["dataset"] == "b")["AUROC"] == "nan"


def test_scores_npz_layout(tmp_path):
    result = make_result()
    save_scores(result, tmp_path / "s.npz", "main")
    scores = np.load(tmp_path / "s.npz")
    assert list(scores["methods"]) == ["good", "poor"] and list(scores["sets"]) == ["id", "a", "b"]
    assert list(scores["groups"]) == ["id", "near", "near"] and str(scores["fpr_definition"]) == "main"
    assert np.array_equal(scores["conf/poor/b"], result.conf["poor"]["b"])
    assert np.array_equal(scores["pred"], result.id_pred) and scores["conf/good/id"].dtype == np.float32
