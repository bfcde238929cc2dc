"""The installed project holds every package of the repository (setup.cfg's find list)."""

from __future__ import annotations

import configparser
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_top_level_package_is_installed() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = config["options.packages.find"]["include"].split()
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests")
    missing = [name for name in packages if not any(fnmatch(name, pattern) for pattern in patterns)]
    assert packages and not missing, f"setup.cfg [options.packages.find] include lacks {missing}"
