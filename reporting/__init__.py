"""Tables and pictures: heatmaps, training curves, markdown tables, the paper's tables, the GPU queue's results.

(Checkpoint I/O and the reproduction runs are :mod:`runs`; the test protocol is :mod:`adversary.protocol`.)
Each submodule says what it makes; they are imported on demand (``from reporting.heatmaps import heatmap_figure``).
"""
