"""Clustering evaluation: every score as one distributed reduction plus formulas on a
small table.

- :mod:`.scores`: the contingency table of two labelings (one pass) and every score
  read from it: homogeneity, completeness, V-measure, NMI, ARI, purity, accuracy under
  a cluster -> label mapping, :func:`evaluate`.
- :mod:`.silhouettes`: silhouette coefficients, exact or of a sample of rows measured
  against all rows.
- :mod:`.k_sweep`: choosing K: :func:`sweep` (a fit and its scores per K),
  :func:`kneedle` and :func:`choose_k`, and the sweep table's writers.

Every public name is importable from ``daskmeans.metrics`` itself, as is
:class:`LabelError`, raised for labels that are not 1-D non-negative integers.
"""

from __future__ import annotations

from ..kernels.scores import LabelError
from .k_sweep import Knee, choose_k, kneedle, sweep, to_markdown, write_csv, write_json
from .scores import (
    Contingency,
    adjusted_rand_score,
    apply_mapping,
    cluster_accuracy,
    cluster_order,
    completeness_score,
    confusion_matrix,
    contingency,
    contingency_frame,
    contingency_matrix,
    evaluate,
    evaluate_model,
    homogeneity_score,
    infer_cluster_labels,
    normalized_mutual_info_score,
    order_by_label,
    purity_score,
    purity_table,
    v_measure_score,
)
from .silhouettes import (
    Silhouette,
    silhouette,
    silhouette_samples,
    silhouette_score,
)

__all__ = [
    "Contingency",
    "Knee",
    "LabelError",
    "Silhouette",
    "adjusted_rand_score",
    "apply_mapping",
    "choose_k",
    "cluster_accuracy",
    "cluster_order",
    "completeness_score",
    "confusion_matrix",
    "contingency",
    "contingency_frame",
    "contingency_matrix",
    "evaluate",
    "evaluate_model",
    "homogeneity_score",
    "infer_cluster_labels",
    "kneedle",
    "normalized_mutual_info_score",
    "order_by_label",
    "purity_score",
    "purity_table",
    "silhouette",
    "silhouette_samples",
    "silhouette_score",
    "sweep",
    "to_markdown",
    "v_measure_score",
    "write_csv",
    "write_json",
]
