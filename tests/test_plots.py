"""bgrobust.plots: the chapter figures draw what they are given, label it and come back closed."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from bgrobust import plots, published  # noqa: E402
from bgrobust.constraints import ParameterError  # noqa: E402
from bgrobust.vocabulary import EXPERIMENT_TITLES, MODEL_TITLES  # noqa: E402


def _is_closed(fig) -> bool:
    return fig.number not in plt.get_fignums()


def test_message_is_one_line_of_text_and_closed():
    fig = plots.message("nothing to show")
    assert [t.get_text() for t in fig.axes[0].texts] == ["nothing to show"]
    assert _is_closed(fig)


def test_training_curves_one_titled_panel_per_model():
    h = pd.DataFrame({"epoch": [1, 1, 2, 2], "step": [1, 2, 3, 4], "loss": [3.0, 2.0, 1.5, 1.0]})
    fig = plots.training_curves({"pifia": SimpleNamespace(history=h), "deeploc": SimpleNamespace(history=h)})
    assert [ax.get_title() for ax in fig.axes] == ["PIFiA", "DeepLoc"]
    assert _is_closed(fig)
    with pytest.raises(ValueError, match="non-empty"):
        plots.training_curves({})


def test_layer_curves_plot_published_and_our_accuracies_in_layer_order():
    ours = pd.DataFrame({"model": "deeploc", "variant": ["trained", "trained", "untrained"],
                         "pooling": "mean", "column": ["final", "conv2", "conv2"], "accuracy": [0.9, 0.7, 0.6]})
    pub = published.supp_table1()
    fig = plots.layer_curves(ours, pub)
    ax, = fig.axes
    assert ax.get_title() == MODEL_TITLES["deeploc"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"published", "ours, trained (mean)", "ours, untrained (mean)"}
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks.index("conv2") < ticks.index("final")
    trained = lines["ours, trained (mean)"]
    assert trained.get_ydata().tolist() == [0.7, 0.9]  # sorted by layer, not by row
    assert trained.get_xdata().tolist() == [ticks.index("conv2"), ticks.index("final")]
    p = pub[pub.model == "deeploc"]
    assert sorted(lines["published"].get_ydata()) == sorted(p.accuracy)
    assert _is_closed(fig)
    with pytest.raises(ValueError, match="variant"):
        plots.layer_curves(ours.drop(columns="variant"), pub)


def test_standardisation_draws_both_parts_in_both_stages():
    rows = [(stage, part, left, left + 1.0, d) for stage in ("raw", "generated")
            for part, d in (("centre cell", 0.2), ("background", 0.4)) for left in (0.0, 1.0)]
    h = pd.DataFrame(rows, columns=["stage", "part", "left", "right", "density"])
    fig = plots.standardisation(h)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        stairs = [p for p in ax.patches]
        assert len(stairs) == 2
        assert sorted(float(s.get_data().values.max()) for s in stairs) == [0.2, 0.4]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["centre cell", "background"]
    with pytest.raises(ValueError, match="density"):
        plots.standardisation(h.drop(columns="density"))


def test_figure1a_one_column_per_setting_gfp_and_mask():
    rng = np.random.default_rng(0)
    crop = SimpleNamespace(images=rng.random((1, 3, 8, 8)), masks=np.eye(8)[None])
    fig = plots.figure1a({"base": crop, "same": crop, "batch": crop})
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == [EXPERIMENT_TITLES[e] for e in ("base", "same", "batch")]
    shown_mask = fig.axes[3].get_images()[0].get_array()
    assert np.array_equal(np.asarray(shown_mask), np.eye(8))
    assert _is_closed(fig)
    with pytest.raises(ValueError, match="non-empty"):
        plots.figure1a({})


def test_supp_figure1_draws_only_crops_of_the_setting():
    table = pd.DataFrame({"setting": ["diff", "same", "diff", "diff"],
                          "centre_class": ["actin", "ER", "Golgi", "nucleus"],
                          "background_class": ["ER", "ER", "vacuole", "actin"]})
    images = np.zeros((4, 3, 8, 8))
    fig = plots.supp_figure1(images, table, n=4, columns=2, random_state=0)
    titles = sorted(ax.get_title() for ax in fig.axes if ax.get_images())
    assert titles == ["Golgi\non vacuole", "actin\non ER", "nucleus\non actin"]  # 3 diff crops, not 4
    assert len(fig.axes) == 4
    again = plots.supp_figure1(images, table, n=2, columns=2, random_state=0)
    first = [ax.get_title() for ax in again.axes if ax.get_images()]
    assert first == [ax.get_title() for ax in plots.supp_figure1(images, table, n=2, columns=2,
                                                                 random_state=0).axes if ax.get_images()]
    with pytest.raises(ParameterError, match="n must be"):
        plots.supp_figure1(images, table, n=0)
    with pytest.raises(ValueError, match="4 images but 3"):
        plots.supp_figure1(images, table.iloc[:3])


def test_drop_ranking_sorts_by_drop_and_colours_by_kind():
    d = pd.DataFrame({"extractor": ["a", "b", "c"], "kind": ["remedy", "untrained", "paper's model"],
                      "drop": [0.05, 0.2, -0.01], "drop_low": [0.0, 0.1, -0.05], "drop_high": [0.1, 0.3, 0.03]})
    fig = plots.drop_ranking(d)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "a", "b"]
    bars = [p for p in ax.patches if p.get_width() != 0 or p.get_height() != 0][:3]
    assert [round(b.get_width(), 3) for b in bars] == [-0.01, 0.05, 0.2]
    assert matplotlib.colors.to_hex(bars[2].get_facecolor()) == plots.KIND_COLORS["untrained"]
    assert _is_closed(fig)
    with pytest.raises(ValueError, match="no colour for kind"):
        plots.drop_ranking(d.assign(kind="mystery"))


def test_realism_examples_blocks_real_and_synthetic():
    rng = np.random.default_rng(0)
    n = 12
    real = rng.random((n, 2, 8, 8))
    real_classes = [("mitochondrion",)] * n
    groups = [f"g{i % 4}" for i in range(n)]
    strains = pd.DataFrame({"strain": [0, 1, 2], "kind": ["single", "single", "single"],
                            "p:mitochondrion": [1.0, 1.0, 0.0], "p:nucleus": [0.0, 0.0, 1.0]})
    table = pd.DataFrame({"strain": [0, 0, 1] + [2] * 9})  # three mitochondrion crops, nine nucleus ones
    synthetic = np.zeros((n, 2, 8, 8))
    synthetic[:3] = rng.random((3, 2, 8, 8))  # only the mitochondrion crops have any signal
    fig = plots.realism_examples(real, real_classes, groups, synthetic, table, strains,
                                 [("mitochondrion",)], n=3, random_state=0)
    assert len(fig.axes) == 2 * 2 * 3
    assert fig.axes[0].get_ylabel().startswith("mitochondrion")
    synthetic_gfp = [np.asarray(ax.get_images()[0].get_array()) for ax in fig.axes[3:6]]  # right block, GFP
    assert all(im[..., 1].max() > 0 for im in synthetic_gfp)  # drawn from the mitochondrion crops only
    assert _is_closed(fig)
    with pytest.raises(ParameterError, match="n must be"):
        plots.realism_examples(real, real_classes, groups, real, table, strains, [("mitochondrion",)], n=0)
