"""Figures that can be read: colour scales from the pairs that matter, winners named, missing shown as missing."""
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from convergence.plots.alignment import plot_alignment_heatmap, plot_crossmodal_heatmap, plot_prh
from convergence.plots.overview import plot_overview

MODELS = ["cnn", "vit", "bert"]


def scores_dataset(score, z, layer_a, layer_b, models_a=MODELS, models_b=MODELS):
    """The fields of a pairwise alignment result that the figures read, for summary 'best'."""
    shape = (len(models_a), len(models_b), 1)
    score, z = np.asarray(score, float).reshape(shape), np.asarray(z, float).reshape(shape)
    return xr.Dataset(
        {
            "summary_score": (("model_a", "model_b", "summary"), score),
            "null_mean": (("model_a", "model_b", "summary"), np.full(shape, 0.05)),
            "z_score": (("model_a", "model_b", "summary"), z),
            "ci_low": (("model_a", "model_b", "summary"), score - 0.01),
            "ci_high": (("model_a", "model_b", "summary"), score + 0.01),
            "summary_layer_a": (("model_a", "model_b", "summary"), np.asarray(layer_a).reshape(shape)),
            "summary_layer_b": (("model_a", "model_b", "summary"), np.asarray(layer_b).reshape(shape)),
        },
        coords={"model_a": models_a, "model_b": models_b, "summary": ["best"]},
        attrs={"metric": "mutual_knn", "n_stimuli": 40, "n_permutations": 10},
    )


def images(ax):
    return [im for im in ax.get_images()]


def texts(ax):
    return [t.get_text() for t in ax.texts]


SCORE = [[1.0, 0.30, 0.10], [0.30, 1.0, np.nan], [0.10, np.nan, 1.0]]
Z = [[900.0, 6.0, 2.0], [6.0, 800.0, np.nan], [2.0, np.nan, 700.0]]
LA = [[5, 2, 4], [3, 11, -1], [0, -1, 1]]
LB = [[5, 4, 1], [2, 11, -1], [4, -1, 1]]


def test_heatmap_colours_come_from_the_off_diagonal(tmp_path):
    fig = plot_alignment_heatmap(scores_dataset(SCORE, Z, LA, LB), [tmp_path / "a.png"], title="t")
    score_ax, z_ax = fig.axes[0], fig.axes[1]  # the two panels; their colour bars come after
    assert images(score_ax)[0].get_clim() == pytest.approx((0.10, 0.30))
    assert images(z_ax)[0].get_clim() == pytest.approx((2.0, 6.0))
    assert (tmp_path / "a.png").stat().st_size > 1000


def test_heatmap_names_the_winning_layer_pair(tmp_path):
    fig = plot_alignment_heatmap(scores_dataset(SCORE, Z, LA, LB), [tmp_path / "a.png"])
    cells = texts(fig.axes[0])
    assert any("l3/l5" in t for t in cells)  # cnn x vit won at layers 2 and 4 (positions from 0)
    assert any("l4/l3" in t for t in cells)  # vit x cnn


def test_missing_scores_are_drawn_as_missing_not_as_values(tmp_path):
    from matplotlib.patches import Rectangle

    fig = plot_alignment_heatmap(scores_dataset(SCORE, Z, LA, LB), [tmp_path / "a.png"])
    ax = fig.axes[0]
    data = images(ax)[0].get_array()
    assert data.mask[1, 2] and data.mask[2, 1]  # NaN: not a colour of the scale
    assert data.mask[0, 0]  # the self pair neither
    hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]
    assert sorted((round(p.get_x() + 0.5), round(p.get_y() + 0.5)) for p in hatched) == [(1, 2), (2, 1)]
    notes = " ".join(texts(ax))
    assert "n/a" in notes and "constant layer" in notes


def test_crossmodal_heatmap_keeps_its_signature_and_scale(tmp_path):
    ds = scores_dataset([[0.2, 0.4], [np.nan, 0.3]], [[1, 2], [np.nan, 3]], [[1, 2], [-1, 0]], [[0, 0], [-1, 1]],
                        models_a=["cnn", "vit"], models_b=["bert", "gpt"])
    fig = plot_crossmodal_heatmap(ds, [tmp_path / "c.png", tmp_path / "c.pdf"], title="x", row_label="vision",
                                  col_label="language")
    assert images(fig.axes[0])[0].get_clim() == pytest.approx((0.2, 0.4))
    assert any("l3/l1" in t for t in texts(fig.axes[0]))
    assert (tmp_path / "c.pdf").exists()


def test_prh_plot_names_models_without_a_score(tmp_path):
    table = pd.DataFrame({"model": ["a", "b", "c"], "competence": [0.1, 0.2, 0.3], "alignment": [0.2, np.nan, 0.4]})
    fig = plot_prh(table, [tmp_path / "p.png"], reference="ref")
    assert any("no score: b" in t for t in texts(fig.axes[0]))


