"""BisectingKMeans: scikit-learn's bisecting K-means, the clusters that may still be
split bisected together in shared passes
(:func:`daskmeans.algorithms.bisecting.bisecting`)."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real
from typing import Any, ClassVar

import dask.array as da
import numpy as np
from sklearn.utils import check_random_state

from ..algorithms import BisectSpec, tree_predict
from ..algorithms.bisecting import bisecting
from ..engine.hold import hold
from ..engine.source import ArraySource
from ..validation import Interval, Options
from .base import POSITIVE, BaseKMeans
from .verbose import say_split


class BisectingKMeans(BaseKMeans):
    """Bisecting K-means with scikit-learn's semantics, on numpy, dask or Zarr data.

    Starting from one cluster holding every row, ``n_clusters - 1`` times the cluster
    with the largest score (``bisecting_strategy``) is split in two by a 2-means (the
    best of ``n_init``, each from its own initialisation), as
    ``sklearn.cluster.BisectingKMeans`` does. Each 2-means runs on its cluster's
    rows only, whole, in a compiled loop in this process (distance bounds skip the
    rows that cannot change side; several bisections run side by side in threads):
    in-memory rows where they are, a store's or dask array's rows gathered here once
    (one pass) while they fit in memory. Clusters too large to gather are bisected by
    masked passes over the blocks: in every pass each row follows the tree from the
    root to its cluster (at each split, to the nearer child centre) and counts only for
    the 2-means of that cluster, the 2-means (and ``n_init`` runs) of every cluster
    that may still be split sharing each pass. Bisections computed ahead are applied
    in scikit-learn's order (see :func:`daskmeans.algorithms.bisecting.bisecting`).
    The result does not depend on the chunking or on which bisections ran together:
    a cluster's rows are taken in global row order and each bisection's
    initialisation is seeded from ``random_state`` and its place in the tree.

    Parameters
    ----------
    n_clusters : int, default 8
        The number of leaves (clusters) of the final tree.
    init : {"random", "k-means++"} or callable, default "random"
        Initialisation of each 2-means: ``"random"`` draws two of the cluster's rows
        with probability ~ sample weight, without replacement (as scikit-learn);
        ``"k-means++"`` runs k-means++ for two centres on a uniform sample of at most
        2048 of the cluster's rows (fewer when many clusters are bisected at once by
        masked passes: all samples of a pass stay under 32 MB); a callable gets such a
        sample as
        ``init(sample, 2, random_state=RandomState)``.
    n_init : int, default 1
        2-means runs per bisection; the lowest inertia wins (ties within 1e-6, the
        first, as scikit-learn).
    random_state : int, RandomState or None
        Seeds every bisection's initialisation, together with its place in the tree.
    max_iter : int, default 300
        Lloyd iterations of each 2-means.
    verbose : int, default 0
        When > 0, print scikit-learn's ``New centroids from bisection: ...`` on stdout
        as each split is applied (``callback=daskmeans.progress.TqdmBars()`` draws a
        progress bar instead).
    tol : float, default 1e-4
        A 2-means stops when the summed squared shift of its two centres is <= ``tol``
        (an absolute tolerance: scikit-learn's BisectingKMeans passes ``tol`` to its
        inner K-means unscaled), or when its labels no longer change.
    copy_x : bool, default True
        Accepted for scikit-learn compatibility: X is never modified.
    algorithm : {"lloyd", "elkan"}, default "lloyd"
        Accepted for scikit-learn compatibility: both run Lloyd's iterations (the
        same centres as Elkan's).
    bisecting_strategy : {"biggest_inertia", "largest_cluster"}, default "biggest_inertia"
        Which cluster to split next: the largest sum of squared distances to its centre,
        or the most rows (unweighted, as scikit-learn).
    split_every : int >= 2, default 8
        Fan-in of the tree reduction.
    callback : callable or None
        ``callback(phase, done, total, detail)`` after every split.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        The leaves' centres, left to right, in X's dtype.
    labels_ : ndarray or dask.array.Array of shape (n_samples,)
        int32: the leaf each row belongs to (numpy for numpy input, a lazy dask
        array otherwise).
    inertia_ : float
        Weighted sum of squared distances of the rows to their leaf's centre.
    tree_ : daskmeans.algorithms.BisectingTree
        Parent and children of every node, its centre, rows, weight, SSE and score,
        and the leaves' labels.
    n_iter_ : int
        Per round, the largest number of Lloyd iterations of its bisections, summed
        over the rounds.
    history_ : list of dict
        One dict per round: bisections run together, passes over the data (gathering
        rows, or masked passes; none for rows already held here), the largest number
        of iterations, seconds.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from daskmeans import BisectingKMeans
    >>> X = np.array([[1, 1], [10, 1], [3, 1], [10, 0], [2, 1], [10, 2],
    ...               [10, 8], [10, 9], [10, 10]], dtype=float)
    >>> bk = BisectingKMeans(n_clusters=3, random_state=0).fit(X)
    >>> sorted(bk.cluster_centers_.tolist())
    [[2.0, 1.0], [10.0, 1.0], [10.0, 9.0]]
    >>> bk.predict(np.array([[0., 0.], [12., 3.]])).tolist() == [
    ...     bk.labels_[0], bk.labels_[1]]
    True
    """

    # not parameters: what the shared methods of BaseKMeans read (xarray input with
    # feature_dim and nodata masking are KMeans' and MiniBatchKMeans')
    metric = "euclidean"
    feature_dim = None
    nodata = None
    _holds_in_memory = False  # in-memory rows are bisected where they are, in this process
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_clusters": [POSITIVE],
        "init": [Options("k-means++", "random"), callable],
        "n_init": [POSITIVE],
        "random_state": ["random_state"],
        "max_iter": [POSITIVE],
        "verbose": [Interval(Integral, 0, None), "boolean"],
        "tol": [Interval(Real, 0, None)],
        "copy_x": ["boolean"],
        "algorithm": [Options("lloyd", "elkan")],
        "bisecting_strategy": [Options("biggest_inertia", "largest_cluster")],
        "split_every": [Interval(Integral, 2, None)],
        "callback": [None, callable],
    }

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Callable[..., np.ndarray] = "random",
        n_init: int = 1,
        random_state: Any = None,
        max_iter: int = 300,
        verbose: int = 0,
        tol: float = 1e-4,
        copy_x: bool = True,
        algorithm: str = "lloyd",
        bisecting_strategy: str = "biggest_inertia",
        split_every: int = 8,
        callback: Callable[..., None] | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.random_state = random_state
        self.max_iter = max_iter
        self.verbose = verbose
        self.tol = tol
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.bisecting_strategy = bisecting_strategy
        self.split_every = split_every
        self.callback = callback

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> BisectingKMeans:
        """Build the tree of ``n_clusters`` leaves.

        Parameters
        ----------
        X : (n_samples, n_features) numpy array, dask array, Zarr array, store path or
            URL, or :class:`daskmeans.engine.source.Source` (a store's decoded rows are held in
            memory for the fit while they fit in a quarter of it, as for KMeans)
        y : ignored
        sample_weight : (n_samples,) array-like or dask array, optional

        Returns
        -------
        self
        """
        src = self._prepare(X, sample_weight)[0]
        if not isinstance(src, ArraySource):  # a store's or dask array's rows are read
            # once (within the budget), then joined where they are held
            src = hold(src, with_xsq=False)
        rs = check_random_state(self.random_state)
        seed = int(rs.randint(np.iinfo(np.int32).max))
        spec = BisectSpec(self.init, int(self.n_init), int(self.max_iter), float(self.tol),
                          str(self.bisecting_strategy), int(self.split_every))
        with self._progress() as progress:
            tree, history, labels = bisecting(src, int(self.n_clusters), spec, seed,
                                              progress.report,
                                              say_split if self.verbose else None)
        leaves = tree.leaves()
        self.tree_ = tree
        self.cluster_centers_ = tree.centers[leaves].astype(src.dtype)
        self.inertia_ = float(tree.sse[leaves].sum())
        self.history_ = history
        self.n_iter_ = int(sum(h["n_iter"] for h in history))
        if labels is None:
            self.labels_ = tree_predict(src, tree)
        else:  # known from the bisections (lazy input: lazy labels, as predict's)
            self.labels_ = labels if not src.lazy else da.from_array(
                labels, chunks=(tuple(np.diff(src.offsets).tolist()),))
        return self

    def _scoring_centres(self, C: np.ndarray, nearest: bool) -> Any:
        """Rows go to the leaf they reach (as ``predict``; ``evaluate_model`` scores
        those clusters and their SSE, as ``inertia_``); ``score`` keeps scikit-learn's
        nearest centre."""
        return C if nearest else self.tree_.leaf_centres()

    def predict(self, X: Any) -> Any:
        """The leaf each row reaches following the tree from the root (at each split,
        the nearer child centre), as scikit-learn's BisectingKMeans predicts; ``X`` and
        the (n_samples,) int32 labels are as in :meth:`daskmeans.KMeans.predict`."""
        src, _, _ = self._source_and_centres(X)
        return tree_predict(src, self.tree_)

