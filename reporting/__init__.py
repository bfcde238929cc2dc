"""Evaluation and reporting: checkpoints, the test protocol, heatmaps, training curves, tables, reproduction.

* :mod:`runs.checkpoints` - rebuild a trained mechanism from a ``train.py`` checkpoint;
* :mod:`adversary.protocol` - the paper's test protocol with VCG and optimal revenue on the same profiles;
* :mod:`reporting.heatmaps` - allocation and payment heatmaps over the (v1, v2) grid, optimal boundaries;
* :mod:`reporting.curves` - training curves of revenue and regret from TensorBoard event files;
* :mod:`reporting.tables` - markdown and plain-text tables;
* :mod:`reporting.paper` - the paper's Tables 1 and 2;
* :mod:`utils.hardware` - a one-line description of the CPU or GPU a run used;
* :mod:`runs.reproduce` - ``python -m runs.reproduce``: run presets, write the reproduction table;
* :mod:`reporting.sweep_plot` - ``sweep_plot``: revenue and regret against the final Sinkhorn epsilon.

Submodules are imported on demand (``from reporting.heatmaps import heatmap_figure``).
"""
