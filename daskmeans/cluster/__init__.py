"""K-means estimators with scikit-learn conventions, on data of any size.

- :mod:`~daskmeans.cluster.base`: what the estimators share (parameter constraints,
  the input's way to a source and back, predict/transform/score);
- :mod:`~daskmeans.cluster.kmeans`: :class:`KMeans` (Lloyd, bounded Lloyd, k-medians);
- :mod:`~daskmeans.cluster.minibatch`: :class:`MiniBatchKMeans`;
- :mod:`~daskmeans.cluster.bisecting`: :class:`BisectingKMeans`;
- :mod:`~daskmeans.cluster.checkpoints`: checkpoints of a fit;
- :mod:`~daskmeans.cluster.persistence`: :func:`save_model` / :func:`load_model`.

An estimator validates its parameters, builds the data source, initialises, calls an
algorithm from :mod:`daskmeans.algorithms`, and sets the learned attributes; it never
calls a kernel.
"""

from ..io.errors import CheckpointFormatError, ModelFormatError
from .bisecting import BisectingKMeans
from .kmeans import KMeans
from .minibatch import MiniBatchKMeans
from .persistence import load_model, save_model

__all__ = ["BisectingKMeans", "CheckpointFormatError", "KMeans", "MiniBatchKMeans",
           "ModelFormatError", "load_model", "save_model"]
