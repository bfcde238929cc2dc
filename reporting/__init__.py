"""Evaluation and reporting: checkpoints, the test protocol, heatmaps, training curves, tables, reproduction.

* :mod:`reporting.checkpoints` - rebuild a trained mechanism from a ``train.py`` checkpoint;
* :mod:`reporting.evaluation` - the paper's test protocol with VCG and optimal revenue on the same profiles;
* :mod:`reporting.heatmaps` - allocation and payment heatmaps over the (v1, v2) grid, optimal boundaries;
* :mod:`reporting.curves` - training curves of revenue and regret from TensorBoard event files;
* :mod:`reporting.tables` - markdown and plain-text tables;
* :mod:`reporting.paper` - the paper's Tables 1 and 2;
* :mod:`reporting.hardware` - a one-line description of the CPU or GPU a run used;
* :mod:`reporting.reproduce` - ``python -m reporting.reproduce``: run presets, write the reproduction table;
* :mod:`reporting.gpu_queue_file` - the GPU queue file ``benchmarks/gpu_queue.yaml``, checked as it is read;
* :mod:`reporting.gpu_results` - the GPU queue's collected jobs (``results/gpu/``) as tables;
* :mod:`reporting.scalar_events` - TensorBoard event files reduced to their scalars, packed small;
* :mod:`reporting.sweep_plot` - ``sweep_plot``: revenue and regret against the final Sinkhorn epsilon.

Submodules are imported on demand (``from reporting.heatmaps import heatmap_figure``).
"""
