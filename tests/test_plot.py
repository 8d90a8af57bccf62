"""Figures: what they show (read back from the matplotlib objects), and that they are written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.transforms import Bbox

from daskmeans import plot

KS = [10, 16, 36, 64, 144, 256]
INERTIA = [2.53e5, 2.30e5, 1.95e5, 1.76e5, 1.52e5, 1.36e5]  # MNIST-sized values


SILHOUETTE = [0.18, 0.12, 0.09, 0.07, 0.06, 0.06]


def _rows() -> list[dict]:
    return [{"k": k, "inertia": i, "silhouette": s, "silhouette_se": 0.003,
             "purity": 0.5 + k / 600, "homogeneity": 0.4 + k / 500,
             "heldout_accuracy": 0.5 + k / 700}
            for k, i, s in zip(KS, INERTIA, SILHOUETTE, strict=True)]


def _overlaps(a: Bbox, others: list[Bbox]) -> bool:
    return any(a.overlaps(b) for b in others)


def test_sweep_figure_labels_clear_of_ticks() -> None:
    fig = plot.sweep_figure(_rows())
    assert [ax.get_title() for ax in fig.axes] == ["Scores vs K", "Inertia vs K",
                                                   "Silhouette vs K"]
    knee = [line for line in fig.axes[1].get_lines() if "Kneedle" in line.get_label()]
    assert len(knee) == 1 and knee[0].get_xdata()[0] == 64
    bars = fig.axes[2].containers[0]  # silhouette ± 2 SE
    lows = bars.lines[1][0].get_ydata() if bars.lines[1] else None
    assert lows is not None and np.allclose(lows, np.array(SILHOUETTE) - 0.006)
    assert len(plot.sweep_figure([{k: v for k, v in r.items() if "silhouette" not in k}
                                   for r in _rows()]).axes) == 2
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for ax in fig.axes:
        label = ax.yaxis.label
        assert label.get_text(), ax.get_title()  # every panel says what its y axis is
        ticks = [t.get_window_extent(renderer) for t in ax.get_yticklabels() if t.get_text()]
        assert ticks and not _overlaps(label.get_window_extent(renderer), ticks), ax.get_title()
        # nor over the panel to its left
        others = [o.get_tightbbox(renderer) for o in fig.axes if o is not ax]
        assert not _overlaps(label.get_window_extent(renderer),
                             [b for b in others if b.x1 < ax.get_window_extent(renderer).x0])


def test_contingency_heatmap_draws_a_diagonal(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    classes = np.arange(10)
    clusters = np.arange(10)
    perm = rng.permutation(10)
    table = np.full((10, 10), 3)
    table[classes, perm] = 90  # label i is mostly in cluster perm[i]
    fig = plot.contingency_figure(table, classes, clusters, title="t", order="auto")
    drawn = fig.axes[0].images[0].get_array()
    assert (np.diag(drawn) == 90).all()
    ticks = [int(t.get_text()) for t in fig.axes[0].get_xticklabels()]
    assert ticks == perm.tolist()
    path = plot.contingency_heatmap(table, classes, clusters, tmp_path / "c.png")
    assert path.stat().st_size > 0


def test_silhouette_figure_draws_sorted_knives(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300) * 5
    values = rng.uniform(-0.2, 0.9, 300)
    fig = plot.silhouette_figure(values, labels, score=0.3, standard_error=0.01, title=None)
    ax = fig.axes[0]
    knives = [c for c in ax.collections if c.get_label() == "" or c.get_label().startswith("_")]
    assert len(knives) == 4
    for knife, c in zip(knives, [0, 5, 10, 15], strict=True):
        xy = knife.get_paths()[0].vertices
        mine = values[labels == c]
        edge = xy[np.isin(np.round(xy[:, 0], 9), np.round(mine, 9))]
        edge = edge[np.argsort(edge[:, 1], kind="stable")]
        assert len(np.unique(edge[:, 1])) == mine.size  # one step per row of the cluster
        assert (np.diff(edge[:, 0]) >= 0).all()  # sorted: a knife
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "5", "10", "15"]
    assert any(line.get_xdata()[0] == 0.3 for line in ax.get_lines())  # the mean
    assert plot.silhouette_plot(values, labels, tmp_path / "s.png").stat().st_size > 0


def test_elbow_figure_marks_the_knee(tmp_path: Path) -> None:
    fig = plot.elbow_figure(KS, INERTIA, 1.0)
    assert "knee at K=64" in fig.axes[0].get_title()
    marked = [line for line in fig.axes[1].get_lines() if line.get_label() == "knee K=64"]
    assert len(marked) == 1
    flat = plot.elbow_figure([1, 2, 3], [3.0, 2.0, 1.0], 1.0)
    assert "no knee" in flat.axes[0].get_title()
    assert plot.elbow_curve(KS, INERTIA, tmp_path / "e.png").stat().st_size > 0


def test_fit_history_draws_the_inertia_per_iteration(tmp_path: Path) -> None:
    lloyd = [{"iteration": i, "inertia": 100.0 / i, "center_shift": 1.0 / i}
             for i in range(1, 6)]
    (line,) = plot.history_figure(lloyd, "KMeans").axes[0].get_lines()
    assert line.get_xdata().tolist() == [1, 2, 3, 4, 5]
    assert np.allclose(line.get_ydata(), [100.0 / i for i in range(1, 6)])
    # a mini-batch's inertia is summed over its batch: drawn per row, as the smoothed one
    steps = [{"step": s, "batch_inertia": 10.0 * (50 - s), "batch_rows": 10,
              "ewa_inertia": None if s == 1 else 49.0, "phase": "mini-batch"}
             for s in range(1, 4)]
    steps.append({"step": 4, "batch_inertia": 9.0e3, "batch_rows": 200, "ewa_inertia": None,
                  "phase": "lloyd"})
    lines = {ln.get_label(): ln for ln in plot.history_figure(steps, "mb").axes[0].get_lines()}
    batch = lines["batch inertia per row"]
    assert batch.get_xdata().tolist() == [1, 2, 3]
    assert batch.get_ydata().tolist() == [49.0, 48.0, 47.0]
    assert lines["smoothed (EWA), per row"].get_xdata().tolist() == [2, 3]  # None: not drawn
    assert lines["refining Lloyd iterations (all rows), per row"].get_ydata().tolist() == [45.0]
    rounds = [{"round": 1, "bisections": 1, "passes": 4, "n_iter": 4, "seconds": 0.1}]
    with pytest.raises(ValueError, match="records no inertia"):
        plot.fit_history(rounds, tmp_path / "h.png")
    assert plot.fit_history(lloyd, tmp_path / "h.png").stat().st_size > 0


def test_purity_bars_name_each_cluster_by_its_label(tmp_path: Path) -> None:
    from daskmeans import metrics

    table = metrics.purity_table([0, 0, 1, 1, 1, 2], [5, 5, 3, 3, 5, 3])
    names = ["T-shirt/top", "Trouser", "Pullover"]
    ax = plot.purity_figure(table.reset_index().to_dict("records"), names, "p").axes[0]
    assert [round(b.get_height(), 3) for b in ax.patches] == table["purity"].round(3).tolist()
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        f"{c}\n{names[v]}" for c, v in zip(table.index, table["label"], strict=True)]
    overall = [ln for ln in ax.get_lines() if ln.get_label().startswith("overall purity")]
    assert len(overall) == 1 and overall[0].get_ydata()[0] == pytest.approx(4 / 6)
    assert plot.purity_bars(table, tmp_path / "p.png").stat().st_size > 0


def test_class_names_in_figures() -> None:
    table = np.array([[5, 1], [0, 4]])
    fig = plot.contingency_figure(table, [0, 1], [0, 1], title="t", order="sorted",
                                   class_names=["Sandal", "Bag"])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["Sandal", "Bag"]
    assert plot.label_name(3, ["a"]) == "3"  # a label without a name: its number
