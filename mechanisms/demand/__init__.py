"""Bidder demand types: what each bidder may receive, and what follows from it (section 4.1).

Each type is one module of this package, a subclass of :class:`Demand` (:mod:`mechanisms.demand.base`);
``Demand(name, k)`` and the config group ``demand/`` build a type by name (a module ``mechanisms/demand/<name>.py``
is found without being listed here).  Row ``n`` of the transport problem is the dummy agent ("allocated to
nobody"), column ``m`` the dummy item ("receives nothing"):

=============  =========  ===============  =======  ===============
demand         a_i        a_dummy          b_j      b_dummy
=============  =========  ===============  =======  ===============
additive       m          m                1        n * m
unit           1          m                1        n
k_demand       k_i        m                1        sum_i k_i
exactly_k      k_i        m - sum_i k_i    1        0
=============  =========  ===============  =======  ===============

``additive`` is ``k_demand`` with ``k = m`` (no per-agent limit) and ``unit`` is ``k_demand`` with ``k = 1``.
"""

from mechanisms.demand.base import Demand, KSpec, SoftmaxHead, make_demand, marginals, per_agent
from mechanisms.demand.additive import Additive
from mechanisms.demand.unit import Unit
from mechanisms.demand.k_demand import KDemand
from mechanisms.demand.exactly_k import ExactlyK

__all__ = [
    "DEMAND_TYPES", "Additive", "Demand", "ExactlyK", "KDemand", "KSpec", "SoftmaxHead", "Unit", "make_demand",
    "marginals", "per_agent",
]  # fmt: skip

DEMAND_TYPES = (Additive.name, Unit.name, KDemand.name, ExactlyK.name)
"""The built-in demand types (the config group ``demand/`` has one YAML for each)."""
