"""reporting: optimal boundaries vs hand derivations, heatmap grids vs closed forms, TensorBoard, curves, tables, reproduction, sweep."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from mechanisms.networks import MLP
from baselines.optimal import free_and_priced, manelli_vincent, posted_price
from mechanisms.sinkhorn_auction import SinkhornMechanism
from baselines.vcg import VCG
from reporting import sweep_plot
from runs import reproduce
from reporting.curves import curves_figure, read_scalars
from reporting.curves import main as curves_main
from reporting.heatmaps import heatmap_figure, mechanism_grid, menu_boundaries, mirror_image, optimal_boundaries
from reporting.paper import PAPER_ROWS
from reporting.tables import duration, markdown_table, mean_std, number
from tests.brute_force import best_welfare
from tests.test_config import CONF, ROOT, make_config
from tests.test_evaluate import TINY
from runs.run import run

PNG = b"\x89PNG\r\n\x1a\n"
P = 1 / math.sqrt(3)
C = (2 - math.sqrt(2)) / 3  # Manelli-Vincent: bundle price minus single-item price


def _normalized(segments: list) -> np.ndarray:
    """Segments as a ``(segments, 4)`` array, endpoints and segments in a canonical order."""
    return np.array(sorted(tuple(np.round(sorted(map(tuple, segment)), 9).ravel()) for segment in segments))


@pytest.mark.parametrize(
    "menu, high, expected",
    [
        # Pavlov: no sale below the price, the better item above it
        (posted_price(), 1.0, [((P, 0), (P, P)), ((0, P), (P, P)), ((P, P), (1, 1))]),
        (posted_price(2.0), 2.0, [((2 * P, 0), (2 * P, 2 * P)), ((0, 2 * P), (2 * P, 2 * P)), ((2 * P, 2 * P), (2, 2))]),
        # item 1 free, item 2 at 1/3: take item 2 iff v2 - v1 >= 1/3
        (free_and_priced(), 1.0, [((0, 1 / 3), (2 / 3, 1))]),
        # Manelli-Vincent: single items at 2/3, the bundle at 2/3 + C
        (
            manelli_vincent(),
            1.0,
            [((2 / 3, 0), (2 / 3, C)), ((0, 2 / 3), (C, 2 / 3)), ((2 / 3, C), (1, C)), ((C, 2 / 3), (C, 1)), ((C, 2 / 3), (2 / 3, C))],
        ),
    ],
)
def test_menu_boundaries_match_the_hand_derived_regions(menu, high: float, expected: list) -> None:
    found = _normalized(menu_boundaries(menu, 0.0, high))
    assert found.shape == (len(expected), 4) and np.allclose(found, _normalized(expected), atol=1e-8)


@pytest.mark.parametrize("menu", [posted_price(), free_and_priced(), manelli_vincent()])
def test_menu_boundaries_separate_exactly_where_the_menu_choice_changes(menu) -> None:
    segments = menu_boundaries(menu)
    choice = lambda points: menu(torch.as_tensor(points, dtype=torch.float64).view(-1, 1, 2))[0][:, 0]  # noqa: E731
    # every segment is a boundary: just off either side, the menu allocates differently
    for (x0, y0), (x1, y1) in segments:
        t = np.linspace(0.1, 0.9, 9)[:, None]
        points = (1 - t) * np.array([x0, y0]) + t * np.array([x1, y1])
        normal = np.array([y0 - y1, x1 - x0]) / math.hypot(x1 - x0, y1 - y0)
        assert not torch.equal(choice(points + 1e-4 * normal), choice(points - 1e-4 * normal))
    # and every change of allocation between neighbouring grid points lies next to a segment
    n = 121
    axis = (np.arange(n) + 0.5) / n
    xs, ys = np.meshgrid(axis, axis)
    grid = choice(np.stack([xs.ravel(), ys.ravel()], -1)).view(n, n, 2)
    changes = [((xs[r, c] + xs[r2, c2]) / 2, (ys[r, c] + ys[r2, c2]) / 2)
               for r in range(n) for c in range(n) for r2, c2 in ((r + 1, c), (r, c + 1))
               if r2 < n and c2 < n and not torch.equal(grid[r, c], grid[r2, c2])]
    assert changes

    def distance(point, segment) -> float:
        a, b, p = np.array(segment[0]), np.array(segment[1]), np.array(point)
        t = np.clip((p - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
        return float(np.linalg.norm(p - a - t * (b - a)))

    assert max(min(distance(point, s) for s in segments) for point in changes) < 1.5 / n


def test_optimal_boundaries_only_where_an_optimal_menu_is_known() -> None:
    assert np.allclose(_normalized(optimal_boundaries("exactly_k")), _normalized([((0, 1 / 3), (2 / 3, 1))]))
    assert len(optimal_boundaries("unit", high=2.0)) == 3
    assert optimal_boundaries("unit", agents=2) == [] and optimal_boundaries("unit", items=3) == []
    assert optimal_boundaries("unit", low=0.5) == []  # known for U[0, high] only


def test_mirror_image_swaps_the_items_and_is_empty_for_a_symmetric_optimum() -> None:
    # exactly-one: "item 1 free, item 2 at 1/3" has the boundary v2 = v1 + 1/3; its mirror v1 = v2 + 1/3
    mirrored = mirror_image(optimal_boundaries("exactly_k"))
    assert np.allclose(_normalized(mirrored), _normalized([((1 / 3, 0), (1, 2 / 3))]))
    assert mirror_image(optimal_boundaries("unit")) == []  # the posted price 1/sqrt(3) is its own mirror image


def test_grid_of_the_posted_price_is_its_closed_form() -> None:
    grid = mechanism_grid(posted_price(), resolution=41)
    v = grid.values.double()
    v2, v1 = torch.meshgrid(v, v, indexing="ij")
    item1 = (v1 >= P) & (v1 >= v2)  # ties go to item 1 (the earlier of two equally priced entries)
    item2 = (v2 >= P) & (v2 > v1)
    assert torch.equal(grid.allocation[..., 0].bool(), item1)
    assert torch.equal(grid.allocation[..., 1].bool(), item2)
    assert torch.allclose(grid.payment, P * (item1 | item2).double())


@pytest.mark.parametrize("agent", [0, 1])
def test_grid_with_another_bidder_fixed_matches_brute_force_vcg(agent: int) -> None:
    fixed = (0.3, 0.6)
    others = torch.zeros(2, 2)
    others[1 - agent] = torch.tensor(fixed)
    grid = mechanism_grid(VCG(2, 2, "unit"), agent=agent, others=others, resolution=13)
    assert torch.isnan(grid.bids[agent]).all() and grid.bids[1 - agent].tolist() == pytest.approx(fixed)
    for r, y in enumerate(grid.values.tolist()):
        for c, x in enumerate(grid.values.tolist()):
            values = [[x, y], list(fixed)] if agent == 0 else [list(fixed), [x, y]]
            _, owners = best_welfare(values, [0, 1], [1, 1], exact=False)
            if len(owners) > 1:
                continue  # a tie: any welfare-maximizing allocation is VCG
            mine = [float(owner == agent) for owner in owners[0]]
            without, _ = best_welfare(values, [1 - agent], [1, 1], exact=False)
            others_get = sum(values[1 - agent][j] for j, owner in enumerate(owners[0]) if owner == 1 - agent)
            assert grid.allocation[r, c].tolist() == mine
            assert float(grid.payment[r, c]) == pytest.approx(without - others_get, abs=1e-6)


def test_heatmap_figure_draws_three_panels_and_the_optimal_boundary(tmp_path: Path) -> None:
    figure = heatmap_figure(posted_price(), resolution=21)
    images = [axes for axes in figure.axes if axes.images]
    assert len(images) == 3
    drawn = [((line.get_xdata()[0], line.get_ydata()[0]), (line.get_xdata()[1], line.get_ydata()[1])) for line in images[0].lines]
    assert np.allclose(_normalized(drawn), _normalized(optimal_boundaries("unit")))
    figure.savefig(tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes().startswith(PNG)
    several = heatmap_figure(VCG(2, 2, "unit"), others=torch.tensor([[0.0, 0.0], [0.3, 0.6]]), resolution=11)
    assert all(not axes.lines for axes in several.axes) and "bidder 2 bids (0.30, 0.60)" in several._suptitle.get_text()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(agent=1), "agent must be an integer in"),
        (dict(others=torch.zeros(3, 2)), "others must be a float or an"),
        (dict(others=float("nan")), "NaN"),
        (dict(resolution=1), "resolution must be"),
        (dict(low=1.0, high=0.0), "low < high"),
    ],
)
def test_grid_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mechanism_grid(posted_price(), **kwargs)


def test_grid_needs_two_items() -> None:
    with pytest.raises(ValueError, match="two items"):
        mechanism_grid(SinkhornMechanism(1, 3, "unit", allocation_net=MLP((4,)), payment_net=MLP((4,))))


def test_heatmaps_are_logged_to_tensorboard_during_validation(tmp_path: Path) -> None:
    # wired into the default callbacks (conf/callbacks/default.yaml)
    cfg = make_config(*TINY, "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=1", "callbacks.heatmaps.every_n_validations=2",
                      "callbacks.heatmaps.resolution=11", output_dir=tmp_path)
    run(cfg)
    accumulator = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    accumulator.Reload()
    images = accumulator.Images("heatmaps")
    assert [event.step for event in images] == [4]  # after the 2nd of 3 validations, one per epoch of 2 batches
    assert images[0].encoded_image_string.startswith(PNG)


def test_training_curves_read_back_what_was_written(tmp_path: Path) -> None:
    writer = SummaryWriter(str(tmp_path / "tensorboard"))
    for step in range(4):
        writer.add_scalar("train/revenue", 0.25 * step, step)
        writer.add_scalar("val/regret_sum_over_agents", 0.5**step, step)
    writer.add_scalar("reference/optimal_revenue", 0.375, 3)
    writer.close()
    scalars = read_scalars(tmp_path)
    assert scalars["train/revenue"] == [(0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75)]
    assert scalars["val/regret_sum_over_agents"] == [(s, 0.5**s) for s in range(4)]
    figure = curves_figure(scalars)
    revenue_axes, regret_axes = figure.axes
    assert [line.get_label() for line in revenue_axes.lines] == ["train/revenue", "optimal 0.3750"]
    assert regret_axes.get_yscale() == "log"
    assert curves_main([str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes().startswith(PNG)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert curves_main([str(empty)]) == 2


def test_tables_use_the_paper_formats() -> None:
    assert mean_std(0.397, 0.248) == "0.397 (0.248)"
    assert mean_std(0.0004, 0.0) == "<0.001 (0.000)"
    assert mean_std(None) == "n/a"
    assert duration(3 * 3600 + 25 * 60 + 10) == "3h25m" and duration(18 * 60 + 34) == "18m34s" and duration(7.4) == "7s"
    assert markdown_table(["a", "b"], [[1, "x|y"], ["two\nlines", None]]) == (
        "| a | b |\n|---|---|\n| 1 | x\\|y |\n| two lines | None |"
    )
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        markdown_table(["a", "b"], [[1]])


def test_every_paper_row_has_a_preset_of_its_setting() -> None:
    presets = sorted(p.stem for p in (CONF / "experiment").glob("paper_*.yaml"))
    assert sorted(PAPER_ROWS) == presets
    for preset, row in PAPER_ROWS.items():
        cfg = make_config(f"experiment={preset}")
        assert row.setting.endswith(f"{cfg.agents}x{cfg['items']}")
        assert ("RegretNet" in row.setting) == cfg.mechanism._target_.endswith("RegretNet")
        assert ("xactly" in row.setting) == (cfg.demand.name == "exactly_k")
        assert row.reference_kind == ("optimal" if cfg.agents == 1 else "VCG")


def _table_row(markdown: str, preset: str) -> list[str]:
    """The cells of the table row of ``preset``."""
    line = next(line for line in markdown.splitlines() if line.startswith("| ") and f"(`{preset}`)" in line)
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_reproduction_trains_a_preset_and_tabulates_it_next_to_the_paper(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    budget = [override for override in TINY if not override.startswith(("seed", "mechanism.allocation_net", "mechanism.payment_net"))]
    argv = ["paper_1x2_exactly_one", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "r.md")]
    assert reproduce.main([*argv, *(f"--override={o}" for o in budget)]) == 0
    metrics = json.loads((tmp_path / "runs" / "paper_1x2_exactly_one" / "metrics.json").read_text())
    table = (tmp_path / "r.md").read_text()
    row = _table_row(table, "paper_1x2_exactly_one")
    test = metrics["test"]
    assert row[1] == mean_std(test["revenue_mean"], test["revenue_std"]) and row[2] == "0.079 (0.127)"
    assert row[3] == mean_std(test["regret_sum_over_agents_mean"], test["regret_sum_over_agents_std"])
    # the audit of the tested weights on the same test profiles, beside the search's regret
    audited = json.loads((tmp_path / "runs" / "paper_1x2_exactly_one" / "audit.json").read_text())
    assert audited["n_samples"] == test["n_samples"] and audited["grid_points"] == 101
    assert audited["search_on_audited"]["regret_sum_over_agents_mean"] == test["regret_sum_over_agents_mean"]
    assert row[4].startswith(mean_std(audited["regret_sum_over_agents_mean"], audited["regret_sum_over_agents_std"]))
    assert row[5] == number(audited["regret_sum_over_agents_max"])
    assert row[7] == "0.074" and row[10] == "0.069 (optimal)" and row[12] == "1h21m"
    refs = metrics["references"]  # the best truthful baseline on the run's test profiles
    assert refs["reference/best_truthful_baseline"] == "pay_to_choose"
    assert row[9] == f"pay_to_choose {number(refs['reference/best_truthful_baseline_revenue'])}"
    assert row[13].startswith("CPU") and "trainer.max_epochs=2" in row[14]
    # the table can be rebuilt without training (--force: r.md exists); a preset never run says so, and the
    # table that lacks it goes to r.partial.md (r.md is kept); the exit status says a row is missing
    capsys.readouterr()
    assert reproduce.main(["paper_1x2_exactly_one", "paper_2x3_unit", "--collect-only", *argv[1:]]) == 2
    assert reproduce.main(["paper_1x2_exactly_one", "paper_2x3_unit", "--collect-only", *argv[1:], "--force"]) == 1
    assert (tmp_path / "r.md").read_text() == table
    rebuilt = (tmp_path / "r.partial.md").read_text()
    assert _table_row(rebuilt, "paper_1x2_exactly_one") == row
    assert _table_row(rebuilt, "paper_2x3_unit")[1] == "not run"


def test_reproduction_trains_presets_side_by_side(tmp_path: Path) -> None:
    """--jobs 2: both runs are trained, at the same time (their start-to-end intervals overlap)."""
    budget = [override for override in TINY if not override.startswith(("seed", "mechanism.allocation_net", "mechanism.payment_net"))]
    presets = ["paper_1x2_unit", "paper_1x2_unit_regretnet"]
    argv = [*presets, "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "r.md"), "--no-audit", "--jobs", "2"]
    assert reproduce.main([*argv, *(f"--override={o}" for o in budget)]) == 0
    sidecars = [json.loads((tmp_path / "runs" / p / "reproduction.json").read_text()) for p in presets]
    (a_start, a_end), (b_start, b_end) = ((s["started_at"], s["started_at"] + s["wall_time_s"]) for s in sidecars)
    assert a_start < b_end and b_start < a_end
    table = (tmp_path / "r.md").read_text()
    assert all(_table_row(table, p)[1] != "not run" for p in presets)


@pytest.mark.parametrize(
    "argv, message",
    [(["paper_1x2_unit", "--jobs", "0"], "--jobs must be a positive integer"), (["paper_9x9"], "unknown preset"), (["paper_1x2_unit", "--override", "experiment=x"], "may not set experiment"),
     (["paper_1x2_unit", "--override", "novalue"], "must be KEY=VALUE")],
)
def test_reproduction_rejects_bad_input(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert reproduce.main([*argv, "--runs-dir", str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    assert message in capsys.readouterr().err


def test_a_failed_run_is_reported(tmp_path: Path) -> None:
    argv = ["paper_1x2_unit", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "r.md"), "--timeout", "0.5",
            "--no-audit"]  # (a bad override is refused before any run: tests/test_faults.py)
    assert reproduce.main(argv) == 1
    assert "failed (exit -1" in (tmp_path / "r.md").read_text()


def test_sweep_plot_from_a_real_multirun(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", "sinkhorn.eps_final=0.1,0.03", *TINY, f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (sweep / "2").mkdir()  # a job that died before writing metrics.json is skipped
    points = sweep_plot.read_sweep(sweep)
    assert [p.value for p in points] == [0.03, 0.1]
    for point in points:
        test = json.loads((sweep / point.job / "metrics.json").read_text())["test"]
        assert (point.revenue_mean, point.regret_sum_mean, point.n_samples) == (test["revenue_mean"], test["regret_sum_over_agents_mean"], 24)
    assert sweep_plot.main([str(sweep)]) == 0
    assert (sweep / "sweep.png").read_bytes().startswith(PNG)
    assert len(json.loads((sweep / "sweep.json").read_text())) == 2
    assert (sweep / "sweep.md").read_text().splitlines()[2].startswith("| 0.03 |")
    assert sweep_plot.main([str(sweep), "--key", "sinkhorn.nope", "--force"]) == 2
    assert sweep_plot.main([str(tmp_path / "missing")]) == 2
