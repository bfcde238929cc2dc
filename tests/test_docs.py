"""Every command in README.md and docs/*.md is accepted, checked without running it; every link resolves.

Shell commands come from the ``bash`` code blocks and from inline code spans that start with ``python``
or ``sweep_plot``.  They are dry-run as follows:

* ``python train.py <overrides>`` (also behind ``torchrun``/``srun``): the sweep is expanded as Hydra's
  basic sweeper does, every job's configuration is composed with the compose API and validated with
  ``runs.config.validate_config`` (an ensemble, ``ensemble.size`` > 1, with
  ``runs.members.build_ensemble``, as ``train.py`` does; both build the components, without
  training; the checks of this machine's GPUs and cores are skipped, as for a cluster job);
* ``python evaluate.py``, ``python -m runs.reproduce``/``reporting.curves``, ``sweep_plot`` and the
  ``benchmarks/*.py`` scripts: their own argparse parser parses the arguments, and nothing runs
  (``runs.reproduce`` also composes and validates each named preset with its ``--override``\\ s);
* commands that cannot be dry-run are listed in :data:`SKIPPED` with the reason.

``<...>`` placeholders become a dummy value; a ``resume=<...>`` checkpoint is dropped (the resume check
needs a real checkpoint: ``tests/test_resume.py``).  Python code blocks run unless :data:`FRAGMENTS`
lists them.  Markdown links and images must point to files that exist, and anchors to headings.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shlex
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from runs.config import validate_config
from runs.members import build_ensemble, ensemble_size

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# First word of a command -> why it is not dry-run.
SKIPPED = {
    "pip": "installs packages",
    "pytest": "runs the test suite, this test included",
    "tensorboard": "starts a web server",
    "git": "a repository search, not a project command",
}
# Inline spans that show a command's syntax rather than a command.
SYNTAX = {
    "python train.py [key=value ...]",
    "python train.py resume=<run dir>/checkpoints/last.ckpt [the run's overrides]",
    "python -m reporting.curves <run dir> [--out curves.png]",
    "python train.py mechanism=<name>",
    "python train.py experiment=<preset> hydra.run.dir=results/runs/<preset> <overrides>",
    "python evaluate.py --mechanism posted_price|vcg_reserve|pay_to_choose|itemwise_myerson|grand_bundle --demand D --agents N --items M",
}
# Commands the docs show failing, with the error they must give.
EXPECTED_ERRORS = {
    "python train.py -m sinkhorn.eps_final=0.1,-1,0.05": "epsilon must be positive",
}
# Python blocks that are excerpts (their first line) -> why they do not run alone.
FRAGMENTS = {
    "from adversary.audit import AuditSettings, audit, audit_misreports": "needs a trained mechanism and valuations",
    "from adversary.regret import measure, regret": "needs a mechanism and valuations; the test protocol takes minutes",
    "from adversary.strong import StrongSettings, strong_misreports, strong_regret": "needs a trained mechanism and valuations",
    "from baselines import fit_baseline, best_baseline, applicable_baselines, BASELINE_NAMES":
        "needs bids; fitting every baseline takes tens of seconds",
    '"""A test-only demand type, the worked example of docs/extending.md ("A new demand type").':
        "the file tests/toy_demand.py as it stands (tests/test_toy_demand.py checks it; the next block imports it)",
    '"""A test-only Lagrangian rule, the worked example of docs/extending.md ("A new Lagrangian rule").':
        "the file tests/toy_rule.py as it stands (tests/test_extending_examples.py checks and trains it)",
    '"""A test-only learned mechanism, the worked example of docs/extending.md ("A new mechanism").':
        "the file tests/toy_mechanism.py as it stands (tests/test_extending_examples.py checks and trains it)",
}
LAUNCHER_PLUGINS = {"slurm": "hydra_submitit_launcher", "parallel": "hydra_joblib_launcher"}
PLACEHOLDER = re.compile(r"<[^<>\n]*>")


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def _split(line: str) -> list[list[str]]:
    """The commands of one shell line (``&&``/``;``-separated), as argument lists; env assignments and time dropped."""
    tokens = shlex.split(PLACEHOLDER.sub("PLACEHOLDER", line), comments=True)
    commands, current = [], []
    for token in [*tokens, "&&"]:
        if token in ("&&", ";"):
            while current and (re.fullmatch(r"[A-Z_]+=.*", current[0]) or current[0] in ("time", "/usr/bin/time")):
                current.pop(0)
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    return commands


