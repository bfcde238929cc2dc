"""The member dimension of the training module: K mechanisms trained as one (K = 1: the ordinary run).

:class:`training.AuctionModule` trains a :func:`mechanisms.ensemble.stack_members` mechanism on the folded batch
``(batch * K, agents, items)`` (member innermost; docs/ensembles.md).  Here: each member's settings, penalties,
Lagrangian, gradient norm, metrics under ``member_<k>/`` and test.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from mechanisms.ensemble import unfold
from lagrangian.base import member_penalties, member_prefix
from lagrangian.loss import lagrangian_loss
from training.divergence import check_penalty_weights
from training.lr_schedule import Rates, check_learning_rates
from training.metric_logging import flatten, log_training
from training.validation import log_validation

__all__ = ["MemberView", "clip_member_gradients", "ensemble_summary", "initial_penalties", "log_member_steps",
           "log_member_validation", "member_losses", "member_settings", "per_member", "test_outcome"]


def per_member(value: Any, size: int, name: str) -> list[Any]:
    """``value`` for each of ``size`` members: a sequence of ``size`` values, or one value for all."""
    if isinstance(value, (list, tuple)):
        if len(value) != size:
            raise ValueError(f"{name} must give one value per member ({size}), got {len(value)}: {list(value)}")
        return list(value)
    return [value] * size


def member_settings(size: int, lr: Any, lr_final: Any, lambda_init: Any, rho_init: Any,
                    test_seed: Any) -> tuple[Rates, list, list, list]:
    """Every member's ``(lr, lr_final)``, ``lambda_init``, ``rho_init`` (checked) and test seed (its single run's),
    each one value for all members or one per member."""
    rates = list(zip(per_member(lr, size, "lr"), per_member(lr_final, size, "lr_final")))
    lambdas, rhos = per_member(lambda_init, size, "lambda_init"), per_member(rho_init, size, "rho_init")
    for (rate, final), lam, rho in zip(rates, lambdas, rhos):
        check_learning_rates(rate, final)
        check_penalty_weights(lam, rho)
    return rates, lambdas, rhos, per_member(test_seed, size, "test_seed")


def initial_penalties(lambdas: Sequence[float], rhos: Sequence[float], agents: int) -> tuple[Tensor, Tensor]:
    """The buffers ``lagrange_multipliers`` ``(K, agents)`` and ``rho`` ``(K,)`` at the members' ``lambda_init`` and
    ``rho_init``; one member: ``(agents,)`` and a scalar, a single run's buffer shapes."""
    members = () if len(rhos) == 1 else (len(rhos),)
    dtype = torch.get_default_dtype()
    multipliers = torch.tensor(lambdas, dtype=dtype).view(*members, 1).expand(*members, agents).clone()
    return multipliers, torch.tensor(rhos, dtype=dtype).view(members)


def member_losses(revenue: Tensor, regrets: Tensor, multipliers: Tensor, rho: Tensor, *,
                  quadratic_penalty: str = "batch_mean", penalty_over_agents: str = "sum") -> Tensor:
    """Every member's :func:`lagrangian.loss.lagrangian_loss` ``(K,)`` from the folded revenue ``(batch * K,)`` and
    regrets ``(batch * K, agents)`` (member innermost), ``multipliers`` ``(K, agents)`` and ``rho`` ``(K,)``."""
    size = rho.numel()
    revenue, regrets = unfold(revenue, size), unfold(regrets, size)
    return torch.stack([lagrangian_loss(revenue[:, k], regrets[:, k], multipliers[k], rho[k],
                                        quadratic_penalty=quadratic_penalty, penalty_over_agents=penalty_over_agents)
                        for k in range(size)])


def clip_member_gradients(parameters: Iterable[nn.Parameter], size: int, max_norm: float | None) -> Tensor | None:
    """Rescale each member's gradient (slice ``k`` of every ``(K, ...)`` parameter) as ``clip_grad_norm_`` would
    alone, by ``min(1, max_norm / (norm + 1e-6))``; its norms ``(K,)`` (``max_norm`` ``None``: none, ``None``)."""
    if max_norm is None:
        return None
    parameters = list(parameters)
    if size == 1:
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm).view(1)
    grads = [p.grad for p in parameters if p.grad is not None]
    norms = torch.stack([g.reshape(size, -1).norm(dim=1) for g in grads]).norm(dim=0)  # (K,)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))
    return norms


class MemberView:
    """Member ``k`` of a module as the logging helpers see a module (its ``rho``, multipliers, prefixed ``log``)."""

    def __init__(self, module: Any, k: int) -> None:
        multipliers, rho = member_penalties(module)
        self.module, self.prefix = module, member_prefix(k, rho.numel())
        self.rho, self.lagrange_multipliers, self.mechanism = rho[k], multipliers[k], module.mechanism

    def log(self, name: str, value: Any, **kwargs: Any) -> None:
        self.module.log(self.prefix + name, value, **kwargs)


def log_member_steps(module: Any, revenue: Tensor, regrets: Tensor, losses: Tensor, rates: Sequence[float],
                     norms: Tensor | None) -> None:
    """Log every member's training step: revenue ``(batch, K)``, regrets ``(batch, K, agents)``, losses ``(K,)``."""
    for k in range(losses.numel()):
        view = MemberView(module, k)
        log_training(view, revenue[:, k], regrets[:, k], losses[k], rates[k])
        if norms is not None:
            view.log("train/grad_norm", norms[k], on_step=True, on_epoch=False)


def log_member_validation(module: Any, revenue: Tensor, regrets: Tensor, allocation: Tensor) -> None:
    """Add one validation batch (revenue ``(batch, K)``, regrets, allocation) to every member's epoch metrics."""
    for k in range(revenue.shape[1]):
        log_validation(MemberView(module, k), module.val_metrics[k], module.val_mass[k], revenue[:, k], regrets[:, k],
                       allocation[:, k])


def test_outcome(results: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], float, dict[str, float]]:
    """The test results, test revenue (``hp_metric``) and logged numbers of the members' test dicts: one member,
    its dict; several, ``{"members": [test dict per member], "summary": ensemble_summary}`` (logged under
    ``test/`` and ``member_<k>/test/``)."""
    if len(results) == 1:
        return results[0], results[0]["revenue_mean"], flatten(results[0], "test/")
    summary = ensemble_summary(results)
    logged = flatten(summary, "test/")
    for k, result in enumerate(results):
        logged.update(flatten(result, f"member_{k}/test/"))
    return {"members": list(results), "summary": summary}, summary["revenue_mean_members_mean"], logged


def ensemble_summary(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean, sd (over the members, ``ddof=1``; 0 for one member) and worst member (lowest revenue, highest regret)
    of revenue and both regrets of the members' test dicts (:class:`adversary.regret.Measurement` fields)."""
    summary: dict[str, float] = {}
    for name, worst in (("revenue_mean", min), ("regret_mean_over_agents_mean", max),
                        ("regret_sum_over_agents_mean", max)):
        values = [float(result[name]) for result in results]
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        summary.update({f"{name}_members_mean": mean, f"{name}_members_sd": sd, f"{name}_members_worst": worst(values)})
    return summary
