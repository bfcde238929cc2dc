"""The paper's Tables 1 and 2, as printed, keyed by the experiment preset that reproduces each row.

Revenue and regret are "mean (std)" on the paper's 1000 test profiles; ``reference`` is the optimal revenue
(Table 1) or VCG's (Table 2).  Table 2's RegretNet exactly-one rows are N/A in the paper and have no preset.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAPER_HARDWARE", "PAPER_ROWS", "PaperRow"]

PAPER_HARDWARE = "NVIDIA 2080Ti"


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's tables, numbers as printed."""

    table: int
    setting: str
    revenue: str
    regret: str
    reference_kind: str  # "optimal" (Table 1) or "VCG" (Table 2)
    reference: str
    train_time: str


PAPER_ROWS: dict[str, PaperRow] = {
    "paper_1x2_unit": PaperRow(1, "Unit-demand, 1x2", "0.397 (0.248)", "< 0.001 (< 0.001)",
        "optimal", "0.393", "3h25m"),
    "paper_1x2_unit_regretnet": PaperRow(1, "RegretNet Unit-Demand, 1x2", "0.381 (0.258)", "< 0.001 (< 0.001)",
        "optimal", "0.393", "18m34s"),
    "paper_1x2_exactly_one": PaperRow(1, "Exactly-one, 1x2", "0.079 (0.127)", "0.001 (0.001)",
        "optimal", "0.069", "1h21m"),
    "paper_2x3_unit": PaperRow(2, "Unit, 2x3", ".876 (.322)", ".001 (.001)", "VCG", ".048", "6h20m"),
    "paper_2x3_unit_regretnet": PaperRow(2, "RegretNet Unit, 2x3", ".878 (.337)", "< .001 (< .001)",
        "VCG", ".048", "20m28s"),
    "paper_2x15_unit": PaperRow(2, "Unit, 2x15", ".886 (.113)", ".001 (< .001)", "VCG", ".002", "3h10m"),
    "paper_2x15_unit_regretnet": PaperRow(2, "RegretNet Unit, 2x15", ".999 (.123)", "< .001 (< .001)",
        "VCG", ".002", "25m45s"),
    "paper_2x3_exactly_one": PaperRow(2, "Exactly-1, 2x3", ".194 (.064)", ".004 (.008)", "VCG", ".049", "2h38m"),
    "paper_2x15_exactly_one": PaperRow(2, "Exactly-1, 2x15", ".571 (.030)", ".003 (.015)", "VCG", ".002", "1h29m"),
}
