"""A strong misreport search for settings the grid audit cannot cover (more than 3 items per bidder).

The gradient search (:func:`adversary.search.find_misreports`, steps relative to the domain's width) from many
more starts than the paper's protocol, per agent: the truth, structured starts (shading, top-k only, one item at
the maximum, permuted values, extremes: :func:`structured_starts`) and uniform random ones; every iterate is
scored and the best kept per agent and profile.  The starts and what they catch: docs/regret_audit.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from adversary.deviation import check_domain, check_valuations, domain_bounds
from adversary.regret import RegretSummary, regret, regret_statistics
from adversary.search import OPTIMIZERS, MisreportSearch, find_misreports
from utils.checks import Bounds, check_flag, check_fractions, check_int

__all__ = ["StrongReport", "StrongSettings", "strong_misreports", "strong_regret", "structured_starts"]


@dataclass(frozen=True)
class StrongSettings:
    """Settings of the strong search (docs/regret_audit.md).

    scales:        shading factors ``f`` of the starts ``low + f (v - low)`` (each in [0, 1]).
    top_k:         ``k`` of the "top-k items only" starts (``k`` >= the item count is skipped).
    permutations:  random permutations of the agent's values per profile (besides the reversal).
    max_profiles:  bid profiles per mechanism call (memory bound; at least one profile per chunk).
    """

    random_starts: int = 100
    steps: int = 2000
    lr: float = 0.01
    scales: tuple[float, ...] = (0.9, 0.75, 0.5, 0.25, 0.0)
    top_k: tuple[int, ...] = (1, 2, 3)
    single_items: bool = True
    permutations: int = 3
    extremes: bool = True
    optimizer: str = "adam"
    max_profiles: int = 32768

    def __post_init__(self) -> None:
        for name, minimum in (("random_starts", 0), ("steps", 0), ("permutations", 0), ("max_profiles", 1)):
            check_int(getattr(self, name), f"StrongSettings.{name}", minimum)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"StrongSettings.lr must be positive, got {self.lr!r}")
        check_fractions(self.scales, "StrongSettings.scales")
        for k in self.top_k:
            check_int(k, "StrongSettings.top_k entries", 1)
        for name in ("single_items", "extremes"):
            check_flag(getattr(self, name), f"StrongSettings.{name}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"StrongSettings.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")

    @property
    def search(self) -> MisreportSearch:
        """The gradient search run from the starts (its ``restarts`` are the random starts)."""
        return MisreportSearch(steps=self.steps, lr=self.lr, restarts=self.random_starts, optimizer=self.optimizer)

    def structured_count(self, n_items: int) -> int:
        """How many structured starts :func:`structured_starts` makes for ``n_items`` items."""
        return (len(self.scales) + sum(k < n_items for k in self.top_k) + (n_items if self.single_items else 0)
                + 1 + self.permutations + (2 if self.extremes else 0))

    def starts(self, n_items: int) -> int:
        """Starts per agent and profile: the truth, the structured ones and the random ones."""
        return 1 + self.structured_count(n_items) + self.random_starts


def structured_starts(valuations: Tensor, low: Tensor, high: Tensor, settings: StrongSettings,
                      generator: torch.Generator | None = None) -> Tensor:
    """The structured starts ``(starts, batch, agents, items)`` of ``valuations`` ``(batch, agents, items)``.

    Each agent's start is built from its own row; ``low``/``high`` are the domain ``(agents, items)``; the count
    is ``settings.structured_count(items)``.  ``generator`` draws the random permutations.
    """
    batch, n, m = valuations.shape
    width = high - low
    unit = torch.where(width > 0, (valuations - low) / torch.where(width > 0, width, 1), 0)  # (B, n, m) in [0, 1]
    at_low, at_high = low.expand(batch, n, m), high.expand(batch, n, m)
    starts = [low + f * (valuations - low) for f in settings.scales]
    order = unit.argsort(-1, descending=True)  # items by value, best first
    for k in settings.top_k:
        if k < m:
            top = torch.zeros_like(valuations, dtype=torch.bool).scatter(-1, order[..., :k], True)
            starts.append(torch.where(top, valuations, at_low))
    if settings.single_items:
        one_hot = torch.eye(m, dtype=torch.bool, device=valuations.device)
        starts.extend(torch.where(one_hot[j], at_high, at_low) for j in range(m))
    ranked = unit.gather(-1, order)  # (B, n, m) best first
    reversed_unit = torch.empty_like(unit).scatter(-1, order, ranked.flip(-1))  # the best item gets the worst value
    permutations = [unit.gather(-1, torch.rand(unit.shape, generator=generator, dtype=unit.dtype,
                                                device=unit.device).argsort(-1)) for _ in range(settings.permutations)]
    starts.extend(low + width * u for u in (reversed_unit, *permutations))
    if settings.extremes:
        starts.extend([at_high, (low + high).expand(batch, n, m) / 2])
    return torch.stack(starts)


def strong_misreports(mechanism: nn.Module, valuations: Tensor, settings: StrongSettings = StrongSettings(),
                      low: Bounds | Tensor = 0.0, high: Bounds | Tensor = 1.0, generator: torch.Generator | None = None,
                      progress: bool = False) -> Tensor:
    """Best report ``(samples, agents, items)`` of every agent in every profile of ``valuations``, from all starts.

    ``low``/``high``: the report domain, as for :func:`adversary.search.find_misreports`; ``generator`` (on the
    valuations' device) draws the random starts and permutations.
    """
    if not isinstance(settings, StrongSettings):
        raise ValueError(f"settings must be a StrongSettings, got {type(settings).__name__}")
    check_valuations(valuations)
    check_domain(valuations, low, high)
    if generator is not None and generator.device.type != valuations.device.type:
        raise ValueError(f"generator is on {generator.device} but valuations on {valuations.device}; create it there")
    lo, hi = domain_bounds(low, high, valuations)  # (n, m)
    _, n, m = valuations.shape
    chunk = max(1, settings.max_profiles // (settings.starts(m) * n))
    found = []
    for values in tqdm(valuations.split(chunk), desc="strong adversary", disable=not progress):
        starts = structured_starts(values, lo, hi, settings, generator)
        found.append(find_misreports(mechanism, values, settings.search, lo, hi, generator, init=starts))
    return torch.cat(found)


@dataclass(frozen=True)
class StrongReport(RegretSummary):
    """Summary of the strong search: its regret (:class:`adversary.regret.RegretSummary`) and its settings."""

    n_samples: int
    starts: int
    structured_starts: int
    random_starts: int
    steps: int
    lr: float
    optimizer: str
    time_s: float


def strong_regret(mechanism: nn.Module, valuations: Tensor, settings: StrongSettings = StrongSettings(),
                  low: Bounds | Tensor = 0.0, high: Bounds | Tensor = 1.0, seed: int = 0,
                  progress: bool = False) -> StrongReport:
    """The regret of :func:`strong_misreports` on ``valuations`` ``(samples, agents, items)``, summarized.

    ``seed`` seeds the random starts and permutations (a generator on the valuations' device).
    """
    start = time.perf_counter()
    generator = torch.Generator(device=valuations.device).manual_seed(seed)
    misreports = strong_misreports(mechanism, valuations, settings, low, high, generator, progress)
    with torch.no_grad():
        found = regret(mechanism, valuations, misreports).regret
    m = valuations.shape[2]
    return StrongReport(**regret_statistics(found), n_samples=len(valuations), starts=settings.starts(m),
                        structured_starts=settings.structured_count(m), random_starts=settings.random_starts,
                        steps=settings.steps, lr=settings.lr, optimizer=settings.optimizer,
                        time_s=time.perf_counter() - start)