def doc_commands() -> list[tuple[str, str, list[str]]]:
    """``(pages, command line, argv)`` for every distinct command of the pages (``pages``: where it occurs)."""
    found: dict[tuple[str, ...], tuple[list[str], str]] = {}
    for page in PAGES:
        text = page.read_text()
        lines = [line for block in _code_blocks(text, "bash") for line in block.replace("\\\n", " ").splitlines()]
        spans = [" ".join(span.split()) for span in re.findall(r"`((?:python|sweep_plot) [^`]+)`", text)]
        for line in [*lines, *spans]:
            if line in SYNTAX:
                continue
            for argv in _split(line):
                pages, _ = found.setdefault(tuple(argv), ([], line))
                pages.append(page.relative_to(ROOT).as_posix())
    return [(", ".join(sorted(set(pages))), line, list(argv)) for argv, (pages, line) in found.items()]


COMMANDS = doc_commands()


@pytest.fixture(scope="module", autouse=True)
def _hydra() -> Iterator[None]:
    """One Hydra initialization for the module's compositions (each one alone costs about 0.5 s)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


def _compose(overrides: list[str]):
    cfg = compose("config", overrides=[*overrides, "output_dir=unused"], return_hydra_config=True)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def _check_train(args: list[str]) -> None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if "--help" in args:
        return
    args = [a for a in args if a not in ("-m", "--multirun", "--cfg", "job")]
    launcher = next((a.split("=", 1)[1] for a in args if a.startswith("hydra/launcher=")), "basic")
    if launcher != "basic" and not _installed(f"hydra_plugins.{LAUNCHER_PLUGINS[launcher]}"):
        # Without its extra the launcher's config cannot compose (tests/test_cluster.py composes it where
        # installed): check the run's own overrides.
        args = [a for a in args if not a.startswith(("hydra/launcher=", "hydra.launcher."))]
    args = ["resume=null" if a.startswith("resume=") and "PLACEHOLDER" in a else a for a in args]
    parsed = OverridesParser.create().parse_overrides(args)
    for job in [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]:
        cfg = _compose(job)
        (build_ensemble if ensemble_size(cfg) > 1 else validate_config)(cfg, check_machine=False)  # as train.py


class _Parsed(Exception):
    """Raised instead of returning from ``parse_args``: the script stops before any work."""

    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__("parsed")
        self.namespace = namespace


def _parse_only(main: Callable[..., object], prog: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """Run ``main`` until its parser has parsed ``args``; argparse's rejection fails the test with its message."""
    parse_args = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):  # noqa: ANN001, ANN202 - argparse's signature
        raise _Parsed(parse_args(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(sys, "argv", [prog, *args])
    try:
        main(args) if prog != "script" else main()
    except _Parsed as parsed:
        return parsed.namespace
    except SystemExit as exit_:
        pytest.fail(f"{prog} {' '.join(args)}: argparse refused the arguments (exit {exit_.code})")
    pytest.fail(f"{prog}: main() returned without parsing arguments")


def _script(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass looks its module up while the script is executed
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def dry_run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Check one command without running it (see the module docstring)."""
    program, *args = argv
    if program in ("torchrun", "srun"):
        start = argv.index("train.py")
        program, args = "python", argv[start:]
    if program == "sweep_plot":
        program, args = "python", ["-m", "reporting.sweep_plot", *args]
    if program != "python":
        raise AssertionError(f"no dry run for {program!r}: add it to SKIPPED with a reason")
    target, *args = args
    if target == "train.py":
        _check_train(args)
    elif target == "-m":
        module_name, *args = args
        module = importlib.import_module(module_name)
        namespace = _parse_only(module.main, module_name, args, monkeypatch)
        if module_name == "runs.reproduce":
            module._check_overrides(namespace.override)
            # The presets alone compose in tests/test_config.py; with overrides, each named preset is validated.
            for preset in [p for p in namespace.presets if p in args] if namespace.override else []:
                validate_config(_compose([f"experiment={preset}", *namespace.override]), check_machine=False)
    elif target == "evaluate.py":
        import evaluate

        _parse_only(evaluate.main, "evaluate.py", args, monkeypatch)
    elif target.startswith("benchmarks/") and target.endswith(".py"):
        _parse_only(_script(target).main, "script", args, monkeypatch)
    else:
        raise AssertionError(f"no dry run for python {target}")


@pytest.mark.parametrize(("page", "line", "argv"), COMMANDS, ids=[f"{p}: {line}"[:120] for p, line, _ in COMMANDS])
def test_doc_command_dry_runs(page: str, line: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if argv[0] in SKIPPED:
        pytest.skip(f"{argv[0]}: {SKIPPED[argv[0]]}")
    if line in EXPECTED_ERRORS:
        with pytest.raises(ValueError, match=EXPECTED_ERRORS[line]):
            dry_run(argv, monkeypatch)
        return
    dry_run(argv, monkeypatch)


def test_commands_were_found() -> None:
    """The extraction sees the commands the README's usage block and the docs' sections rely on."""
    programs = {" ".join(argv[:2]) for _, _, argv in COMMANDS}
    assert {"python train.py", "python evaluate.py", "python -m", "sweep_plot multirun/eps", "pip install"} <= programs
    assert len(COMMANDS) > 40


PYTHON_BLOCKS = [(page.relative_to(ROOT).as_posix(), block) for page in PAGES for block in _code_blocks(page.read_text(), "python")]


@pytest.mark.parametrize(("page", "block"), PYTHON_BLOCKS, ids=[f"{p}: {b.splitlines()[0]}"[:100] for p, b in PYTHON_BLOCKS])
def test_doc_python_block_runs(page: str, block: str) -> None:
    first = block.splitlines()[0]
    if first in FRAGMENTS:
        pytest.skip(FRAGMENTS[first])
    exec(compile(block, f"{page} (python block)", "exec", dont_inherit=True), {"__name__": "docs_example"})  # as a user runs it


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


LINKS = [
    (page, target)
    for page in PAGES
    for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M))
    if not target.startswith(("http://", "https://"))
]


@pytest.mark.parametrize(("page", "target"), LINKS, ids=[f"{p.relative_to(ROOT)} -> {t}" for p, t in LINKS])
def test_doc_link_resolves(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    assert file.exists(), f"{page.relative_to(ROOT)}: link to a missing file {target}"
    if anchor:
        assert anchor in _anchors(file), f"{page.relative_to(ROOT)}: no heading #{anchor} in {file.relative_to(ROOT)}"


# `path/like/this.ext` in the prose; generated paths (run directories) are not in the repository.
# double_net/: files of the original authors' repository (github urolyi1/MechanismDesign).
OUTPUTS = {"results/baselines.md"}  # what a documented command writes (python -m reporting.baselines_table)
GENERATED = ("outputs/", "multirun/", "results/runs/", ".hydra/", "/shared/", "double_net/")
FILES = sorted({
    (page.relative_to(ROOT).as_posix(), path)
    for page in PAGES
    for path in re.findall(r"`([\w./-]+/[\w.-]+\.(?:py|yaml|md|json|png|sh|txt))`", page.read_text())
    if not path.startswith(GENERATED) and path not in OUTPUTS
})


@pytest.mark.parametrize(("page", "path"), FILES, ids=[f"{p}: {f}" for p, f in FILES])
def test_doc_file_exists(page: str, path: str) -> None:
    assert (ROOT / path).exists(), f"{page} names {path}, which is not in the repository"
