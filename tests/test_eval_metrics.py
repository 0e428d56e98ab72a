"""OOD metrics against hand-computed values and independent formulas."""
import math

import numpy as np
import pytest

from gaia_openood.eval.metrics import OODMetrics, accuracy, average, ood_metrics, roc_points

# ID and OOD confidences small enough to work every metric out by hand (no ties):
# ranked by confidence: 0.9 I, 0.85 O, 0.8 I, 0.7 I, 0.4 I, 0.3 O, 0.2 O, 0.1 O
CONF_ID = np.array([0.9, 0.8, 0.7, 0.4])
CONF_OOD = np.array([0.85, 0.3, 0.2, 0.1])


def test_auroc_is_the_fraction_of_correctly_ordered_pairs():
    # 0.9 beats 4 OOD scores, 0.8, 0.7 and 0.4 beat 3 each: 13 of 16 pairs
    assert ood_metrics(CONF_ID, CONF_OOD).auroc == pytest.approx(13 / 16)


def test_fpr95_main_counts_id_flagged_at_95_percent_ood_recall():
    # flagging >= 95% of 4 OOD samples means all 4, so the threshold reaches 0.85,
    # which flags the ID samples 0.8, 0.7 and 0.4
    assert ood_metrics(CONF_ID, CONF_OOD, "main").fpr95 == pytest.approx(3 / 4)


def test_fpr95_v15_counts_ood_accepted_at_95_percent_id_recall():
    # accepting all 4 ID samples needs a threshold at 0.4, which accepts the OOD sample 0.85
    assert ood_metrics(CONF_ID, CONF_OOD, "v1.5").fpr95 == pytest.approx(1 / 4)


def test_aupr_in_is_the_trapezoid_area_of_the_id_precision_recall_curve():
    # (recall, precision) with ID positive: (0, 1) (1/4, 1) (1/4, 1/2) (1/2, 2/3) (3/4, 3/4) (1, 4/5)
    expected = 1 / 4 + (1 / 2 + 2 / 3) / 2 / 4 + (2 / 3 + 3 / 4) / 2 / 4 + (3 / 4 + 4 / 5) / 2 / 4
    assert ood_metrics(CONF_ID, CONF_OOD).aupr_in == pytest.approx(expected)
    assert expected == pytest.approx(23 / 30)


def test_aupr_out_is_the_trapezoid_area_of_the_ood_precision_recall_curve():
    # OOD positive: precision 1 up to recall 3/4, then 3 ID samples, then the last OOD at 4/7
    expected = 3 / 4 + (4 / 7 + 1 / 2) / 2 / 4
    assert ood_metrics(CONF_ID, CONF_OOD).aupr_out == pytest.approx(expected)


def test_perfect_reversed_and_tied_scores():
    perfect = ood_metrics([3.0, 4.0], [1.0, 2.0])
    assert perfect == OODMetrics(fpr95=0.0, auroc=1.0, aupr_in=1.0, aupr_out=1.0)
    reversed_ = ood_metrics([1.0, 2.0], [3.0, 4.0])
    assert reversed_.auroc == 0.0 and reversed_.fpr95 == 1.0
    assert ood_metrics([1.0, 1.0], [1.0, 1.0]).auroc == pytest.approx(0.5)


def test_auroc_matches_the_mann_whitney_statistic_with_ties():
    rng = np.random.default_rng(0)
    conf_id = rng.integers(0, 20, 300).astype(float)  # many ties
    conf_ood = rng.integers(-5, 15, 200).astype(float)
    greater = (conf_id[:, None] > conf_ood[None, :]).mean()
    ties = (conf_id[:, None] == conf_ood[None, :]).mean()
    assert ood_metrics(conf_id, conf_ood).auroc == pytest.approx(greater + ties / 2)


def test_fpr95_main_matches_a_direct_count_on_continuous_scores():
    rng = np.random.default_rng(1)
    conf_id = rng.normal(1.0, 1.0, 500)
    conf_ood = rng.normal(0.0, 1.0, 300)
    # smallest threshold that flags (conf <= t) at least 95% of the OOD samples
    t = np.sort(conf_ood)[math.ceil(0.95 * conf_ood.size) - 1]
    assert ood_metrics(conf_id, conf_ood, "main").fpr95 == pytest.approx(np.mean(conf_id <= t))
    # and the classic one: largest threshold that accepts (conf >= t) at least 95% of ID
    t = np.sort(conf_id)[::-1][math.ceil(0.95 * conf_id.size) - 1]
    assert ood_metrics(conf_id, conf_ood, "v1.5").fpr95 == pytest.approx(np.mean(conf_ood >= t))


def test_metrics_depend_only_on_the_order_of_the_scores():
    rng = np.random.default_rng(2)
    conf_id, conf_ood = rng.normal(0.5, 1, 80), rng.normal(0, 1, 60)
    a = ood_metrics(conf_id, conf_ood)
    b = ood_metrics(np.exp(conf_id) * 3 + 1, np.exp(conf_ood) * 3 + 1)
    assert a.as_dict() == pytest.approx(b.as_dict())


def test_roc_points_run_from_origin_to_corner():
    fpr, tpr = roc_points(CONF_ID, CONF_OOD)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="definition"):
        ood_metrics(CONF_ID, CONF_OOD, "v2")
    with pytest.raises(ValueError, match="NaN"):
        ood_metrics([0.1, np.nan], CONF_OOD)
    with pytest.raises(ValueError, match="need ID and OOD"):
        ood_metrics([], CONF_OOD)


def test_accuracy_and_average():
    assert accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75
    with pytest.raises(ValueError):
        accuracy(np.array([0, 1]), np.array([0]))
    mean = average([OODMetrics(0.2, 0.8, 0.6, 0.4), OODMetrics(0.4, 0.6, 0.8, 0.2)])
    assert mean.as_dict() == pytest.approx(OODMetrics(0.3, 0.7, 0.7, 0.3).as_dict())
