"""The adversary: the bidders' best misreports and the regret they cause, searched by gradient and audited exhaustively.

Agent ``i``'s regret at a valuation profile ``v`` is what it gains by reporting
``v'_i`` instead of ``v_i`` while everybody else reports truthfully:
``rgt_i = max(0, u_i(v; (v'_i, v_-i)) - u_i(v; v))``.

* :mod:`adversary.deviation` - one agent deviating: the report domain, the checked mechanism call, the deviation utility;
* :mod:`adversary.search` - the gradient misreport search and its defaults (training, validation, test);
* :mod:`adversary.regret` - regret of found misreports, its statistics, and the test-time measurement;
* :mod:`adversary.audit` - the exhaustive grid audit for bidders reporting at most 3 numbers;
* :mod:`adversary.strong` - the strong search: many structured and random starts, long runs;
* :mod:`adversary.base` - the protocol every adversary follows (:class:`~adversary.base.Adversary`), with its
  adapters :mod:`adversary.gradient` (``search``), :mod:`adversary.grid_audit` (``audit``) and
  :mod:`adversary.strong_search` (``strong``), chosen by name with :mod:`adversary.select` (``conf/adversary/``);
* :mod:`adversary.protocol` - the paper's test protocol, the reference revenues, an adversary beside the search.

Submodules are imported on demand (``from adversary.search import find_misreports``).
"""
