"""Bisecting K-means with scikit-learn's semantics: the tree (:class:`BisectingTree`),
the bisections of leaves whose rows are held in this process (:func:`bisect_held`: a
whole compiled 2-means on each leaf's rows; :func:`bisect_subtree`: a leaf's whole
subtree, in the cluster's worker that joined its rows), the rounds of 2-means that
bisect leaves too large to gather in shared masked passes (:func:`bisect_round`), the
whole fit (:func:`bisecting`) and the labels of the leaves rows reach
(:func:`tree_predict`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..engine import maps, reductions, workers
from ..engine.reductions import SPLIT_EVERY
from ..engine.schedule import local_memory_budget, thread_map, worker_memory_budget
from ..engine.source import ArraySource, Source, reads_raw_uint8
from ..kernels import bisect
from ..kernels.bisect import BisectStep, TreeCentres, TreeSnapshot, tree_labels
from ..kernels.common import TopM, dense, splitmix64_uniform
from ..kernels.init import kmeans_plusplus
from .common import Progress, centers_from_sums, no_progress, relocate_empty

log = logging.getLogger(__name__)

#: ``on_split(centres)``: a split's two children's (2, d) centres, as it is applied
OnSplit = Callable[[np.ndarray], None]

#: rows a k-means++ or callable bisection init draws from its cluster: at most this
#: many per cluster, and all the clusters of a round (and their init runs) together
#: at most :data:`BISECT_SAMPLE_BYTES` of rows.
BISECT_SAMPLE_ROWS = 2048
BISECT_SAMPLE_BYTES = 32 << 20
#: bisect every leaf that may still be split in each round (False: only the next one,
#: scikit-learn's sequence, one bisection per round; the same tree, more passes).
BISECT_TOGETHER = True


def gather_budget() -> int:
    """Bytes of rows a fit may gather into this process to bisect their leaves there
    (:func:`daskmeans.engine.schedule.local_memory_budget`: this process's memory, also
    on a cluster); leaves whose rows do not fit are bisected by masked passes over the
    blocks."""
    return local_memory_budget()


@dataclass
class HeldRows:
    """Rows held in this process for bisecting their leaves here: ``X`` (m, d) as the
    kernels take them (float rows, or raw uint8 rows standing for
    ``float32(X) * scale``), their weights ``w`` (m,) float64 and global row indices
    ``index`` (m,), ascending (None: X is the whole source, a row's position is its
    index). In-memory data are held as they are (no copy)."""

    X: np.ndarray
    scale: float | None
    w: np.ndarray
    index: np.ndarray | None = None

    def global_index(self, pos: np.ndarray) -> np.ndarray:
        return pos if self.index is None else self.index[pos]


@dataclass
class LeafAt:
    """A leaf whose rows are held here: rows ``pos`` (ascending, so in global row
    order) of ``rows``."""

    rows: HeldRows
    pos: np.ndarray


@dataclass
class BisectingTree:
    """The tree of a bisecting K-means: node 0 is the root (all rows); a node that was
    bisected has two children (``children[i]``, left then right; ``-1`` for leaves).
    Nodes are numbered in the order they were made (children of the k-th split are
    nodes ``2k+1`` and ``2k+2``).

    Attributes
    ----------
    parent : (n_nodes,) int64, -1 for the root
    children : (n_nodes, 2) int64
    centers : (n_nodes, n_features) float64: the mean of the node's rows (weighted
        below the root; the root's is the plain mean, as scikit-learn's)
    sizes : (n_nodes,) int64 rows in the node
    weights : (n_nodes,) float64 their total sample weight
    sse : (n_nodes,) float64 weighted sum of squared distances of the rows to
        ``centers`` (the node's inertia)
    scores : (n_nodes,) float64 what ``bisecting_strategy`` ranks (the SSE, or the
        row count; 0 for the root)
    labels : (n_nodes,) int64 the cluster label of a leaf, -1 for inner nodes
    """

    parent: np.ndarray
    children: np.ndarray
    centers: np.ndarray
    sizes: np.ndarray
    weights: np.ndarray
    sse: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    ARRAYS: ClassVar[tuple[str, ...]] = ("parent", "children", "centers", "sizes", "weights",
                                        "sse", "scores", "labels")

    def leaves(self) -> list[int]:
        """Leaf nodes left to right (scikit-learn's ``iter_leaves`` order)."""
        out, stack = [], [0]
        while stack:
            i = stack.pop()
            if self.children[i, 0] < 0:
                out.append(i)
            else:
                stack += [int(self.children[i, 1]), int(self.children[i, 0])]
        return out

    def snapshot(self, slot: np.ndarray | None = None) -> TreeSnapshot:
        """What tasks need to send rows down the tree (``slot``: per node, the 2-means
        it takes part in, -1 for none)."""
        n = self.parent.shape[0]
        return TreeSnapshot(self.children[:, 0].copy(), self.children[:, 1].copy(),
                              np.asarray(self.centers, np.float64),
                              np.full(n, -1, np.int64) if slot is None else slot)

    def leaf_centres(self) -> TreeCentres:
        """What scoring assigns rows with to reach this tree's leaves (as ``predict``)."""
        return TreeCentres(self.snapshot(), self.labels, self.centers[self.leaves()])

    @classmethod
    def empty(cls, d: int) -> BisectingTree:
        return cls(np.empty(0, np.int64), np.empty((0, 2), np.int64), np.empty((0, d)),
                   np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0),
                   np.empty(0, np.int64))

    def add(self, parent: int, center: np.ndarray, size: int, weight: float, sse: float,
            score: float) -> int:
        """Append a node (a child of ``parent``, or the root); returns its number."""
        i = self.parent.shape[0]
        self.parent = np.append(self.parent, parent)
        self.children = np.vstack([self.children, [[-1, -1]]])
        self.centers = np.vstack([self.centers, np.asarray(center, np.float64)[None]])
        self.sizes = np.append(self.sizes, size)
        self.weights = np.append(self.weights, weight)
        self.sse = np.append(self.sse, sse)
        self.scores = np.append(self.scores, score)
        self.labels = np.append(self.labels, -1)
        if parent >= 0:
            self.children[parent, int(self.children[parent, 0] >= 0)] = i
        return i


@dataclass
class Bisection:
    """The best of a cluster's ``n_init`` 2-means: the children's centres, row counts,
    weights and SSE, and how it went."""

    centers: np.ndarray  # (2, d) float64
    sizes: np.ndarray  # (2,) int64
    weights: np.ndarray  # (2,) float64
    sse: np.ndarray  # (2,) float64
    n_iter: int
    run: int
    #: the children's rows when the leaf's rows are held here (left, right)
    parts: tuple[LeafAt, LeafAt] | None = None
    #: the children's own bisections when they were made ahead, with this one (a
    #: leaf's subtree grown in a worker: :func:`bisect_subtree`), None where not
    below: tuple[Bisection | None, Bisection | None] | None = None


@dataclass
class BisectSpec:
    """How to bisect (scikit-learn's BisectingKMeans parameters)."""

    init: Any  # "random", "k-means++" or a callable
    n_init: int
    max_iter: int
    tol: float  # absolute, on the summed squared shift of the two centres
    strategy: str  # "biggest_inertia" or "largest_cluster"
    split_every: int = SPLIT_EVERY


def _node_seed(key: int, branch: int) -> int:
    """A seed for a node's child or init run from the node's own: it depends on the
    path from the root only, not on the order bisections run in."""
    u = splitmix64_uniform(np.array([branch], np.int64), key)[0]
    return int(u * (1 << 62))


def _bisect_inits(src: Source, tree: BisectingTree, leaves: list[int], seeds: np.ndarray,
                  spec: BisectSpec, snap_slot: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, list[Any] | None]:
    """Initial centres (a, r, 2, d) of the round's 2-means: one pass drawing, per
    cluster and init run, 2 rows with probability ~ weight, without replacement
    ("random", as scikit-learn), or a uniform sample of the cluster's rows for
    k-means++ (weighted) or a callable. Also (a,) whether each cluster has 2 rows of
    positive weight (one that has not cannot be bisected), and the blocks' nodes in the
    tree, kept for the round's later passes (see
    :func:`daskmeans.engine.reductions.bisect_pass`)."""
    a, r = seeds.shape
    d = src.d
    if isinstance(spec.init, str) and spec.init == "random":
        m, weighted = 2, True
    else:
        per = BISECT_SAMPLE_BYTES // max(1, a * r * d * src.dtype.itemsize)
        m, weighted = int(max(2, min(BISECT_SAMPLE_ROWS, per))), False
    step = BisectStep(tree.snapshot(snap_slot), np.zeros((a, r, 2, d)),
                        np.zeros((a, r), bool), seeds, sample=m, weighted=weighted)
    part, nodes = reductions.bisect_pass(src, step, spec.split_every, keep=True)
    C = np.zeros((a, r, 2, d))
    ok = np.ones(a, bool)
    for s in range(a):
        for j in range(r):
            got = _init_from_sample(part.top[s][j], spec, int(seeds[s, j]), d)
            if got is None:
                ok[s] = False
            else:
                C[s, j] = got
    return C, ok, nodes


def _init_from_sample(t: TopM, spec: BisectSpec, seed: int, d: int) -> np.ndarray | None:
    """A 2-means' initial centres (2, d) from its drawn rows (``t``, by key): the two
    first ("random": two weighted draws without replacement), k-means++ on them
    (weighted), or the callable's; None when fewer than 2 rows of positive weight were
    drawn (the cluster cannot be bisected)."""
    usable = np.isfinite(t.sqdist) & (t.weights > 0)
    if usable.sum() < 2:
        return None
    rows, w = t.rows[np.flatnonzero(usable)].astype(np.float64), t.weights[usable]
    if isinstance(spec.init, str) and spec.init == "random":
        return dense(rows[:2])
    if callable(spec.init):
        out = dense(spec.init(t.rows[np.flatnonzero(usable)], 2,
                              random_state=np.random.RandomState(seed % (1 << 32))))
        if out.shape != (2, d):
            raise ValueError(f"init callable must return shape (2, {d}) for a "
                             f"bisection, got {out.shape}")
        return out
    return kmeans_plusplus(rows, 2, np.random.default_rng(seed), weights=w)


def bisect_round(src: Source, tree: BisectingTree, leaves: list[int], keys: dict[int, int],
                 spec: BisectSpec) -> tuple[dict[int, Bisection], int]:
    """Bisect the clusters ``leaves`` of ``tree`` together: each pass of the round
    (the init draws, every Lloyd iteration, the final E-step) serves all their 2-means
    and ``n_init`` runs at once, the rows of each cluster picked out of every block by
    following the tree (a masked pass: no copy or gather of the rows). Each 2-means
    stops on its own (labels fixed, or its squared centre shift <= ``spec.tol``) and
    empty children take the farthest rows, as in
    :func:`daskmeans.algorithms.lloyd.lloyd`.

    Returns ({leaf: its best Bisection}, passes made); a leaf without two rows of
    positive weight gets none."""
    a, r = len(leaves), spec.n_init
    slot = np.full(tree.parent.shape[0], -1, np.int64)
    slot[leaves] = np.arange(a)
    seeds = np.array([[_node_seed(keys[node], 2 + j) for j in range(r)] for node in leaves],
                     np.int64)
    C, ok, nodes = _bisect_inits(src, tree, leaves, seeds, spec, slot)
    n_passes = 1
    active = np.repeat(ok[:, None], r, axis=1)
    strict = ~active
    n_iter = np.zeros((a, r), np.int64)
    stats: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    snap = tree.snapshot(slot)
    for _ in range(spec.max_iter):
        if not active.any():
            break
        part, _ = reductions.bisect_pass(src, BisectStep(snap, C.copy(), active.copy(), seeds),
                                spec.split_every, nodes=nodes)
        n_passes += 1
        for s, j in zip(*np.nonzero(active), strict=True):
            sums, weight = part.sums[s, j].copy(), part.weight[s, j].copy()
            n_reloc = relocate_empty(sums, weight, part.top[s][j])
            new = centers_from_sums(sums, weight, C[s, j])
            shift = float(((new - C[s, j]) ** 2).sum())
            n_iter[s, j] += 1
            stats[s, j] = (part.sse[s, j], part.count[s, j], part.weight[s, j])
            if shift == 0 and n_reloc == 0:
                strict[s, j], active[s, j] = True, False  # labels fixed: stats are final
            elif shift <= spec.tol:
                active[s, j] = False
            C[s, j] = new
    again = ~strict
    if again.any():  # E-step against the final centres (scikit-learn's last labels)
        part, _ = reductions.bisect_pass(src, BisectStep(snap, C.copy(), again, seeds),
                                spec.split_every, nodes=nodes)
        n_passes += 1
        for s, j in zip(*np.nonzero(again), strict=True):
            stats[s, j] = (part.sse[s, j], part.count[s, j], part.weight[s, j])
    out = {}
    for s, node in enumerate(leaves):
        if not ok[s]:
            continue
        best = None
        for j in range(r):
            inertia = float(stats[s, j][0].sum())
            if best is None or inertia < best[0] * (1 - 1e-6):  # as scikit-learn
                best = (inertia, j)
        assert best is not None
        j = best[1]
        sse, count, weight = stats[s, j]
        out[node] = Bisection(C[s, j].copy(), count.copy(), weight.copy(), sse.copy(),
                              int(n_iter[s, j]), j)
    return out, n_passes


def bisect_held(held: dict[int, LeafAt], leaves: list[int], keys: dict[int, int],
                spec: BisectSpec) -> dict[int, Bisection]:
    """Bisect the clusters ``leaves``, whose rows are held here (``held``): each 2-means
    (every leaf's ``n_init`` runs) runs whole on its leaf's rows only
    (:func:`daskmeans.kernels.bisect.two_means`, compiled), the runs side by side in
    this process's threads, largest first. The init draws are those of a masked init
    pass (the same keys of the same global rows), except that k-means++ always samples
    :data:`BISECT_SAMPLE_ROWS` rows (no pass carries the samples).

    Returns {leaf: its best Bisection, with its children's rows}; a leaf without two
    rows of positive weight gets none."""
    r = spec.n_init
    jobs = sorted(((node, j) for node in leaves for j in range(r)),
                  key=lambda job: -held[job[0]].pos.shape[0])
    weighted = isinstance(spec.init, str) and spec.init == "random"
    m = 2 if weighted else BISECT_SAMPLE_ROWS

    def run(job: tuple[int, int]) -> bisect.TwoMeans | None:
        node, j = job
        at, seed = held[node], _node_seed(keys[node], 2 + j)
        rows = at.rows
        sample = bisect.leaf_sample(rows.X, at.pos, rows.global_index(at.pos), rows.w, seed,
                                    m, weighted, rows.scale)
        C0 = _init_from_sample(sample, spec, seed, rows.X.shape[1])
        if C0 is None:
            return None
        return bisect.two_means(rows.X, at.pos, rows.w, C0, max_iter=spec.max_iter,
                                tol=spec.tol, scale=rows.scale)

    done = dict(zip(jobs, thread_map(run, jobs), strict=True))
    out = {}
    for node in leaves:
        runs = [done[node, j] for j in range(r)]
        best: tuple[float, int] | None = None
        for j, run_j in enumerate(runs):
            if run_j is None:
                break
            inertia = float(run_j.sse.sum())
            if best is None or inertia < best[0] * (1 - 1e-6):  # as scikit-learn
                best = (inertia, j)
        if best is None or any(g is None for g in runs):
            continue
        j = best[1]
        got, at = runs[j], held[node]
        assert got is not None
        parts = (LeafAt(at.rows, at.pos[got.labels == 0]),
                 LeafAt(at.rows, at.pos[got.labels == 1]))
        out[node] = Bisection(got.centres, got.count, got.weight, got.sse, got.n_iter, j,
                              parts)
    return out


def _gathered_itemsize(src: Source) -> int:
    """Bytes per value of gathered rows (raw uint8 rows stay raw)."""
    return 1 if reads_raw_uint8(src) else src.dtype.itemsize


def _gather(src: Source, tree: BisectingTree, leaves: list[int], split_every: int
            ) -> dict[int, LeafAt]:
    """The rows of ``leaves`` gathered from the blocks into this process in one pass
    (each block sends the rows that reach them), in global row order."""
    raw = reads_raw_uint8(src)
    slot = np.full(tree.parent.shape[0], -1, np.int64)
    slot[leaves] = np.arange(len(leaves))
    index, X, slots, w = reductions.leaf_rows_pass(src, tree.snapshot(slot), split_every).joined(
        src.d, np.uint8 if raw else src.dtype)
    rows = HeldRows(X, src.scale if raw else None,
                    np.ones(X.shape[0]) if w is None else w, index)
    return {node: LeafAt(rows, np.flatnonzero(slots == s)) for s, node in enumerate(leaves)}


def bisecting(src: Source, n_clusters: int, spec: BisectSpec, seed: int,
              progress: Progress = no_progress, on_split: OnSplit | None = None
              ) -> tuple[BisectingTree, list[dict[str, Any]], np.ndarray | None]:
    """Bisecting K-means with scikit-learn's semantics, distributed.

    Starting from one cluster (all rows), ``n_clusters - 1`` times the leaf with the
    largest score (its SSE for ``"biggest_inertia"``, its row count for
    ``"largest_cluster"``; the first such leaf left to right) is split in two by the
    best of ``n_init`` 2-means. Since a leaf's bisection depends only on its rows and
    on a seed drawn from its path in the tree, the leaves that may still be split (the
    ``n_clusters - 1 - splits`` best-scored ones) are bisected together in rounds; the
    splits are then applied in scikit-learn's order, and a round runs again when the
    next leaf to split has no bisection yet. A bisection computed for a leaf that is
    never chosen is dropped.

    Where a leaf's rows are: an in-memory array's rows are used here as they are. A
    store's or dask array's rows are gathered once, in global row order, where they
    are (:func:`daskmeans.engine.workers.all_rows_call`): blocks held in a
    cluster's workers are joined in one task on a worker, within
    :func:`worker_gather_budget`, which runs the whole fit (:func:`bisect_rows`) there
    and sends back the tree; blocks held here are joined here; others are gathered
    here within :func:`gather_budget`. With all rows in one place each leaf is
    bisected by :func:`bisect_held` (each 2-means on its own rows, no pass at all)
    and its children's rows follow from the labels. Rows too many for that are left
    where they are and leaves are gathered where they are as they become small
    enough: on a cluster whose workers hold (or read) the blocks, each such leaf's
    rows are joined in one task on a worker, within :func:`worker_gather_budget`,
    which grows the leaf's whole subtree there (:func:`bisect_subtree`) and sends
    back its bisections (the leaves' tasks run side by side on the workers; no row
    reaches the client); else they are gathered here, within :func:`gather_budget`.
    The larger ones are bisected by :func:`bisect_round` (masked passes shared by
    the round's bisections).

    ``on_split(centres)`` hears of each split's two new centres as it is applied, in
    scikit-learn's order (``verbose``; after the fit, when the fit ran in a worker).

    Returns the tree (leaf labels set left to right), one record per round and, when
    every leaf's rows are held here, each row's (n,) int32 label: the leaf its last
    bisection sent it to, which is the leaf the tree descent reaches (the same float64
    distances); else None.
    """
    if isinstance(src, ArraySource):
        X = src.X.reshape(src.n, -1)
        w = np.ones(src.n) if src.weights is None else np.asarray(src.weights, np.float64)
        return bisect_rows(HeldRows(X, None, w), n_clusters, spec, seed, progress, on_split)
    reported: list[int] = []
    told: list[np.ndarray] = []

    def tell(centres: np.ndarray) -> None:
        told.append(centres)
        if on_split is not None:
            on_split(centres)

    def report(phase: str, done: int, total: int, detail: str = "") -> None:
        reported.append(done)
        progress(phase, done, total, detail)

    got = workers.all_rows_call(
        src, _bisect_joined, n_clusters, spec, seed, budget_here=gather_budget(),
        budget_worker=worker_gather_budget(), here={"progress": report, "on_split": tell},
        split_every=spec.split_every)
    if got is not None:
        if not reported and n_clusters > 1:  # ran in a worker: the bar ends here
            progress("bisecting", n_clusters - 1, n_clusters - 1,
                     f"{len(got[0].leaves())} clusters")
        if not told and on_split is not None:  # ran in a worker: its splits now
            tree = got[0]  # each split added its two children one after the other
            for child in range(1, len(tree.sizes), 2):
                on_split(tree.centers[child:child + 2])
        return got
    root = reductions.root_pass(src, spec.split_every)

    def far_round(tree: BisectingTree, todo: list[int], held: dict[int, LeafAt],
                  keys: dict[int, int], most: dict[int, int]
                  ) -> tuple[dict[int, Bisection], int]:
        return _bisect_round_anywhere(src, tree, todo, held, keys, most, spec)

    return _grow(root, src.n, src.d, n_clusters, spec, seed, {}, far_round, progress, tell)


def _bisect_joined(index: np.ndarray, X: np.ndarray, w: np.ndarray | None,
                   scale: float | None, n_clusters: int, spec: BisectSpec, seed: int,
                   progress: Progress = no_progress, on_split: OnSplit | None = None
                   ) -> tuple[BisectingTree, list[dict[str, Any]], np.ndarray | None]:
    """:func:`bisect_rows` on all rows gathered in one place (here or in a worker)."""
    rows = HeldRows(X, scale, np.ones(X.shape[0]) if w is None else w, index)
    return bisect_rows(rows, n_clusters, spec, seed, progress, on_split)


def bisect_rows(rows: HeldRows, n_clusters: int, spec: BisectSpec, seed: int,
                progress: Progress = no_progress, on_split: OnSplit | None = None
                ) -> tuple[BisectingTree, list[dict[str, Any]], np.ndarray | None]:
    """The whole bisecting fit (see :func:`bisecting`) on all rows held in this
    process (here, or in the worker that gathered them): every bisection by
    :func:`bisect_held`, no pass at all."""
    n, d = rows.X.shape[0], int(np.prod(rows.X.shape[1:]))
    root = bisect.root_rows(rows.X, rows.w, rows.scale)

    def held_round(tree: BisectingTree, todo: list[int], held: dict[int, LeafAt],
                   keys: dict[int, int], most: dict[int, int]
                   ) -> tuple[dict[int, Bisection], int]:
        return bisect_held(held, todo, keys, spec), 0

    return _grow(root, n, d, n_clusters, spec, seed, {0: LeafAt(rows, np.arange(n))},
                 held_round, progress, on_split)


def worker_gather_budget() -> int:
    """Bytes of rows a fit may gather into one of a cluster's workers to run the whole
    fit there (:func:`daskmeans.engine.schedule.worker_memory_budget`)."""
    return worker_memory_budget()


def _grow(root: bisect.RootPartial, n: int, d: int, n_clusters: int, spec: BisectSpec,
          seed: int, held: dict[int, LeafAt],
          bisect_leaves: Callable[..., tuple[dict[int, Bisection], int]],
          progress: Progress, on_split: OnSplit | None = None
          ) -> tuple[BisectingTree, list[dict[str, Any]], np.ndarray | None]:
    """The tree from its root's statistics: rounds of ``bisect_leaves(tree, todo,
    held, keys, most)`` (returning the bisections and the passes made) and the splits
    in scikit-learn's order (see :func:`bisecting`, :func:`_split`)."""
    c = root.sum / max(root.n, 1)
    sse = max(root.wsq - 2 * float(c @ root.wsum) + root.weight * float(c @ c), 0.0)
    tree = BisectingTree.empty(d)
    tree.add(-1, c, root.n, root.weight, sse, 0.0)
    history: list[dict[str, Any]] = []
    _split(tree, {0: seed}, held, n_clusters - 1, spec.strategy, bisect_leaves, history,
           progress, on_split=on_split)
    labels = np.empty(n, np.int32) if all(i in held for i in tree.leaves()) else None
    for label, leaf in enumerate(tree.leaves()):
        tree.labels[leaf] = label
        if labels is not None:
            at = held[leaf]
            labels[at.rows.global_index(at.pos)] = label
    return tree, history, labels


def _split(tree: BisectingTree, keys: dict[int, int], held: dict[int, LeafAt],
           n_splits: int, strategy: str,
           bisect_leaves: Callable[..., tuple[dict[int, Bisection], int]],
           history: list[dict[str, Any]], progress: Progress = no_progress, *,
           stop_when_stuck: bool = False, on_split: OnSplit | None = None
           ) -> dict[int, Bisection]:
    """Split ``tree``'s leaves ``n_splits`` times in scikit-learn's order (a child's
    score: its SSE, or its row count for the ``"largest_cluster"`` ``strategy``): rounds of
    ``bisect_leaves(tree, todo, held, keys, most)`` (``most``: per leaf of ``todo``,
    the most splits its subtree can still take: a leaf ranked p-th is split after
    the p leaves ranked before it), each recorded in ``history``; the children of a
    bisection made with its children's own (:attr:`Bisection.below`) need no round.

    A leaf that cannot be bisected when its turn comes is an error, or, with
    ``stop_when_stuck``, ends the splits (a subtree grown ahead: the fit would fail
    only if it came to that leaf). ``on_split`` hears of each split's two centres as it
    is applied. Returns {node split: its bisection}."""
    done: dict[int, Bisection] = {}
    applied: dict[int, Bisection] = {}
    splits = 0
    while splits < n_splits:
        leaves = tree.leaves()
        order = sorted(range(len(leaves)), key=lambda p: (-tree.scores[leaves[p]], p))
        ranked = [leaves[p] for p in order]  # by score, then left to right
        node = ranked[0]
        if node not in done:
            t0 = time.perf_counter()
            budget = n_splits - splits
            todo = [node] + [i for i in ranked[1:budget] if BISECT_TOGETHER
                             and i not in done and tree.sizes[i] >= 2]
            most = {i: budget - p for p, i in enumerate(ranked[:budget])}
            got, n_passes = bisect_leaves(tree, todo, held, keys, most)
            if node not in got:
                if stop_when_stuck:
                    break
                raise ValueError(
                    f"cannot bisect a cluster of {int(tree.sizes[node])} rows with fewer "
                    f"than 2 of positive weight: n_clusters={n_splits + 1} is too large for "
                    "these data")
            done.update(got)
            history.append({"round": len(history) + 1, "bisections": len(todo),
                            "passes": n_passes,
                            "n_iter": int(max(b.n_iter for b in got.values())),
                            "seconds": time.perf_counter() - t0})
            log.debug("bisecting round %d: %d clusters, %d passes", len(history), len(todo),
                      n_passes)
            continue
        b = applied[node] = done.pop(node)
        scores = b.sse if strategy == "biggest_inertia" else b.sizes.astype(np.float64)
        held.pop(node, None)
        for side in (0, 1):
            child = tree.add(node, b.centers[side], int(b.sizes[side]),
                             float(b.weights[side]), float(b.sse[side]), float(scores[side]))
            keys[child] = _node_seed(keys[node], side)
            if b.parts is not None:
                held[child] = b.parts[side]
            ahead = None if b.below is None else b.below[side]
            if ahead is not None:
                done[child] = ahead
        splits += 1
        if on_split is not None:
            on_split(b.centers)
        progress("bisecting", splits, n_splits, f"{len(tree.leaves())} clusters")
    return applied


def _bisect_round_anywhere(src: Source, tree: BisectingTree, todo: list[int],
                           held: dict[int, LeafAt], keys: dict[int, int],
                           most: dict[int, int], spec: BisectSpec
                           ) -> tuple[dict[int, Bisection], int]:
    """A round: the leaves of ``todo`` not held here whose rows fit in one place go
    where they are gathered: on a cluster whose workers can take the rows
    (:func:`daskmeans.engine.workers.readable_in_workers`), each such leaf's rows to
    one worker (within :func:`worker_gather_budget`), which grows the leaf's whole
    subtree there (:func:`bisect_subtree`, at most ``most[leaf]`` splits); else into
    this process (one pass, within :func:`gather_budget`). Those that fit nowhere are
    bisected by masked passes (:func:`bisect_round`, meanwhile), the held ones here
    (:func:`bisect_held`). Returns the bisections and the passes made."""
    far = [i for i in todo if i not in held]
    n_passes = 0
    itemsize = _gathered_itemsize(src)
    there: list[int] = []
    if far and workers.readable_in_workers(src):
        room = worker_gather_budget()
        there = [i for i in far if int(tree.sizes[i]) * src.d * itemsize <= room]
    elif far:
        in_use = sum({id(at.rows): at.rows.X.nbytes for at in held.values()}.values())
        room, fit = gather_budget() - in_use, []
        for i in sorted(far, key=lambda i: (tree.sizes[i], i)):  # the smallest first
            need = int(tree.sizes[i]) * src.d * itemsize
            if need > room:
                break
            room -= need
            fit.append(i)
        if fit:
            held.update(_gather(src, tree, fit, spec.split_every))
            n_passes += 1
    calls = _subtrees_in_workers(src, tree, there, keys, most, spec)
    got: dict[int, Bisection] = {}
    masked = [i for i in todo if i not in held and i not in there]
    if masked:
        got, passes = bisect_round(src, tree, masked, keys, spec)
        n_passes += passes
    local = [i for i in todo if i in held]
    if local:
        got.update(bisect_held(held, local, keys, spec))
    for node, made in zip(there, calls.result(), strict=True):
        if made is not None:
            got[node] = link_subtree(*made)
    return got, n_passes


def _subtrees_in_workers(src: Source, tree: BisectingTree, leaves: list[int],
                         keys: dict[int, int], most: dict[int, int], spec: BisectSpec
                         ) -> workers.LeafCalls:
    """Submit :func:`bisect_subtree` on each of ``leaves``, its rows joined in a
    worker (:func:`daskmeans.engine.workers.leaf_rows_calls`)."""
    slot = np.full(tree.parent.shape[0], -1, np.int64)
    slot[leaves] = np.arange(len(leaves))
    return workers.leaf_rows_calls(src, tree.snapshot(slot), bisect_subtree,
                                   [(keys[i], most[i], spec) for i in leaves])


def bisect_subtree(index: np.ndarray, X: np.ndarray, w: np.ndarray | None,
                   scale: float | None, key: int, n_splits: int, spec: BisectSpec
                   ) -> tuple[list[Bisection], np.ndarray] | None:
    """A leaf's subtree grown on its rows held in this process (in the worker that
    joined them), as the whole fit would grow it: the leaf's seed ``key``, at most
    ``n_splits`` splits, each bisection by :func:`bisect_held`, in the fit's order
    (within a subtree, the fit splits its leaves in the subtree's own order of
    scores, left to right on ties). The fit takes the first of these splits that its
    other leaves leave room for.

    Returns the bisections made (the leaf's first), without their rows, and each
    one's children's places in that list, (m, 2), -1 for a child not split
    (:func:`link_subtree` links them), or None when the leaf cannot be bisected."""
    rows = HeldRows(X, scale, np.ones(X.shape[0]) if w is None else w, index)
    n, d = X.shape[0], X.shape[1]
    tree = BisectingTree.empty(d)
    tree.add(-1, np.zeros(d), n, float(rows.w.sum()), 0.0, 0.0)

    def held_round(tree: BisectingTree, todo: list[int], held: dict[int, LeafAt],
                   keys: dict[int, int], most: dict[int, int]
                   ) -> tuple[dict[int, Bisection], int]:
        return bisect_held(held, todo, keys, spec), 0

    applied = _split(tree, {0: key}, {0: LeafAt(rows, np.arange(n))}, n_splits,
                     spec.strategy, held_round, [], stop_when_stuck=True)
    if not applied:
        return None
    nodes = sorted(applied)
    place = {node: p for p, node in enumerate(nodes)}
    links = np.array([[place.get(int(c), -1) for c in tree.children[node]] for node in nodes],
                     np.int64).reshape(-1, 2)
    made = [applied[node] for node in nodes]
    for b in made:
        b.parts = None
    return made, links


def link_subtree(made: list[Bisection], links: np.ndarray) -> Bisection:
    """The first bisection of :func:`bisect_subtree`'s list, each one's children's
    bisections set as :attr:`Bisection.below`."""
    for b, (left, right) in zip(made, links.tolist(), strict=True):
        b.below = (made[left] if left >= 0 else None, made[right] if right >= 0 else None)
    return made[0]


def tree_predict(src: Source, tree: BisectingTree) -> Any:
    """(n,) int32 label of the leaf each row reaches following the tree from the root:
    numpy for in-memory rows, a lazy dask array otherwise."""
    snap = tree.snapshot()
    if not src.lazy:
        return tree_labels(src.X, snap, tree.labels)
    return maps.predict_tree_lazy(src, snap, tree.labels)
