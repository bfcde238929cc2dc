"""Allocation and payment heatmaps over one bidder's values for two items, as in Figure 2 of the paper.

:func:`heatmap_figure` draws, over one bidder's ``(v1, v2)`` grid (:func:`mechanism_grid`; every other bidder bids
fixed, stated values), the allocation probability of each item and the payment, with the boundaries of the known
optimal mechanism (:func:`optimal_boundaries`, derived exactly by :func:`menu_boundaries`) as dotted lines.
Figures use the Agg canvas (no pyplot, no display): ``figure.savefig("x.png")`` or ``add_figure(tag, figure)``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

from mechanisms.demand import Demand
from mechanisms.menu import MenuMechanism
from baselines.references import optimal_mechanism
from distributions import Setting, Uniform, ValuationDistribution
from utils.checks import Bounds, check_int, is_int

__all__ = ["HeatmapGrid", "Segment", "heatmap_figure", "mechanism_grid", "menu_boundaries", "mirror_image",
           "optimal_boundaries"]

Segment = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class HeatmapGrid:
    """A mechanism evaluated on one bidder's value grid.

    values:     ``(resolution,)`` grid of values, shared by both items.
    allocation: ``(resolution, resolution, 2)``; ``allocation[r, c, j]`` is the probability that the bidder gets
                item ``j`` when it bids ``v1 = values[c]``, ``v2 = values[r]`` (rows: v2, as ``imshow`` draws them).
    payment:    ``(resolution, resolution)``, the bidder's payment, laid out likewise.
    agent:      the bidder (0-based).
    bids:       ``(agents, items)`` bids of every bidder; the ``agent`` row is the grid's.
    """

    values: Tensor
    allocation: Tensor
    payment: Tensor
    agent: int
    bids: Tensor


def _agent_bound(bound: Bounds, agent: int) -> float:
    return float(bound) if isinstance(bound, (int, float)) else float(list(bound)[agent])


def mechanism_grid(mechanism: nn.Module, agent: int = 0, others: float | Tensor = 0.5, resolution: int = 101,
                   low: Bounds = 0.0, high: Bounds = 1.0) -> HeatmapGrid:
    """Evaluate a two-item ``mechanism`` on bidder ``agent``'s ``resolution x resolution`` value grid.

    The bidder's values span ``[low, high]`` (floats, or one per agent: its own entry is used).  ``others`` fixes
    the other bidders' bids: one float for every item, or an ``(agents, items)`` tensor whose ``agent`` row is
    ignored.  One forward pass, without gradients; the mechanism's mode is left as is.
    """
    n_agents, n_items = getattr(mechanism, "n_agents", None), getattr(mechanism, "n_items", None)
    if not isinstance(n_agents, int) or not isinstance(n_items, int):
        raise ValueError("the mechanism must have integer attributes n_agents and n_items (mechanisms.base.Mechanism)")
    if n_items != 2:
        raise ValueError(f"heatmaps are drawn for two items, the mechanism has {n_items}")
    if not (is_int(agent, 0) and agent < n_agents):
        raise ValueError(f"agent must be an integer in [0, {n_agents - 1}], got {agent!r}")
    check_int(resolution, "resolution", 2)
    lo, hi = _agent_bound(low, agent), _agent_bound(high, agent)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"the value range needs finite low < high, got [{lo}, {hi}]")
    tensor = next(itertools.chain(mechanism.parameters(), mechanism.buffers()), None)
    floating = tensor is not None and tensor.is_floating_point()
    device, dtype = (tensor.device, tensor.dtype) if floating else (torch.device("cpu"), torch.float32)
    bids = torch.as_tensor(others, dtype=dtype, device=device)
    try:
        bids = bids.broadcast_to(n_agents, n_items).clone()
    except RuntimeError as error:
        raise ValueError(f"others must be a float or an ({n_agents}, {n_items}) tensor, got shape "
                         f"{tuple(bids.shape)}") from error
    if not bool(torch.isfinite(bids).all()):
        raise ValueError("others contains NaN or Inf")
    values = torch.linspace(lo, hi, resolution, dtype=dtype, device=device)
    v2, v1 = torch.meshgrid(values, values, indexing="ij")  # rows: v2, columns: v1
    profiles = bids.expand(resolution * resolution, n_agents, n_items).clone()
    profiles[:, agent] = torch.stack([v1.flatten(), v2.flatten()], -1)
    with torch.no_grad():
        allocation, payment = mechanism(profiles)
    bids[agent] = float("nan")
    return HeatmapGrid(values=values.cpu(), allocation=allocation[:, agent].reshape(resolution, resolution, 2).cpu(),
                       payment=payment[:, agent].reshape(resolution, resolution).cpu(), agent=agent, bids=bids.cpu())


def menu_boundaries(menu: MenuMechanism, low: float = 0.0, high: float = 1.0, tol: float = 1e-9) -> list[Segment]:
    """The boundaries between the entries of a two-item single-bidder menu, inside ``[low, high]^2``.

    Entries ``e`` and ``f`` (allocations ``a``, prices ``p``) tie on the line ``(a_e - a_f) . v = p_e - p_f``; the
    part of it where both are at least as good as every other entry, clipped to the square, is one segment
    ``((x0, y0), (x1, y1))`` (Cyrus-Beck clipping against those half-planes).
    """
    if menu.n_items != 2:
        raise ValueError(f"menu boundaries are drawn for two items, the menu has {menu.n_items}")
    allocations, prices = (tensor.double().cpu().numpy() for tensor in (menu.menu, menu.prices))
    box = [(np.array([1.0, 0.0]), low), (np.array([-1.0, 0.0]), -high), (np.array([0.0, 1.0]), low),
           (np.array([0.0, -1.0]), -high)]
    segments: list[Segment] = []
    for e, f in itertools.combinations(range(len(prices)), 2):
        normal, offset = allocations[e] - allocations[f], prices[e] - prices[f]
        norm2 = float(normal @ normal)
        if norm2 < tol:
            continue  # same allocation: the cheaper entry always wins, no boundary
        origin, direction = normal * offset / norm2, np.array([-normal[1], normal[0]])
        # e (hence f: they tie on the line) at least as good as every other entry g
        constraints = box + [(allocations[e] - allocations[g], prices[e] - prices[g])
                             for g in range(len(prices)) if g not in (e, f)]
        t_low, t_high = -np.inf, np.inf
        for coefficient, bound in constraints:  # coefficient . v >= bound along v = origin + t direction
            slope, rest = float(coefficient @ direction), float(bound - coefficient @ origin)
            if abs(slope) < tol:
                if rest > tol:
                    t_low, t_high = np.inf, -np.inf  # the whole line violates this constraint
                continue
            if slope > 0:
                t_low = max(t_low, rest / slope)
            else:
                t_high = min(t_high, rest / slope)
        if t_high - t_low > tol:
            start, end = origin + t_low * direction, origin + t_high * direction
            segments.append(((float(start[0]), float(start[1])), (float(end[0]), float(end[1]))))
    return segments


def optimal_boundaries(demand: Demand | str, k: int = 1, agents: int = 1, items: int = 2, low: Bounds = 0.0,
                       high: Bounds = 1.0, *, distribution: ValuationDistribution | None = None) -> list[Segment]:
    """Boundaries of the known optimal mechanism for the setting (empty where none is known or it is no menu);
    values from ``distribution`` (default i.i.d. U[low, high])."""
    demand = demand if isinstance(demand, Demand) else Demand(demand, k)
    if items != 2 or agents != 1:
        return []
    if distribution is not None:
        low, high = distribution.agent_ranges()
    lo, hi = _agent_bound(low, 0), _agent_bound(high, 0)
    optimum = optimal_mechanism(Setting(agents, items, demand, distribution or Uniform(agents, items, lo, hi)))
    return menu_boundaries(optimum, lo, hi) if isinstance(optimum, MenuMechanism) else []


def mirror_image(segments: Sequence[Segment], tol: float = 1e-9) -> list[Segment]:
    """The segments with the two items swapped, or ``[]`` when that draws the same figure (with equal ranges for
    both items, the mirror image of an optimal mechanism is optimal too)."""
    swapped = [((y0, x0), (y1, x1)) for (x0, y0), (x1, y1) in segments]

    def key(segment: Segment) -> tuple[float, ...]:
        ends = sorted((round(x / tol) * tol, round(y / tol) * tol) for x, y in segment)
        return tuple(v for end in ends for v in end)

    return [] if sorted(map(key, swapped)) == sorted(map(key, segments)) else swapped


def heatmap_figure(mechanism: nn.Module, agent: int = 0, others: float | Tensor = 0.5, resolution: int = 101,
                   low: Bounds = 0.0, high: Bounds = 1.0, distribution: ValuationDistribution | None = None) -> Figure:
    """Heatmaps of ``P(item 1)``, ``P(item 2)`` and the payment over bidder ``agent``'s (v1, v2) grid.

    The boundaries of the known optimal mechanism (:func:`optimal_boundaries`; none for several bidders) are drawn
    as black dotted lines, the other bidders' fixed bids stated in the title.  With ``distribution``, the value
    ranges and the optimum are the distribution's.
    """
    if distribution is not None:
        low, high = distribution.agent_ranges()
    grid = mechanism_grid(mechanism, agent, others, resolution, low, high)
    n_agents, demand = grid.bids.shape[0], getattr(mechanism, "demand", None)
    boundaries = (optimal_boundaries(demand, agents=n_agents, low=low, high=high, distribution=distribution)
                  if isinstance(demand, Demand) else [])
    mirrored = mirror_image(boundaries)
    lo, hi = float(grid.values[0]), float(grid.values[-1])
    figure = Figure(figsize=(13.5, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    panels = [(grid.allocation[..., j], f"P(item {j + 1})", "Blues", (0.0, 1.0)) for j in range(2)]
    panels.append((grid.payment, "payment", "Oranges", (0.0, max(float(grid.payment.max()), 1e-9))))
    for axes, (data, label, cmap, (vmin, vmax)) in zip(figure.subplots(1, 3), panels):
        image = axes.imshow(data.numpy(), origin="lower", extent=(lo, hi, lo, hi), cmap=cmap, vmin=vmin, vmax=vmax,
                            aspect="equal")
        for segments, style in ((boundaries, ":"), (mirrored, "--")):
            for (x0, y0), (x1, y1) in segments:
                axes.plot([x0, x1], [y0, y1], color="black", linestyle=style, linewidth=2 if style == ":" else 1)
        axes.set(xlim=(lo, hi), ylim=(lo, hi), title=label, xlabel=f"v1 (bidder {agent + 1}'s value for item 1)",
                 ylabel=f"v2 (bidder {agent + 1}'s value for item 2)")
        figure.colorbar(image, ax=axes, shrink=0.85)
    heading = getattr(mechanism, "name", None) or type(mechanism).__name__
    if n_agents > 1:
        heading += " - " + "; ".join(f"bidder {i + 1} bids ({', '.join(f'{v:.2f}' for v in grid.bids[i].tolist())})"
                                     for i in range(n_agents) if i != agent)
    if boundaries:
        heading += " - dotted: optimal mechanism" + ("; dashed: its mirror image, equally optimal" if mirrored else "")
    figure.suptitle(heading)
    return figure
