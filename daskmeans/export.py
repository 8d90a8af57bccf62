"""Fitted models as ONNX graphs: ``predict`` and ``transform`` outside Python.

:func:`to_onnx` turns a fitted :class:`~daskmeans.KMeans`,
:class:`~daskmeans.MiniBatchKMeans` or :class:`~daskmeans.BisectingKMeans` into an
ONNX model that onnxruntime (or any ONNX runtime) serves. The graph has one input and
two outputs:

``X``
    ``(N, n_features)`` rows, float32 by default (``input_dtype``): the features the
    model was fitted on, as a user gives them to ``predict`` as a numpy array. A model
    fitted on a store of raw values with a ``scale_factor``
    (:data:`daskmeans.io.stores.SCALE_ATTR`, e.g. uint8 pixels ingested by
    ``daskmeans ingest``, ``scale_factor = 1/255``) learned centres in scaled units;
    ``predict`` on that store scales every row it reads. Given ``scale``, the graph
    does the same: it takes the raw values (``input_dtype="uint8"`` for pixels) and
    computes ``float32(raw) * float32(scale)``, the one scaling rule of
    :mod:`daskmeans.pixels`, bit for bit. Without ``scale`` the input is the features
    themselves (divide pixels by 255 first).
``label``
    ``(N,)`` int64: what ``predict`` returns (as int64, ONNX's index type; ``predict``
    gives int32). For BisectingKMeans each row follows the tree from the root, at
    each split to the nearer child centre (the left one on a tie), as
    ``BisectingKMeans.predict`` does. With ``nodata`` set, masked rows get -1.
``distances``
    ``(N, n_clusters)`` float32: what ``transform`` returns (Euclidean distances to
    ``cluster_centers_``; L1 distances for ``metric="manhattan"``; for
    ``metric="cosine"`` Euclidean distances of the L2-normalised rows). NaN for
    masked rows.

Every distance is computed in float64 inside the graph (the rows are cast once), so
the labels are the nearest centres of the rows in float64, as ``predict``'s near-tie
rule settles them; the distances are rounded to float32 at the end. Rows that are
exactly equidistant from two centres in float64 up to its rounding may be labelled
differently (``predict`` sums the squared differences, the graph expands
``|x|^2 - 2 x.c + |c|^2``). Rows holding NaN or infinity make ``predict`` raise; the
graph cannot raise and labels them arbitrarily: check inputs before serving them.

Why the graph is written with the ``onnx`` package rather than registered as an
skl2onnx converter: skl2onnx converts by estimator type and would need a parser, a
shape calculator and a converter registered for each of the three classes, yet its own
KMeans converter neither follows a bisecting tree, nor normalises rows for cosine,
nor computes L1 distances, nor scales raw pixels; the graph needs our own operators
in every case. Writing it directly keeps the one runtime dependency at ``onnx``
(the ``onnx`` extra), and the graph small enough to read in a viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .cluster import BisectingKMeans, KMeans, MiniBatchKMeans
from .cluster.base import BaseKMeans

__all__ = ["ONNX_OPSET", "to_onnx"]

#: The ONNX operator set the graphs use (every operator they need exists in it, and
#: runtimes of the last several years read it).
ONNX_OPSET = 17
#: The IR version written with :data:`ONNX_OPSET` (its own, so older runtimes load it).
_IR_VERSION = 8
_INPUT_DTYPES = {"float32": 1, "float64": 11, "uint8": 2}  # onnx.TensorProto's numbers


class _Graph:
    """A graph under construction: nodes, constants, unique names."""

    def __init__(self) -> None:
        import onnx.helper

        self.helper = onnx.helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, value: Any, stem: str = "c") -> str:
        """A constant (initializer) holding ``value``; returns its name."""
        import onnx.numpy_helper

        name = self.name(stem)
        self.inits.append(onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        """One node; returns the name of its (single) output."""
        output = out or self.name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [output], **attrs))
        return output


def _features(g: _Graph, x: str, input_dtype: str, scale: float | None) -> str:
    """The input as float64 features: raw values scaled as :mod:`daskmeans.pixels`
    scales them (float32 cast, one float32 multiply), then cast to float64."""
    if scale is not None:
        x = g.op("Cast", x, to=1)
        x = g.op("Mul", x, g.const(np.float32(scale), "scale"))
    return g.op("Cast", x, to=11)


def _normalised(g: _Graph, x: str) -> str:
    """Rows scaled to unit L2 norm (zero rows stay zero), as cosine models read them."""
    norm = g.op("Sqrt", g.op("ReduceSumSquare", x, axes=[1], keepdims=1))
    zero = g.op("Equal", norm, g.const(np.float64(0.0), "zero"))
    return g.op("Div", x, g.op("Where", zero, g.const(np.float64(1.0), "one"), norm))


def _squared_distances(g: _Graph, x: str, centres: np.ndarray) -> str:
    """(N, m) float64 squared Euclidean distances to the rows of ``centres``."""
    c = np.asarray(centres, np.float64)
    x_sq = g.op("ReduceSumSquare", x, axes=[1], keepdims=1)
    cross = g.op("MatMul", x, g.const(-2.0 * c.T, "minus_2ct"))
    d2 = g.op("Add", g.op("Add", cross, g.const((c * c).sum(1), "c_sq")), x_sq)
    return g.op("Max", d2, g.const(np.float64(0.0), "zero"))


def _l1_distances(g: _Graph, x: str, centres: np.ndarray) -> str:
    """(N, k) float64 L1 distances, one centre at a time (no (N, k, d) temporary)."""
    cols = [g.op("ReduceSum", g.op("Abs", g.op("Sub", x, g.const(c, "centre"))),
                 g.const(np.array([1], np.int64), "axes"), keepdims=1)
            for c in np.asarray(centres, np.float64)]
    return cols[0] if len(cols) == 1 else g.op("Concat", *cols, axis=1)


def _tree_labels(g: _Graph, x: str, model: BisectingKMeans) -> str:
    """(N,) int64 label of the leaf each row reaches from the root of the model's tree,
    one level of the tree per step (the graph is unrolled to the tree's depth)."""
    tree = model.tree_
    left, right = tree.children[:, 0].astype(np.int64), tree.children[:, 1].astype(np.int64)
    depth = np.zeros(left.shape[0], np.int64)
    for i in range(left.shape[0]):  # parents come before their children
        if left[i] >= 0:
            depth[left[i]] = depth[right[i]] = depth[i] + 1
    d2 = _squared_distances(g, x, tree.centers)
    n_rows = g.op("Slice", g.op("Shape", x), g.const(np.array([0], np.int64), "start"),
                  g.const(np.array([1], np.int64), "end"))
    node = g.op("ConstantOfShape", n_rows,
                value=g.helper.make_tensor("zero", 7, [1], [0]))
    left_c, right_c = g.const(left, "left"), g.const(right, "right")
    zero = g.const(np.int64(0), "zero_i")
    for _ in range(int(depth.max())):
        lft, rgt = g.op("Gather", left_c, node), g.op("Gather", right_c, node)
        inner = g.op("GreaterOrEqual", lft, zero)
        lft, rgt = g.op("Max", lft, zero), g.op("Max", rgt, zero)
        one = g.const(np.array([1], np.int64), "axis1")
        d_left = g.op("GatherElements", d2, g.op("Unsqueeze", lft, one), axis=1)
        d_right = g.op("GatherElements", d2, g.op("Unsqueeze", rgt, one), axis=1)
        nearer_right = g.op("Squeeze", g.op("Less", d_right, d_left), one)
        node = g.op("Where", inner, g.op("Where", nearer_right, rgt, lft), node)
    return g.op("Gather", g.const(tree.labels.astype(np.int64), "leaf_labels"), node)


def _masked(g: _Graph, raw: str, raw_type: int, nodata: float) -> str:
    """(N,) bool: rows holding ``nodata`` in any feature (NaN: any NaN), compared on
    the values as given, as the estimators compare them."""
    if np.isnan(nodata):
        hit = g.op("IsNaN", raw)
    else:
        value = g.op("Cast", g.const(np.float64(nodata), "nodata"), to=raw_type)
        hit = g.op("Equal", raw, value)
    hits = g.op("ReduceMax", g.op("Cast", hit, to=6), axes=[1], keepdims=0)
    return g.op("Cast", hits, to=9)


def _check_model(model: Any) -> tuple[str, np.ndarray]:
    """The model's metric and centres, or an error saying why it cannot be exported."""
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(model, KMeans | MiniBatchKMeans | BisectingKMeans):
        raise TypeError(f"to_onnx exports daskmeans' KMeans, MiniBatchKMeans and "
                        f"BisectingKMeans, got {type(model).__name__}")
    check_is_fitted(model)
    metric = str(getattr(model, "metric", "euclidean"))
    if metric not in ("euclidean", "cosine", "manhattan"):
        raise ValueError(f"cannot export a model with metric={metric!r}")
    centres = np.asarray(model.cluster_centers_, np.float64)
    if centres.ndim != 2 or not np.isfinite(centres).all():
        raise ValueError("cannot export a model whose cluster_centers_ are not a finite "
                         f"(n_clusters, n_features) array (shape {centres.shape})")
    return metric, centres


def to_onnx(
    model: BaseKMeans,
    path: str | Path | None = None,
    *,
    input_dtype: str = "float32",
    scale: float | None = None,
    overwrite: bool = False,
) -> Any:
    """The ONNX model of a fitted estimator (see the module's description of the graph).

    Parameters
    ----------
    model : KMeans, MiniBatchKMeans or BisectingKMeans, fitted
        Any metric: ``"euclidean"``, ``"cosine"`` (rows normalised in the graph) or
        ``"manhattan"`` (L1 distances). A model with ``nodata`` labels rows holding it
        -1 (NaN distances), as ``predict`` does.
    path : str or Path, optional
        Also write the model there (``.onnx``), atomically; an existing file is
        refused (:class:`~daskmeans.io.errors.OutputExistsError`) unless ``overwrite``.
    input_dtype : {"float32", "float64", "uint8"}, default "float32"
        The element type of the input ``X``.
    scale : float, optional
        The input holds raw stored values whose features are
        ``float32(raw) * float32(scale)`` (a store's ``scale_factor``; 1/255 for
        pixels ingested by ``daskmeans ingest``): the graph scales them as ``predict``
        scales a store's rows. None: the input is the features.
    overwrite : bool, default False
        Replace an existing file at ``path``.

    Returns
    -------
    onnx.ModelProto

    Raises
    ------
    TypeError
        Not one of daskmeans' estimators.
    ValueError
        An unknown ``input_dtype``, a non-positive ``scale``, an unfitted model.

    Examples
    --------
    >>> import numpy as np, onnxruntime
    >>> from daskmeans import KMeans
    >>> X = np.array([[0, 0], [0, 1], [9, 9], [9, 8]], np.float32)
    >>> km = KMeans(2, random_state=0).fit(X)
    >>> session = onnxruntime.InferenceSession(to_onnx(km).SerializeToString())
    >>> label, distances = session.run(None, {"X": X})
    >>> bool((label == km.predict(X)).all()), distances.shape
    (True, (4, 2))
    """
    import onnx

    metric, centres = _check_model(model)
    if input_dtype not in _INPUT_DTYPES:
        raise ValueError(f"input_dtype must be one of {sorted(_INPUT_DTYPES)}, "
                         f"got {input_dtype!r}")
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    g, input_type = _Graph(), _INPUT_DTYPES[input_dtype]
    x = _features(g, "X", input_dtype, scale)
    if metric == "cosine":
        x = _normalised(g, x)
    if metric == "manhattan":
        dist = _l1_distances(g, x, centres)
        label = g.op("ArgMin", dist, axis=1, keepdims=0)
    else:
        d2 = _squared_distances(g, x, centres)
        dist = g.op("Sqrt", d2)
        label = (_tree_labels(g, x, model) if isinstance(model, BisectingKMeans)
                 else g.op("ArgMin", d2, axis=1, keepdims=0))
    nodata = getattr(model, "nodata", None)
    if nodata is not None:
        masked = _masked(g, "X", input_type, float(nodata))
        label = g.op("Where", masked, g.const(np.int64(-1), "minus_one"), label)
        dist = g.op("Where", g.op("Unsqueeze", masked, g.const(np.array([1], np.int64), "ax")),
                    g.const(np.float64(np.nan), "nan"), dist)
    g.op("Identity", label, out="label")
    g.op("Cast", dist, to=1, out="distances")
    k, d = centres.shape
    helper = g.helper
    graph = helper.make_graph(
        g.nodes, f"daskmeans_{type(model).__name__}",
        [helper.make_tensor_value_info("X", input_type, ["N", d])],
        [helper.make_tensor_value_info("label", 7, ["N"]),
         helper.make_tensor_value_info("distances", 1, ["N", k])],
        initializer=g.inits)
    from .version import __version__

    proto = helper.make_model(graph, producer_name="daskmeans", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              ir_version=_IR_VERSION)
    helper.set_model_props(proto, {"metric": metric, "class": type(model).__name__,
                                   "scale": "" if scale is None else repr(float(scale))})
    onnx.checker.check_model(proto)
    if path is not None:
        from .io.stores import atomic_file

        with atomic_file(Path(path), overwrite=overwrite) as tmp:
            tmp.write_bytes(proto.SerializeToString())
    return proto
