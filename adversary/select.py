"""Adversaries by name: ``conf/adversary/<name>.yaml`` (or any YAML file) instantiated with its overrides.

An adversary's YAML is a ``_target_`` node naming its class (a subclass of :class:`adversary.base.Adversary`)
with its fields; :func:`load_adversary` merges ``KEY=VALUE`` overrides into it and instantiates it with
``hydra.utils.instantiate``.  :func:`selected_adversaries` turns the command-line options of ``evaluate.py``
and ``runs.reproduce`` into adversaries: ``--adversary NAME`` and ``--adversary-option NAME.KEY=VALUE``, and the
older flags of the two shipped ones (``--audit-points`` is ``--adversary-option audit.settings.points``, ...:
:data:`FLAGS`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import yaml
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from adversary.audit import AuditSettings
from adversary.base import Adversary
from adversary.strong import StrongSettings
from utils.checks import check_positive_int, one_line

__all__ = ["ADVERSARY_NAMES", "CONF", "FLAGS", "SHORTCUTS", "add_adversary_options", "load_adversary", "selected_adversaries"]

CONF = Path(__file__).resolve().parents[1] / "conf" / "adversary"
ADVERSARY_NAMES = tuple(sorted(path.stem for path in CONF.glob("*.yaml")))
"""The shipped adversaries: the files of ``conf/adversary/``."""
SHORTCUTS = {
    "audit": "the exhaustive regret audit: a grid over each bidder's report, then a local refinement (at most 3 items)",
    "strong": "the strong misreport search: many random and structured starts, long Adam runs (any number of items)",
}
"""The older switches ``--audit`` and ``--strong``: short for ``--adversary audit`` and ``--adversary strong``."""
FLAGS = {
    "audit_points": ("audit", "settings.points", int, "grid points per reported number (default 101 for 1-2 items, 31 for 3)"),
    "audit_samples": ("audit", "samples", int, "audit the first N test profiles (default: all)"),
    "audit_max_profiles": ("audit", "settings.max_profiles", int, f"bid profiles per call (default {AuditSettings.max_profiles})"),
    "strong_starts": ("strong", "settings.random_starts", int, f"its random starts (default {StrongSettings.random_starts})"),
    "strong_steps": ("strong", "settings.steps", int, f"its Adam steps per start (default {StrongSettings.steps})"),
    "strong_lr": ("strong", "settings.lr", float, f"its learning rate relative to the domain's width (default {StrongSettings.lr})"),
    "strong_samples": ("strong", "samples", int, "the strong adversary on the first N test profiles (default: all)"),
    "strong_max_profiles": ("strong", "settings.max_profiles", int, f"bid profiles per call (default {StrongSettings.max_profiles})"),
}
"""The older flags (argparse destinations): the adversary and the key they set, their type and help."""


def _path(spec: str) -> Path:
    """The YAML file of ``spec``: a name in ``conf/adversary/`` or a path ending in ``.yaml``."""
    path = Path(spec) if spec.endswith((".yaml", ".yml")) else CONF / f"{spec}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown adversary {spec!r}: give one of {', '.join(ADVERSARY_NAMES)} (conf/adversary/) "
                         "or the path of an adversary's YAML file")
    return path


def load_adversary(spec: str, overrides: Sequence[str] = ()) -> Adversary:
    """The adversary of ``spec`` (a name or a YAML path) with ``overrides`` (``KEY=VALUE``, e.g. ``settings.points=21``).

    A one-line ``ValueError`` for an unknown name, a bad override or a value its class refuses."""
    try:
        node = OmegaConf.merge(OmegaConf.load(_path(spec)), OmegaConf.from_dotlist(list(overrides)))
        adversary = instantiate(node, _convert_="all")
    except (HydraException, OmegaConfBaseException, yaml.YAMLError) as error:
        raise ValueError(f"adversary {spec}: {one_line(error)}") from error
    if not isinstance(adversary, Adversary):
        raise ValueError(f"adversary {spec}: its _target_ must be an adversary.base.Adversary, got {type(adversary).__name__}")
    return adversary


def add_adversary_options(parser: argparse._ActionsContainer, shortcuts: Sequence[str] = (), flags: Sequence[str] = ()) -> None:
    """``--adversary`` and ``--adversary-option`` (both repeatable), the switches ``shortcuts`` (:data:`SHORTCUTS`)
    and the older ``flags`` (:data:`FLAGS`)."""
    parser.add_argument("--adversary", action="append", default=[], metavar="NAME",
                        help=f"also run this adversary: {', '.join(ADVERSARY_NAMES)} (conf/adversary/NAME.yaml) or the path "
                        "of an adversary's YAML file (docs/extending.md); repeatable")
    parser.add_argument("--adversary-option", action="append", default=[], metavar="NAME.KEY=VALUE",
                        help="set a field of a selected adversary, e.g. audit.settings.points=41; repeatable")
    for name in shortcuts:
        parser.add_argument(f"--{name}", action="append_const", dest="adversary", const=name,
                            help=f"--adversary {name}: {SHORTCUTS[name]}")
    for flag in flags:
        _, _, kind, text = FLAGS[flag]
        parser.add_argument(f"--{flag.replace('_', '-')}", type=kind, help=text)


def selected_adversaries(args: argparse.Namespace) -> list[Adversary]:
    """The adversaries ``args`` select: ``args.adversary`` in order, each with its ``args.adversary_option``\\ s and
    the older flags (:data:`FLAGS`) that are set (a flag of an adversary not selected is refused)."""
    specs = list(dict.fromkeys(args.adversary))
    names = {spec: Path(spec).stem for spec in specs}
    overrides: dict[str, list[str]] = {spec: [] for spec in specs}
    for flag, (name, key, _, _) in FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if name not in specs:
            raise ValueError(f"--{flag.replace('_', '-')} needs --{name}")
        if key == "samples":
            check_positive_int(value, f"--{flag.replace('_', '-')}")
        overrides[name].append(f"{key}={value}")
    for option in args.adversary_option:
        name, _, assignment = option.partition(".")
        spec = next((spec for spec in specs if names[spec] == name), None)
        if spec is None or "=" not in assignment:
            raise ValueError(f"--adversary-option {option!r} must be NAME.KEY=VALUE for a selected adversary "
                             f"({', '.join(names.values()) or 'none selected'})")
        overrides[spec].append(assignment)
    return [load_adversary(spec, overrides[spec]) for spec in specs]
