"""Tables and pictures: heatmaps, training curves, markdown tables, the paper's tables, the GPU queue's results.

(Checkpoint I/O and the reproduction runs are :mod:`runs`; the test protocol is :mod:`adversary.protocol`.)

* :mod:`reporting.heatmaps` - allocation and payment heatmaps over the (v1, v2) grid, optimal boundaries;
* :mod:`reporting.curves` - training curves of revenue and regret from TensorBoard event files;
* :mod:`reporting.tables` - markdown and plain-text tables;
* :mod:`reporting.paper` - the paper's Tables 1 and 2;
* :mod:`reporting.gpu_queue_file` - the GPU queue file ``benchmarks/gpu_queue.yaml``, checked as it is read;
* :mod:`reporting.gpu_results` - the GPU queue's collected jobs (``results/gpu/``) as tables;
* :mod:`reporting.scalar_events` - TensorBoard event files reduced to their scalars, packed small;
* :mod:`reporting.sweep_plot` - ``sweep_plot``: revenue and regret against the final Sinkhorn epsilon;
* :mod:`reporting.evaluation_summary` - the summary ``evaluate.py`` prints;
* :mod:`reporting.reproduction_table` - the reproduction's markdown table (``python -m runs.reproduce``).

Submodules are imported on demand (``from reporting.heatmaps import heatmap_figure``).
"""