def with_calibration(ds, calibrated, q, alpha=0.05):
    shape = ds["summary_score"].shape
    ds = ds.assign(calibrated=(("model_a", "model_b", "summary"), np.asarray(calibrated, float).reshape(shape)),
                   q_value=(("model_a", "model_b", "summary"), np.asarray(q, float).reshape(shape)))
    ds.attrs["alpha"] = alpha
    return ds


def test_heatmaps_offer_the_calibrated_score_with_q_marks(tmp_path):
    cal = [[1.0, 0.25, 0.0], [0.25, 1.0, np.nan], [0.0, np.nan, 1.0]]
    q = [[np.nan, 0.01, 0.2], [0.01, np.nan, np.nan], [0.2, np.nan, np.nan]]
    fig = plot_alignment_heatmap(with_calibration(scores_dataset(SCORE, Z, LA, LB), cal, q), [tmp_path / "a.png"])
    panel = fig.axes[2]  # score, z, calibrated; then their colour bars
    assert images(panel)[0].get_clim() == pytest.approx((0.0, 1.0))
    assert "0.25*" in texts(panel) and "0.00" in texts(panel)  # q 0.01 <= 0.05 marked, q 0.2 not
    assert "q <= 0.05" in panel.get_title()
    ds = with_calibration(scores_dataset([[0.2, 0.4], [0.1, 0.3]], [[1, 2], [0, 3]], [[1, 2], [0, 0]],
                                         [[0, 0], [1, 1]], models_a=["cnn", "vit"], models_b=["bert", "gpt"]),
                          [[0.0, 0.3], [0.0, 0.1]], [[0.5, 0.001], [0.9, 0.04]], alpha=0.01)
    fig = plot_crossmodal_heatmap(ds, [tmp_path / "c.png"])
    assert "0.30*" in texts(fig.axes[1]) and "0.10" in texts(fig.axes[1])  # alpha from the scores: 0.01
    # without calibrated scores the figures stay as they were
    assert len(plot_alignment_heatmap(scores_dataset(SCORE, Z, LA, LB), [tmp_path / "b.png"]).axes) == 4


def test_prh_plot_shows_calibrated_alignment_beside_the_raw_one(tmp_path):
    table = pd.DataFrame({"model": ["a", "b", "c"], "competence": [0.1, 0.2, 0.3], "alignment": [0.2, 0.3, 0.4],
                          "calibrated": [0.0, 0.1, 0.2], "q_value": [0.3, 0.04, 0.01]})
    fig = plot_prh(table, [tmp_path / "p.png"], reference="ref", fit={"slope": 2, "intercept": 0, "r": 1.0},
                   fit_calibrated={"slope": 1, "intercept": -0.1, "r": 1.0}, alpha=0.05)
    raw, calibrated = fig.axes[0], fig.axes[1]
    assert "calibrated" in calibrated.get_ylabel() and "calibrated" not in raw.get_ylabel()
    filled, hollow = calibrated.collections[0], calibrated.collections[1]
    assert len(filled.get_offsets()) == 2 and len(hollow.get_offsets()) == 1  # q <= 0.05: b and c


def test_overview_pca_axes_carry_explained_variance(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    ids = np.array([f"s{i}" for i in range(n)], dtype=object)
    # last layer: uncorrelated columns with norms 3, 1, 0: PC1 explains 9/10 of the variance, PC2 1/10
    centred = rng.normal(size=(n, 2))
    q, _ = np.linalg.qr(centred - centred.mean(axis=0))  # two centred, exactly uncorrelated unit columns
    last = np.column_stack([q[:, 0] * 3.0, q[:, 1] * 1.0, np.zeros(n)])
    store = xr.Dataset(
        {"l1": (("stimulus", "feature_l1"), rng.normal(size=(n, 4))), "l2": (("stimulus", "feature_l2"), last)},
        coords={"stimulus": ids},
        attrs={"layers": ["l1", "l2"], "depths": [0.5, 1.0], "feature_dims": {"l1": 4, "l2": 3}, "modality": "vision"},
    )
    stimuli = xr.Dataset({"label": ("stimulus", np.array(["a", "b"] * (n // 2), dtype=object))}, coords={"stimulus": ids},
                         attrs={"dataset": "toy"})
    fig = plot_overview(stimuli, {"toy": store}, [tmp_path / "o.png"])
    ax = fig.axes[1]
    assert ax.get_xlabel() == "PC1 (90 %)" and ax.get_ylabel() == "PC2 (10 %)"
    assert re.fullmatch(r"PC\d \(\d+ %\)", ax.get_xlabel())


def test_figures_take_label_and_direction_from_the_metric_registry():
    from convergence.plots.common import metric_style

    label, cmap = metric_style("procrustes")
    assert "lower = more similar" in label and cmap.endswith("_r")
    label, cmap = metric_style("mutual_knn")
    assert label.startswith("mutual k-NN") and "higher = more similar" in label and not cmap.endswith("_r")
    assert metric_style("not_a_metric") == ("not_a_metric", "viridis")
