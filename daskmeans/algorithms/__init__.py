"""K-means algorithms as plain functions over a data source, one module per algorithm.

Each function takes an explicit :class:`daskmeans.engine.source.Source` and parameters,
runs its loop here, and makes every pass over the data through
:mod:`daskmeans.engine.reductions` (one kernel and one reduction per pass). Nothing here
touches dask directly or an estimator:

- :mod:`~daskmeans.algorithms.common`: a run's records and result, where it resumes,
  the settings of a fit, the stopping rule, the M-step and the final E-step;
- :mod:`~daskmeans.algorithms.lloyd`: Lloyd iterations of runs sharing each pass;
- :mod:`~daskmeans.algorithms.bounded`: Lloyd with per-row distance bounds;
- :mod:`~daskmeans.algorithms.kmedians`: k-medians by distributed histograms;
- :mod:`~daskmeans.algorithms.solvers`: which of those three fits a KMeans (one
  signature for all, as scikit-learn's ``_kmeans_single_lloyd`` /
  ``_kmeans_single_elkan``);
- :mod:`~daskmeans.algorithms.init`: k-means++, random, a callable, k-means||;
- :mod:`~daskmeans.algorithms.minibatch`: mini-batch steps with early stopping;
- :mod:`~daskmeans.algorithms.bisecting`: bisecting K-means;
- :mod:`~daskmeans.algorithms.predict`: a model's labels, distances and scores.

The metric objects (:class:`~daskmeans.kernels.metric.Metric`, :func:`as_metric`) are
re-exported here: the estimators name a metric, the algorithms ask it for distances.

The modules ``lloyd``, ``kmedians``, ``minibatch`` and ``bisecting`` each hold a
function of their name (``daskmeans.algorithms.lloyd.lloyd``): import it from its module.

Checkpointing and progress are callbacks around the loops, not threaded through them.
"""

from ..kernels.metric import Metric, as_metric
from .bisecting import BisectingTree, Bisection, BisectSpec, bisect_round, tree_predict
from .bounded import (
    ClusterSums,
    DistanceBounds,
    centre_groups,
    lloyd_bounded,
    lloyd_bounded_runs,
    n_groups,
)
from .common import (
    FitSettings,
    IterationRecord,
    Progress,
    ResumeState,
    RunResult,
    Solver,
    centers_from_sums,
    final_e_step,
    lloyd_update,
    no_progress,
    relocate_empty,
    stop_or_go,
)
from .init import (
    InitSpec,
    check_finite_rows,
    init_centers,
    kmeans_parallel,
    take_samples,
    training_sample,
)
from .kmedians import (
    MedianSearch,
    kmedians_e_step,
    kmedians_runs,
    median_grid,
    median_update,
    prepare_kmedians,
    relocate_empty_medians,
)
from .lloyd import lloyd_e_step, lloyd_iterations
from .minibatch import (
    MiniBatchSpec,
    MiniBatchState,
    minibatch_converged,
    minibatch_step,
    minibatch_update,
)
from .solvers import SolverChoice, choose_solver, runs_per_pass

__all__ = [
    "BisectSpec",
    "BisectingTree",
    "Bisection",
    "ClusterSums",
    "DistanceBounds",
    "FitSettings",
    "InitSpec",
    "IterationRecord",
    "MedianSearch",
    "Metric",
    "MiniBatchSpec",
    "MiniBatchState",
    "Progress",
    "ResumeState",
    "RunResult",
    "Solver",
    "SolverChoice",
    "as_metric",
    "bisect_round",
    "centers_from_sums",
    "centre_groups",
    "check_finite_rows",
    "choose_solver",
    "final_e_step",
    "init_centers",
    "kmeans_parallel",
    "kmedians_e_step",
    "kmedians_runs",
    "lloyd_bounded",
    "lloyd_bounded_runs",
    "lloyd_e_step",
    "lloyd_iterations",
    "lloyd_update",
    "median_grid",
    "median_update",
    "minibatch_converged",
    "minibatch_step",
    "minibatch_update",
    "n_groups",
    "no_progress",
    "prepare_kmedians",
    "relocate_empty",
    "relocate_empty_medians",
    "runs_per_pass",
    "stop_or_go",
    "take_samples",
    "training_sample",
    "tree_predict",
]
