"""Figures that can be read: colour scales from the pairs that matter, winners named, missing shown as missing."""
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from convergence.plots.alignment import plot_alignment_heatmap, plot_crossmodal_heatmap, plot_prh
from convergence.plots.overview import plot_overview
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection

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
    notes = " ".join(texts(ax) + [t.get_text() for t in fig.texts])  # cells, then the footnote under the figure
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
    assert any("no score: b" in t.get_text() for t in fig.texts)


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
    points = [c for c in calibrated.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
    crosses = {tuple(c.get_offsets()[0]) for c in points if len(c.get_paths()[0].vertices) == 4}  # marker "x"
    circles = {tuple(c.get_offsets()[0]) for c in points} - crosses
    assert circles == {(0.2, 0.1), (0.3, 0.2)} and crosses == {(0.1, 0.0)}  # q <= 0.05: b and c


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


# ------------------------------------------------------------------ intervals drawn exactly as stored (8)


def capture(module, fn, *args, **kwargs):
    """Call a plot function with its save replaced, returning the figure it would have saved."""
    captured = {}
    original = module.save_figure
    module.save_figure = lambda fig, paths: captured.setdefault("fig", fig)
    try:
        fn(*args, **kwargs)
    finally:
        module.save_figure = original
    return captured["fig"]


def hollow_points(ax):
    """The scatter collections of ``ax`` drawn hollow (edge only) that hold points."""
    return [c for c in ax.collections
            if isinstance(c, PathCollection) and len(c.get_offsets()) and len(c.get_facecolors()) == 0]


def segments(ax, colour=None):
    """(x or y, low, high) of every line segment the axes' line collections draw (vlines / hlines), with
    its colour; only those of ``colour`` when given."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba

    out = []
    for coll in ax.collections:
        if not isinstance(coll, LineCollection):
            continue
        for seg, c in zip(coll.get_segments(), np.broadcast_to(coll.get_colors(), (len(coll.get_segments()), 4))):
            if colour is None or np.allclose(c, to_rgba(colour)):
                out.append(tuple(np.round(seg.ravel(), 6)))
    return out


def test_prh_draws_each_interval_from_its_stored_bounds_and_marks_one_that_excludes_its_score(tmp_path):
    from convergence.plots.common import EXCLUDES_COLOUR

    # model a's interval lies wholly above its score (the bootstrap can do that for a best-layer maximum);
    # abs() of the gaps would draw a whisker down to 0.15 instead
    table = pd.DataFrame({"model": ["a", "b", "c"], "competence": [0.1, 0.2, 0.3], "alignment": [0.2, 0.3, 0.5],
                          "ci_low": [0.25, 0.28, 0.45], "ci_high": [0.30, 0.33, 0.55]})
    fig = plot_prh(table, [tmp_path / "p.png"], reference="r")
    ax = fig.axes[0]
    red = segments(ax, EXCLUDES_COLOUR)
    assert red == [(0.1, 0.25, 0.1, 0.30)]  # vline at x 0.1 from 0.25 to 0.30, as stored
    drawn = segments(ax)
    assert sorted(drawn) == [(0.1, 0.25, 0.1, 0.3), (0.2, 0.28, 0.2, 0.33), (0.3, 0.45, 0.3, 0.55)]
    assert "interval that excludes its estimate" in ax.get_legend_handles_labels()[1]


def ratio_result(ratio, low, high, objectives=("supervised", "random")):
    """The fields of a dispersion alignment result that plot_ratio reads: 2 criteria x 2 vision x 1 language."""
    shape = (1, 2, 2, 1)  # metric, criterion, vision, language
    return xr.Dataset(
        {name: (("metric", "criterion", "vision", "language"), np.asarray(v, float).reshape(shape))
         for name, v in (("ratio", ratio), ("ratio_ci_low", low), ("ratio_ci_high", high))},
        coords={"metric": ["mutual_knn"], "criterion": ["q0.1", "q0.5"], "vision": ["v_trained", "v_random"],
                "language": ["lm"], "size": ("criterion", [10, 50]),
                "objective_vision": ("vision", np.asarray(objectives, dtype=object))},
        attrs={"ci": 0.95, "n_bootstrap": 10},
    )


def test_ratio_plot_draws_intervals_as_stored_and_leaves_controls_out_of_the_mean(tmp_path):
    from convergence.plots.common import EXCLUDES_COLOUR
    from convergence.plots.dispersion import plot_ratio

    # [criterion][vision]: the trained model's q0.1 interval [1.2, 1.6] lies above its ratio 1.0
    ratio = [[1.0, 3.0], [2.0, 5.0]]
    low = [[1.2, 2.5], [1.5, 4.0]]
    high = [[1.6, 3.5], [2.5, 6.0]]
    from convergence.plots import dispersion

    ax = capture(dispersion, plot_ratio, ratio_result(ratio, low, high), [tmp_path / "r.png"]).axes[0]
    red = segments(ax, EXCLUDES_COLOUR)
    assert len(red) == 1 and red[0][1:4:2] == (1.2, 1.6)  # from 1.2 to 1.6, not clipped to the ratio 1.0
    lows = sorted(min(s[1], s[3]) for s in segments(ax))
    assert lows == [1.2, 1.5, 2.5, 4.0]
    mean = [line for line in ax.lines if line.get_color() in ("k", "black")]
    assert len(mean) == 1 and list(mean[0].get_ydata()) == [1.0, 2.0]  # the trained pair only: controls left out
    hollow = hollow_points(ax)
    assert len(hollow) == 1 and sorted(hollow[0].get_offsets()[:, 1]) == [3.0, 5.0]  # the control, hollow


# ---------------------------------------------------------- one palette, controls set apart, titles (9)


def test_palette_is_fixed_per_name_and_distinct_within_a_figure():
    import subprocess
    import sys

    from convergence.plots.common import CONTROL_COLOUR, OBJECTIVE_COLOURS, palette

    names = [f"model_{i}" for i in range(16)]
    first = palette(names)
    assert palette(list(reversed(names))) == first  # keyed by name, not by position
    assert len({tuple(np.round(c, 6)) for c in first.values()}) == 16  # distinct up to 16 names
    code = ("from convergence.plots.common import palette; "
            "print(palette([f'model_{i}' for i in range(16)]))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": "123"}).stdout.strip()
    assert other == str(first)  # the same in another process (no Python hash randomisation)
    objectives = palette(["supervised", "random", "language", "new-objective"], "objective")
    assert objectives["random"] == CONTROL_COLOUR and objectives["supervised"] == OBJECTIVE_COLOURS["supervised"]
    assert objectives["new-objective"] not in (CONTROL_COLOUR, *OBJECTIVE_COLOURS.values())
    pairs = palette(["all", "random x random", "random x supervised"], "set_pair")
    assert pairs["all"] == "black" and pairs["random x random"] == CONTROL_COLOUR
    with pytest.raises(ValueError, match="palette kind"):
        palette(["a"], "colour")


def test_model_colour_does_not_depend_on_the_other_models_of_a_figure_without_a_clash():
    from convergence.plots.common import _slot, palette

    a, b = "alpha", "beta"
    assert _slot(a, "model") != _slot(b, "model")
    assert _slot("gamma", "model") not in (_slot(a, "model"), _slot(b, "model"))
    assert palette([a, b])[a] == palette([a])[a] == palette([a, b, "gamma"])[a]
    assert palette([a, b, "gamma"])["gamma"] == palette(["gamma"])["gamma"]


def labelled(ds, objectives):
    return ds.assign_coords(objective_a=("model_a", np.asarray(objectives, dtype=object)),
                            objective_b=("model_b", np.asarray(objectives, dtype=object)))


def test_heatmap_puts_controls_last_behind_a_separator_with_grey_names(tmp_path):
    from convergence.plots.common import CONTROL_COLOUR

    ds = labelled(scores_dataset(SCORE, Z, LA, LB), ["random", "supervised", "language"])
    ds.attrs["dataset"] = "toy"
    fig = plot_alignment_heatmap(ds, [tmp_path / "a.png"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["vit", "bert", "cnn"]  # the control last
    greys = [t.get_text() for t in ax.get_yticklabels() if t.get_color() == CONTROL_COLOUR]
    assert greys == ["cnn"]
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_color() == CONTROL_COLOUR] == ["cnn"]
    separators = sorted(tuple(np.round(line.get_xydata().ravel(), 3)) for line in ax.lines)
    assert separators == [(0.0, 1.5, 1.0, 1.5), (1.5, 0.0, 1.5, 1.0)]  # between row/column 2 and 3
    # the reordered cells keep their scores: vit x bert is NaN (hatched), cnn x vit 0.30
    data = images(ax)[0].get_array()
    assert data.mask[0, 1] and data[2, 0] == pytest.approx(0.30)
    assert "random-weight controls" in " ".join(t.get_text() for t in fig.texts)
    assert fig._suptitle.get_text().startswith("toy, mutual_knn:")


def test_prh_controls_are_hollow_and_left_out_of_the_fitted_line(tmp_path):
    from convergence.analyses.prh import linear_fit

    table = pd.DataFrame({"model": ["a", "b", "c", "ctrl"], "competence": [0.1, 0.2, 0.3, 0.9],
                          "alignment": [0.2, 0.3, 0.4, 0.1], "objective": ["supervised"] * 3 + ["random"]})
    every = linear_fit(table["competence"], table["alignment"])
    trained = linear_fit(table["competence"][:3], table["alignment"][:3])
    fig = plot_prh(table, [tmp_path / "p.png"], fit=every, fit_trained=trained, reference="r", metric="cka_linear",
                   dataset="emoji")
    ax = fig.axes[0]
    hollow = hollow_points(ax)
    assert [tuple(c.get_offsets()[0]) for c in hollow] == [(0.9, 0.1)]
    (line,) = [ln for ln in ax.lines if ln.get_label().startswith("fit")]
    assert line.get_xdata().max() == pytest.approx(0.3)  # over the trained models' range
    assert line.get_ydata() == pytest.approx(trained["slope"] * line.get_xdata() + trained["intercept"])
    assert "3 trained models" in line.get_label()
    assert ax.get_title() == "emoji, cka_linear: alignment to r vs competence"


def test_prh_labels_of_coinciding_models_do_not_overlap(tmp_path):
    table = pd.DataFrame({"model": ["vit_a", "vit_b", "vit_c"], "competence": [0.5, 0.5, 0.5],
                          "alignment": [0.3, 0.3, 0.3]})
    fig = plot_prh(table, [tmp_path / "p.png"])
    ax = fig.axes[0]
    renderer = FigureCanvasAgg(fig).get_renderer()  # the saved figure is closed: give it a canvas again
    boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text().startswith("vit")]
    assert len(boxes) == 3
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(3) for j in range(i + 1, 3))


def test_prh_step_stores_objectives_and_the_fit_over_trained_models():
    from convergence.analyses.prh import prh

    ds = labelled(scores_dataset([[1.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 1.0]], np.ones((3, 3)),
                                 np.zeros((3, 3), int), np.zeros((3, 3), int)), ["supervised", "supervised", "random"])
    ds = ds.assign(p_value=(("model_a", "model_b", "summary"), np.full((3, 3, 1), 0.5)))
    competence = pd.DataFrame({"model": MODELS, "measure": "linear_probe_accuracy", "value": [0.9, 0.5, 0.7]})
    table, info = prh(ds, competence, "cnn")
    assert list(table["objective"]) == ["supervised", "random"]
    assert info["fit"]["n"] == 2 and info["fit_trained"] is None  # one trained model: no line


# ------------------------------------------------------------------------------------ layouts (10)


def test_large_heatmaps_show_the_score_only(tmp_path):
    names = [f"m{i}" for i in range(11)]
    rng = np.random.default_rng(0)
    score = rng.uniform(0, 1, (11, 11))
    fig = plot_alignment_heatmap(scores_dataset(score, score * 10, np.ones((11, 11), int), np.ones((11, 11), int),
                                                models_a=names, models_b=names), [tmp_path / "a.png"])
    cells = [t for t in fig.axes[0].texts]
    assert len(cells) == 121 and all("\n" not in t.get_text() and "/" not in t.get_text() for t in cells)
    assert all(t.get_fontsize() >= 7 for t in cells)
    assert "CSV table" in " ".join(t.get_text() for t in fig.texts)


def test_heatmap_footnote_lies_below_the_axis_labels(tmp_path):
    names = [f"model_number_{i}" for i in range(7)]
    score = np.full((7, 7), 0.5)
    score[0, 1] = np.nan
    fig = plot_alignment_heatmap(scores_dataset(score, score, np.ones((7, 7), int), np.ones((7, 7), int),
                                                models_a=names, models_b=names), [tmp_path / "a.png"])
    renderer = FigureCanvasAgg(fig).get_renderer()  # the saved figure is closed: give it a canvas again
    note = fig.texts[-1]
    assert "constant layer" in note.get_text()
    for ax in fig.axes[:2]:
        assert note.get_window_extent(renderer).y1 < ax.xaxis.label.get_window_extent(renderer).y0
        ticks = [t.get_window_extent(renderer).y0 for t in ax.get_xticklabels()]
        assert note.get_window_extent(renderer).y1 < min(ticks)


def test_readout_leaves_out_a_statistic_without_a_value_and_says_why(tmp_path):
    from convergence.plots import layers

    rows = [{"statistic": stat, "model": m, "objective": obj, "depth": d, "r2": np.nan if stat == "saturation" else d}
            for stat in ("luminance", "saturation") for m, obj in (("a", "supervised"), ("b", "random"))
            for d in (0.5, 1.0)]
    captured = {}
    original = layers.save_figure
    layers.save_figure = lambda fig, paths: captured.setdefault("fig", fig)
    try:
        layers.plot_readout(pd.DataFrame(rows), [tmp_path / "r.png"])
    finally:
        layers.save_figure = original
    fig = captured["fig"]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["luminance"]
    assert "saturation" in " ".join(t.get_text() for t in fig.texts)
    styles = {ln.get_label(): ln.get_linestyle() for ln in fig.axes[0].lines if ln.get_label() in ("a", "b")}
    assert styles == {"a": "-", "b": "--"}  # the control dashed


def consistency_table():
    rows = []
    for (a, b), values in {("d1", "d2"): (0.8, -0.6, np.nan), ("d1", "d3"): (0.5, 0.1, np.nan),
                           ("d2", "d3"): (0.7, -0.2, np.nan)}.items():
        for set_pair, value, n in zip(("all", "random x supervised", "supervised x supervised"), values, (10, 3, 1)):
            rows.append({"dataset_a": a, "dataset_b": b, "set_pair": set_pair, "n_pairs": n, "spearman": value})
    rows.append({"dataset_a": "d1", "dataset_b": "d2", "set_pair": "supervised x supervised", "n_pairs": 3,
                 "spearman": 0.4})
    return pd.DataFrame(rows)


def test_consistency_matrices_use_a_diverging_map_centred_at_zero_and_explain_blanks(tmp_path):
    from convergence.plots import consistency

    fig = capture(consistency, consistency.plot_consistency_matrices, consistency_table(), [tmp_path / "m.png"])
    image = images(fig.axes[0])[0]
    assert image.get_clim() == (-1, 1) and image.get_cmap().name.startswith("RdBu")
    panel = [ax for ax in fig.axes if ax.get_title() == "supervised x supervised"][0]
    assert any(t.get_text() == "n/a\n(1)" for t in panel.texts)  # a blank cell says why: 1 model pair
    assert "n/a: too few" in " ".join(t.get_text() for t in fig.texts)


def test_consistency_distributions_grey_out_boxes_on_few_model_pairs(tmp_path):
    from matplotlib.colors import to_rgba

    from convergence.plots import consistency

    fig = capture(consistency, consistency.plot_consistency_distributions, consistency_table(), [tmp_path / "d.png"])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    boxes = [p for p in ax.patches]
    few = {label.split("\n")[0]: box.get_edgecolor() for label, box in zip(labels, boxes)}
    assert few["random x supervised"] == to_rgba("0.75")  # ~3 model pairs: grey
    assert few["all"] != to_rgba("0.75")  # 10 model pairs: drawn in its colour
    assert "(too few)" in [x for x in labels if x.startswith("random")][0]
    assert [b.get_hatch() for label, b in zip(labels, boxes) if label.startswith("random")] == ["///"]


def test_subset_alignment_puts_pairs_on_the_y_axis(tmp_path):
    from convergence.plots import dispersion

    names = ("random_mean", "random_ci_low", "random_ci_high", "low", "high")
    dims = ("metric", "criterion", "vision", "language")
    result = xr.Dataset({n: (dims, np.full((1, 2, 3, 2), 0.3 + 0.1 * k)) for k, n in enumerate(names)},
                        coords={"metric": ["mutual_knn"], "criterion": ["q0.1", "q0.5"], "vision": ["a", "b", "c"],
                                "language": ["x", "y"], "size": ("criterion", [10, 50]),
                                "objective_vision": ("vision", np.array(["random", "supervised", "edges"], object))},
                        attrs={"n_random": 5, "ci": 0.95})
    fig = capture(dispersion, dispersion.plot_subset_alignment, result, [tmp_path / "s.png"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b x x", "b x y", "c x x", "c x y", "a x x", "a x y"]
    width, height = fig.get_size_inches()
    assert width < 10  # 6 pairs on y, 2 criteria: no longer as wide as the pair count


# --------------------------------------------------------------------- similar depths most similar (12)


def test_depth_match_figure_draws_every_best_match_the_band_and_the_null(tmp_path):
    from convergence.plots import layers

    matches = pd.DataFrame({"model_a": ["a", "a", "b", "b"], "model_b": ["b", "b", "a", "a"],
                            "depth_a": [0.5, 1.0, 0.5, 1.0], "depth_b": [0.5, 0.75, 0.25, 1.0],
                            "objective_a": ["supervised", "supervised", "random", "random"],
                            "objective_b": ["random", "random", "supervised", "supervised"]})
    diagonal = {"tolerance": 0.1, "n_pairs": 2, "n_permutations": 100, "ci": 0.95, "fraction": 0.5,
                "fraction_ci_low": 0.5, "fraction_ci_high": 0.5, "fraction_null_mean": 0.3, "fraction_null_std": 0.05,
                "fraction_p_value": 0.02, "mean_abs_offset": 0.125, "offset_ci_low": 0.1, "offset_ci_high": 0.15,
                "offset_null_mean": 0.3, "offset_null_std": 0.04, "offset_p_value": 0.01}
    fig = capture(layers, layers.plot_depth_matches, matches, diagonal, [tmp_path / "d.png"], title="toy")
    left, right = fig.axes[:2]
    points = np.vstack([c.get_offsets() for c in left.collections if c.get_offsets().shape[0] == 4])
    assert sorted(map(tuple, points)) == sorted(zip(matches["depth_a"], matches["depth_b"]))
    # every pair involves a control here: all points hollow
    assert all(len(c.get_facecolors()) == 0 for c in left.collections if c.get_offsets().shape[0] == 4)
    band = [c for c in left.collections if c.get_label().startswith("within 0.1")][0]
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(-0.15) and ys.max() == pytest.approx(1.15)
    (diag,) = [ln for ln in left.lines if ln.get_label() == "equal relative depth"]
    assert list(diag.get_xdata()) == list(diag.get_ydata())
    # right: the measured fraction's interval as stored, and the null mean +- 2 sd, for both statistics
    segs = sorted((s[0], s[2]) for s in segments(right))
    assert np.allclose(segs, sorted([(0.5, 0.5), (0.2, 0.4), (0.1, 0.15), (0.22, 0.38)]))
    ticks = " ".join(t.get_text() for t in right.get_yticklabels())
    assert "0.50 vs 0.30 shuffled" in ticks and "one-sided p = 0.020" in ticks and "0.12 vs 0.30" in ticks


def test_overview_legends_sit_in_an_empty_panel_not_over_the_data(tmp_path):
    from convergence.plots import overview

    rng = np.random.default_rng(1)
    ids = np.array([f"s{i}" for i in range(20)], dtype=object)

    def store(modality):
        return xr.Dataset({"l1": (("stimulus", "feature_l1"), rng.normal(size=(20, 3)))}, coords={"stimulus": ids},
                          attrs={"layers": ["l1"], "depths": [1.0], "feature_dims": {"l1": 3}, "modality": modality})

    stimuli = xr.Dataset({"label": ("stimulus", np.array(["a", "b"] * 10, dtype=object))}, coords={"stimulus": ids},
                         attrs={"dataset": "toy"})
    stores = {"m1": store("vision"), "ctrl": store("vision"), "m2": store("vision"), "m3": store("language")}
    fig = capture(overview, overview.plot_overview, stimuli, stores, [tmp_path / "o.png"], objectives={"ctrl": "random"})
    drawn = fig.axes[:5]  # the layers panel and four PCA panels; of the three empty ones two hold the legends
    assert all(ax.get_legend() is None for ax in drawn)
    assert [ax.get_legend().get_title().get_text() for ax in fig.axes[5:7]] == ["stored layers", "labels"]
    (control_line,) = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("ctrl")]
    assert control_line.get_linestyle() == "--" and "random weights" in fig.axes[2].get_title()


def test_crossmodal_cells_mark_an_interval_that_excludes_its_score(tmp_path):
    ds = scores_dataset([[0.2, 0.4], [0.1, 0.3]], np.ones((2, 2)), np.zeros((2, 2), int), np.zeros((2, 2), int),
                        models_a=["cnn", "vit"], models_b=["bert", "gpt"])
    ds["ci_low"][0, 0, 0], ds["ci_high"][0, 0, 0] = 0.25, 0.3  # wholly above the score 0.2
    fig = plot_crossmodal_heatmap(ds, [tmp_path / "c.png"])
    marked = [t for t in texts(fig.axes[0]) if "(!)" in t]
    assert marked == ["0.200\n[0.250, 0.300] (!)\nnull 0.050\nl1/l1"]
    assert "(!): the interval does not contain the score" in fig.texts[-1].get_text()
