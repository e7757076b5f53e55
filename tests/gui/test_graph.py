"""The computational graph: every layer and direction, the output on the top layer, and
the gradient drawn on it."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig
from core.init import init_params
from core.lab import run_probe
from gui.plots.graph import GraphPanel

KEYS = ["l0", "l0_reverse", "l1", "l1_reverse", "l2", "l2_reverse"]


def make_graph(qtbot, size=(900, 420)) -> GraphPanel:
    panel = GraphPanel()
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    return panel


def stack_probe(pattern: str = "many_to_many"):
    """A real probe of a bidirectional LSTM → RNN → GRU stack."""
    layers = [LayerConfig(cell=cell, hidden_size=6, bidirectional=True)
              for cell in ("lstm", "rnn", "gru")]
    model = ModelConfig(input_size=1, output_size=1, layers=layers, pattern=pattern)
    exp = Experiment(model=model, task=TaskConfig(name="sine", seq_len=40, batch_size=4))
    return run_probe(exp, init_params(model, exp.init), None, jacobian=False,
                     connectivity=False)


def hidden_keys(panel: GraphPanel) -> list[str]:
    return [row.key for row in panel.rows if row.kind == "h"]


def unrolled(panel: GraphPanel, dst: str | None = None, src: str | None = None) -> list:
    """Links between unrolled columns (not the folded graph), optionally by end."""
    return [link for link in panel.links if link.dst_col >= 0
            and (dst is None or link.dst == dst) and (src is None or link.src == src)]


def select(panel: GraphPanel, choice: str) -> None:
    index = panel.view_selector.findData(choice)
    assert index >= 0, f"{choice!r} not offered"
    panel.view_selector.setCurrentIndex(index)


def test_stack_draws_every_layer_and_direction_with_the_output_on_top(qtbot):
    r = stack_probe()
    panel = make_graph(qtbot)
    panel.show_result(r)
    heading = panel.heading.text
    assert "3 layers" in heading and "both directions" in heading
    assert "layer 0 (forward)" not in heading
    assert hidden_keys(panel) == KEYS
    n = len(panel.to_csv_table()["timestep"])
    assert len(panel.nodes["h"].data) == len(KEYS) * n

    by = {row.name: row for row in panel.rows}
    assert by["o"].y > max(by[k].y for k in KEYS) > by["x"].y
    # the output reads the top layer only, both of its directions, at every column
    into_o = unrolled(panel, dst="o")
    assert {link.src for link in into_o} == {"l2", "l2_reverse"}
    assert len(into_o) == 2 * n
    assert {link.dst for link in unrolled(panel, src="x")} == {"l0", "l0_reverse"}
    # each layer reads both directions of the layer below
    for lower, upper in ((0, 1), (1, 2)):
        pairs = {(link.src, link.dst) for link in unrolled(panel)
                 if link.src[:2] == f"l{lower}" and link.dst[:2] == f"l{upper}"}
        assert pairs == {(a, b) for a in (f"l{lower}", f"l{lower}_reverse")
                         for b in (f"l{upper}", f"l{upper}_reverse")}
    assert not any(link.dashed for link in unrolled(panel) if link.src != link.dst)
    # forward cells run left to right, reverse cells right to left
    for key in KEYS:
        steps = [link for link in unrolled(panel, src=key, dst=key)]
        assert len(steps) == n - 1
        forward = all(link.dst_col == link.src_col + 1 for link in steps)
        backward = all(link.dst_col == link.src_col - 1 for link in steps)
        assert (backward if key.endswith("_reverse") else forward), key
    # the folded graph too: one delay loop per cell, o above the top layer, then L
    folded = [link for link in panel.links if link.dst_col < 0]
    assert {link.src for link in folded if link.src == link.dst} == set(KEYS)
    assert {link.src for link in folded if link.dst == "o"} == {"l2", "l2_reverse"}
    assert ("o", "L") in {(link.src, link.dst) for link in folded}


def test_gradient_of_every_cell_is_drawn(qtbot):
    r = stack_probe()
    panel = make_graph(qtbot)
    panel.show_result(r)
    table = panel.to_csv_table()
    steps = table["timestep"].astype(int)
    assert set(table) == {"timestep", *(f"gradnorm.{k}" for k in KEYS)}
    for key in KEYS:
        np.testing.assert_allclose(table[f"gradnorm.{key}"], r.arrays[f"gradnorm.{key}"][steps],
                                   rtol=1e-6)
    every = np.concatenate([r.arrays[f"gradnorm.{k}"] for k in KEYS]).astype(np.float64)
    lo, hi = panel.bar.levels()
    assert lo == pytest.approx(np.log10(every.min())) and hi == pytest.approx(np.log10(every.max()))
    # each hidden node's rim has the colour of its own gradient: the largest is the hottest
    pens = [panel.nodes["h"].data[i]["pen"].color().getRgb() for i in range(len(panel._hspots))]
    values = [table[f"gradnorm.{row.key}"][list(steps).index(t)]
              for _x, _y, row, t in panel._hspots]
    assert len(set(pens)) > 3
    assert pens[int(np.argmax(values))] != pens[int(np.argmin(values))]


def test_edges_follow_the_gradient_in_each_direction(qtbot, fake_result):
    # fake gradients shrink geometrically away from the last step each cell processes
    r = fake_result("lstm", num_layers=3, bidirectional=True, T=100)
    panel = make_graph(qtbot)
    panel.show_result(r)
    n = len(panel.to_csv_table()["timestep"])
    for key in KEYS:
        edges = panel.recurrent[key]
        widths = [e.width for e in edges if e is not None]
        assert len(widths) == n - 1
        if key.endswith("_reverse"):  # into columns 0 … n−2, largest at t = 0
            assert edges[-1] is None and widths[0] > widths[-1], key
        else:  # into columns 1 … n−1, largest at the last step
            assert edges[0] is None and widths[-1] > widths[0], key


def test_single_layer_keeps_its_picture(qtbot, fake_result):
    r = fake_result("lstm", T=100)
    panel = make_graph(qtbot, size=(600, 300))
    panel.show_result(r)
    assert not panel.view_selector.isVisible()  # nothing to choose from
    table = panel.to_csv_table()
    steps = table["timestep"].astype(int)
    assert 3 <= len(steps) <= 12 and steps[0] == 0 and steps[-1] == 99
    np.testing.assert_allclose(table["gradnorm.l0"], r.arrays["gradnorm.l0"][steps], rtol=1e-6)
    widths = [e.width for e in panel.recurrent["l0"][1:]]
    assert widths[-1] > widths[0]  # the fake gradient grows towards the end
    assert "layer 0" in panel.heading.text
    panel.resize(1400, 400)
    qtbot.wait(10)
    panel.show_result(r)
    assert len(panel.to_csv_table()["timestep"]) == 12
    short = fake_result("gru", T=5, pattern="many_to_one")
    panel.show_result(short)
    assert list(panel.to_csv_table()["timestep"]) == [0, 1, 2, 3, 4]
    assert [link.src_col for link in unrolled(panel, dst="o")] == [4]
    panel.show_result(fake_result("rnn", pattern="output_recurrence"))
    fed = unrolled(panel, src="o", dst="l0")
    assert len(fed) == len(panel.to_csv_table()["timestep"]) - 1


def test_many_to_one_reads_the_reverse_top_cell_at_the_first_step(qtbot):
    r = stack_probe("many_to_one")
    panel = make_graph(qtbot)
    panel.show_result(r)
    n = len(panel.to_csv_table()["timestep"])
    into_o = {(link.src, link.src_col, link.dst_col) for link in unrolled(panel, dst="o")}
    assert into_o == {("l2", n - 1, n - 1), ("l2_reverse", 0, n - 1)}


def test_selector_shows_one_layer_or_direction(qtbot):
    r = stack_probe()
    panel = make_graph(qtbot, size=(700, 330))
    panel.show_result(r)
    offered = [panel.view_selector.itemData(i) for i in range(panel.view_selector.count())]
    assert offered[0] == "all" and {"layer:1", "l1", "l1_reverse"} <= set(offered)
    select(panel, "l1_reverse")
    assert hidden_keys(panel) == ["l1_reverse"]
    assert "layer 1 (reverse)" in panel.heading.text
    assert set(panel.to_csv_table()) == {"timestep", "gradnorm.l1_reverse"}
    # layers left out between x, the shown cell and o: the edges say so by being dashed
    assert all(link.dashed for link in unrolled(panel, src="x"))
    assert all(link.dashed for link in unrolled(panel, dst="o"))
    select(panel, "layer:2")
    assert hidden_keys(panel) == ["l2", "l2_reverse"]
    assert not any(link.dashed for link in unrolled(panel, dst="o"))
    select(panel, "all")
    assert hidden_keys(panel) == KEYS


def test_edges_reused_for_another_view_point_at_their_new_nodes(qtbot, fake_result):
    r = fake_result("lstm", num_layers=3, bidirectional=True, T=30)
    for key in KEYS:  # one gradient everywhere: every recurrent edge has the same style
        r.arrays[f"gradnorm.{key}"][:] = 1e-3
    panel = make_graph(qtbot)
    panel.show_result(r)
    for choice in ("l1_reverse", "layer:2", "all", "l0"):
        select(panel, choice)
        px, _py = panel.vb.viewPixelSize()
        for key, edges in panel.recurrent.items():
            for edge in filter(None, edges):
                (ax, _ay), (bx, by) = edge.points
                tip = edge.arrow.pos()
                assert abs(tip.y() - by) < 1e-9, (choice, key)
                assert (bx - tip.x()) / (bx - ax) > 0, (choice, key)  # short of the end
                assert abs(bx - tip.x()) / px < panel._node_px, (choice, key)


def test_click_marker_and_hover(qtbot):
    r = stack_probe()
    panel = make_graph(qtbot)
    panel.show_result(r)
    qtbot.wait(10)
    steps = panel.to_csv_table()["timestep"].astype(int)
    panel.mark_timestep(int(steps[2]))
    assert len(panel.ring.data) == len(KEYS)  # every cell of that column
    x, y, _row, t = next(s for s in panel._hspots if s[2].key == "l1_reverse" and s[3] == steps[3])
    panel._on_move(panel.vb.mapViewToScene(QPointF(x, y)))
    assert "L1 ←" in panel.readout.text() and f"t = {t}" in panel.readout.text()
    g = r.arrays["gradnorm.l1_reverse"][t]
    assert f"{g:.1e}".split("e")[0] in panel.readout.text()
