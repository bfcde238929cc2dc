"""The adversary: the bidders' best misreports and the regret they cause, searched by gradient and audited.

Agent ``i``'s regret at a valuation profile ``v`` is what it gains by reporting ``v'_i`` instead of ``v_i``
while everybody else reports truthfully: ``rgt_i = max(0, u_i(v; (v'_i, v_-i)) - u_i(v; v))``.  The gradient
search (:mod:`adversary.search`), the regret and test-time measurement (:mod:`adversary.regret`), the exhaustive
audit (:mod:`adversary.audit`), the strong search (:mod:`adversary.strong`), the adversary protocol
(:mod:`adversary.base`, chosen by name with :mod:`adversary.select`) and the paper's test protocol
(:mod:`adversary.protocol`).  Submodules are imported on demand (``from adversary.search import find_misreports``).
"""
