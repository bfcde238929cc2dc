"""Member ``k`` of an ensemble checkpoint as an ordinary single-run checkpoint, for evaluation, not for resuming
(docs/ensembles.md).

    python -m runs.export <run>/checkpoints/last.ckpt --member 1 --out member_1.ckpt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from runs.checkpoints import read_checkpoint
from utils.atomic import check_new

__all__ = ["export_member", "member_checkpoint"]

PER_MEMBER = {"lagrange_multipliers": 0, "rho": 0, "misreport_buffer": 1}
"""The ensemble module's buffers with a member dimension, and where it is."""
MECHANISM = "mechanism."


def member_checkpoint(checkpoint: dict[str, Any], k: int, path: Path | str = "the checkpoint") -> dict[str, Any]:
    """Member ``k`` of an ensemble checkpoint dict (:func:`runs.checkpoints.read_checkpoint`) as a single-run one."""
    configs = checkpoint.get("hyper_parameters", {}).get("member_configs")
    if not configs:
        raise ValueError(f"{path} is not an ensemble checkpoint (no hyper_parameters.member_configs)")
    if not (isinstance(k, int) and 0 <= k < len(configs)):
        raise ValueError(f"member must be an integer in [0, {len(configs)}) for {path}, got {k!r}")
    state = {}
    for key, value in checkpoint["state_dict"].items():
        if key.startswith(MECHANISM):
            state[key] = value[k].clone()
        elif key in PER_MEMBER:
            state[key] = value.select(PER_MEMBER[key], k).clone()
    return {"state_dict": state, "hyper_parameters": {"run_config": configs[k]}, "epoch": checkpoint.get("epoch", 0),
            "global_step": checkpoint.get("global_step", 0),
            "ensemble_member": {"member": k, "of": len(configs), "source": str(path)}}


def export_member(path: Path | str, k: int, out: Path | str) -> Path:
    """Write member ``k`` of the ensemble checkpoint ``path`` to ``out`` (a single-run checkpoint); returns ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(member_checkpoint(read_checkpoint(path), k, path), out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="an ensemble checkpoint (e.g. <run>/checkpoints/last.ckpt)")
    parser.add_argument("--member", type=int, required=True, help="the member to export (0-based)")
    parser.add_argument("--out", type=Path, required=True, help="the single-run checkpoint to write")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    try:
        check_new([args.out], args.force, inputs=[args.checkpoint])
        print(export_member(args.checkpoint, args.member, args.out))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
