"""The networks and the Sinkhorn settings as nested config nodes of the mechanism (issue 18, parts 3 and 4).

A network class given as a ``_target_`` node trains; a resume refuses any change of a network node (so no
architecture field slips past); a checkpoint of the flat layout (``hidden``, ``activation``, ``eps_init``, ...
as the mechanism's own arguments) still loads and resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from runs.checkpoints import load_checkpoint
from tests.test_config import make_config
from tests.test_training import TINY
from runs.config import build_components, validate_config
from runs.run import run


class GatedSkipNet(nn.Module):
    """A test-only architecture, not an MLP: ``linear(x) + gate(x) * branch(x)``, ``(batch, in) -> (batch, out)``.

    A network factory given as ``{_target_: <this class>, _partial_: true, width: ...}``: the mechanism calls it
    with ``(in_features, out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, width: int = 8) -> None:
        super().__init__()
        self.skip = nn.Linear(in_features, out_features)
        self.gate = nn.Sequential(nn.Linear(in_features, out_features), nn.Sigmoid())
        self.branch = nn.Sequential(nn.Linear(in_features, width), nn.SiLU(), nn.Linear(width, out_features))

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.gate(x) * self.branch(x)


GATED = {"_target_": f"{__name__}.GatedSkipNet", "_partial_": True, "width": 6}


def _config(*overrides: str, output_dir: Path | str = "unused", payment_width: int = 6) -> DictConfig:
    """The tiny 1x2 run with :class:`GatedSkipNet` as both networks (the payment one of ``payment_width``)."""
    cfg = make_config(*TINY, *overrides, output_dir=output_dir)
    cfg.mechanism.allocation_net = OmegaConf.create(GATED)
    cfg.mechanism.payment_net = OmegaConf.create({**GATED, "width": payment_width})
    return cfg


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run's directory, trained with :class:`GatedSkipNet` networks."""
    directory = tmp_path_factory.mktemp("gated")
    run(_config(output_dir=directory))
    return directory


def test_a_network_class_given_as_a_target_node_trains(gated_run: Path) -> None:
    initial = build_components(_config()).mechanism  # seeded: the run's initial weights
    assert isinstance(initial.allocation_net, GatedSkipNet) and isinstance(initial.payment_net.net, GatedSkipNet)
    trained = load_checkpoint(gated_run / "checkpoints" / "last.ckpt").mechanism
    assert isinstance(trained.allocation_net, GatedSkipNet) and trained.payment_net.net.branch[0].out_features == 6
    moved = {name: not torch.equal(value, initial.state_dict()[name]) for name, value in trained.state_dict().items()}
    assert all(moved.values()), [name for name, changed in moved.items() if not changed]  # every weight trained
    allocation, payment = trained(torch.rand(16, 1, 2))
    assert torch.isfinite(allocation).all() and torch.isfinite(payment).all()


def _network_doc_block(language: str) -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()
    section = text.split("## A new network", 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_extending_network_example_trains_through_its_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/extending.md's network: its Python block as the module its node names, both networks, a short run."""
    import sys
    import types

    node = OmegaConf.create(_network_doc_block("yaml")).allocation_net
    module_name, class_name = node._target_.rsplit(".", 1)
    module = types.ModuleType(module_name)
    exec(compile(_network_doc_block("python"), "docs/extending.md", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module_name, module)
    cfg = make_config(*TINY, output_dir=tmp_path)
    cfg.mechanism.allocation_net = node
    cfg.mechanism.payment_net = node
    initial = build_components(cfg).mechanism
    assert type(initial.allocation_net).__name__ == class_name and initial.allocation_net.branch[0].out_features == 8
    run(cfg)
    trained = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt").mechanism
    moved = [not torch.equal(value, initial.state_dict()[name]) for name, value in trained.state_dict().items()]
    assert all(moved)  # every weight of both gated networks trained


NETWORK_CHANGES = [
    ("mechanism.allocation_net.width", 7),  # the new architecture's own field
    ("mechanism.payment_net.width", 7),
    ("mechanism.allocation_net", {"_target_": "torch.nn.Linear", "_partial_": True}),  # another class
]


@pytest.mark.parametrize("key, value", NETWORK_CHANGES, ids=[key for key, _ in NETWORK_CHANGES])
def test_a_resume_refuses_any_change_of_a_network_node(gated_run: Path, key: str, value: Any) -> None:
    checkpoint = gated_run / "checkpoints" / "last.ckpt"
    validate_config(_config(f"resume={checkpoint}"))  # the same networks: fine
    cfg = _config(f"resume={checkpoint}", "resume_allow_changes=true")
    OmegaConf.update(cfg, key, value, merge=False)
    with pytest.raises(ValueError, match="another setting or architecture") as error:
        validate_config(cfg)
    assert key in str(error.value) and "\n" not in str(error.value)


@pytest.fixture(scope="module")
def mlp_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The last checkpoint of the tiny run with the default (MLP) networks."""
    directory = tmp_path_factory.mktemp("mlp")
    run(make_config(*TINY, output_dir=directory))
    return directory / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("override", ["mechanism.allocation_net.activation=relu", "mechanism.payment_net.hidden=[16]"])
def test_a_resume_refuses_any_change_of_the_mlp(mlp_checkpoint: Path, override: str) -> None:
    """The default MLP nodes: a changed field is refused even with resume_allow_changes."""
    cfg = make_config(*TINY, override, f"resume={mlp_checkpoint}", "resume_allow_changes=true")
    with pytest.raises(ValueError, match="another setting or architecture"):
        validate_config(cfg)


def _flat_layout(path: Path, out: Path) -> Path:
    """``path`` rewritten as train.py wrote checkpoints before the nested mechanism nodes: the MLP's ``hidden`` and
    ``activation`` and the Sinkhorn settings as the mechanism's own arguments, no ``_target_`` in ``sinkhorn``."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    config = checkpoint["hyper_parameters"]["run_config"]
    mechanism = config["mechanism"]
    network = mechanism.pop("allocation_net")
    assert mechanism.pop("payment_net") == network  # the flat layout had one architecture for both
    sinkhorn = mechanism.pop("sinkhorn")
    del sinkhorn["_target_"], config["sinkhorn"]["_target_"]
    mechanism.update(hidden=network["hidden"], activation=network["activation"], **sinkhorn)
    torch.save(checkpoint, out)
    return out


def test_a_checkpoint_of_the_flat_layout_loads_and_resumes(mlp_checkpoint: Path, tmp_path: Path) -> None:
    new = mlp_checkpoint
    flat = _flat_layout(new, tmp_path / "flat.ckpt")
    assert "hidden" in torch.load(flat, weights_only=False)["hyper_parameters"]["run_config"]["mechanism"]
    loaded, reference = load_checkpoint(flat), load_checkpoint(new)
    assert loaded.config == reference.config  # mapped to the nested nodes
    assert loaded.mechanism.settings == reference.mechanism.settings
    bids = torch.rand(5, 1, 2)
    for got, want in zip(loaded.mechanism(bids), reference.mechanism(bids)):
        assert torch.equal(got, want)
    validate_config(make_config(*TINY, f"resume={flat}"))  # the same run: no difference to allow
    with pytest.raises(ValueError, match="mechanism.sinkhorn.eps_final: 0.05 in the checkpoint, 0.1 now"):
        validate_config(make_config(*TINY, "sinkhorn.eps_final=0.1", f"resume={flat}"))
