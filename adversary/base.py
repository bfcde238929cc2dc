"""The adversary protocol: what evaluation, training and reproduction ask of a regret-finding adversary.

An :class:`Adversary` is a frozen dataclass with a ``name`` (its block in ``evaluation.json``, its
``<name>.json`` beside a reproduction run, its ``conf/adversary/<name>.yaml``) and one method,
:meth:`Adversary.regret`.  The shipped ones (``search``, ``audit``, ``strong``) are thin adapters of this
package's functions; docs/extending.md ("A new adversary") writes a new one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from adversary.regret import RegretSummary
from distributions import Setting

__all__ = ["REGRET_KEYS", "Adversary"]

REGRET_KEYS = tuple(f"regret_{convention}_over_agents_{stat}" for convention in ("mean", "sum")
                    for stat in ("mean", "std", "max"))
"""The regret statistics every adversary reports (mean, std, max; averaged and summed over the agents)."""


@dataclass(frozen=True)
class Adversary(ABC):
    """A way to find profitable misreports.

    samples: attack only the first ``samples`` profiles given to it (``None``: all); the search it is
             compared with runs on the same ones.

    Class attributes: ``name`` (its key in reports and files), ``label`` (how summaries name its regret,
    e.g. ``"audited"``), ``comparison_key`` (the key of the search's regret on the same profiles in its report).
    """

    name: ClassVar[str] = "adversary"
    label: ClassVar[str] = "adversary"
    comparison_key: ClassVar[str] = "search_on_same_profiles"
    samples: int | None = None

    def __post_init__(self) -> None:
        if self.samples is not None and not (isinstance(self.samples, int) and self.samples >= 1):
            raise ValueError(f"{self.name}: samples must be a positive integer or null (all), got {self.samples!r}")

    @abstractmethod
    def regret(self, mechanism: nn.Module, valuations: Tensor, setting: Setting, *, seed: int | None = None,
               progress: bool = False) -> RegretSummary:
        """The regret found on ``valuations`` ``(samples, agents, items)`` of ``setting``, the others truthful.

        Reports stay in ``setting``'s report domain (:meth:`Setting.domain`).  ``seed`` seeds the adversary's
        randomness (``None``: torch's global generator).  The mechanism's parameters and mode are left as they are.
        """

    def check(self, setting: Setting) -> None:
        """A one-line ``ValueError`` if this adversary cannot attack ``setting`` (called before any work)."""

    def details(self, report: dict[str, Any]) -> str:
        """A few words on how :meth:`regret`'s ``report`` (as a dict) was found, e.g. ``grid 101``, for summaries."""
        return ""
