"""Sources of sparse rows out of core: a CSR Zarr store (CSRStoreSource) and dask arrays
of scipy.sparse blocks (SparseDaskSource). Their blocks are the in-memory sparse
source's: canonical CSR matrices of the source's rows, compared with the scipy matrix."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
import zarr

from daskmeans import open_source
from daskmeans.engine.hold import hold
from daskmeans.engine.source import (
    CSRBlock,
    CSRStoreSource,
    SparseDaskSource,
    SparseSource,
    as_source,
)
from daskmeans.io import ChunkDecodeError, write_csr


def matrix(n: int = 500, d: int = 40, dtype: str = "float32") -> sp.csr_matrix:
    X = sp.random(n, d, density=0.08, format="csr", dtype=dtype, random_state=3)
    X.data += 0.25
    return X


def same(a: sp.spmatrix, b: sp.spmatrix) -> bool:
    return a.shape == b.shape and (a != b).nnz == 0


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, sp.csr_matrix]:
    X = matrix()
    return write_csr(X, tmp_path / "x.zarr", rows_per_chunk=32, nnz_per_chunk=200), X


def test_open_source_recognises_the_layout(store: tuple[Path, sp.csr_matrix]) -> None:
    path, X = store
    for given in (path, str(path), zarr.open_group(path, mode="r")):
        src = as_source(given)
        assert isinstance(src, CSRStoreSource) and src.sparse and src.lazy
        assert src.shape == X.shape and src.dtype == np.float32
    src = open_source(path, cache=False)
    assert src.offsets[-1] == 500 and all(o % 32 == 0 for o in src.offsets[:-1])


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_store_blocks_equal_the_matrix(store: tuple[Path, sp.csr_matrix], threads: int) -> None:
    path, X = store
    src = CSRStoreSource(open_source(path).matrix, threads=threads)
    assert src.n_blocks >= min(threads, 16)
    for i in range(src.n_blocks):
        block = src.block(i)
        assert isinstance(block, CSRBlock)
        rows = block.read()
        assert sp.issparse(rows) and rows.format == "csr" and rows.has_canonical_format
        assert rows.dtype == np.float32
        assert same(rows, X[src.offsets[i]:src.offsets[i + 1]])
    single = src.regroup(1)
    assert single.n_blocks == 16
    assert same(single.block(3).read(), X[96:128])


def test_store_as_dask_and_held(store: tuple[Path, sp.csr_matrix]) -> None:
    path, X = store
    src = open_source(path)
    lazy = src.to_dask()
    assert sp.issparse(lazy.compute()) and same(lazy.compute(), X)
    assert same(lazy[64:96].compute(), X[64:96])
    held = hold(src)
    assert held.held is not None and len(held.held) == held.n_blocks
    for i, block in enumerate(held.held):
        assert same(block, X[held.offsets[i]:held.offsets[i + 1]])
    expected = np.asarray(X.multiply(X).sum(axis=1)).ravel()
    np.testing.assert_allclose(held.xsq, expected, rtol=1e-6)
    normalised = src.with_options(normalize=True).to_dask().compute()
    np.testing.assert_allclose(sp.linalg.norm(normalised, axis=1)[X.getnnz(axis=1) > 0], 1,
                               rtol=1e-6)


def test_integer_values_and_anndata_groups(tmp_path: Path) -> None:
    """Counts stored as integers read as float64; a CSR group X inside a store (an
    AnnData store's) is found by default or by array=."""
    X = sp.random(60, 12, density=0.2, format="csr", random_state=0)
    X.data = np.ceil(X.data * 5)
    root = zarr.open_group(tmp_path / "ad.zarr", mode="w")
    g = root.create_group("X")
    g.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0",
                    "shape": list(X.shape)})
    for name in ("indptr", "indices", "data"):
        values = getattr(X, name)
        values = values.astype(np.int64) if name == "data" else values
        g.create_array(name, shape=values.shape, dtype=values.dtype,
                       chunks=(16,))[:] = values
    root.create_array("obs_index", shape=(60,), dtype="i8")
    for src in (open_source(tmp_path / "ad.zarr"), open_source(tmp_path / "ad.zarr", array="X")):
        assert isinstance(src, CSRStoreSource) and src.dtype == np.float64
        rows = src.block(0).read()
        assert rows.dtype == np.float64 and same(rows, X[:src.offsets[1]])


def test_damaged_store_block_names_the_chunk(store: tuple[Path, sp.csr_matrix]) -> None:
    path, _ = store
    src = open_source(path, cache=False)
    (path / "indices" / "c" / "0").write_bytes(b"\x00" * 7)
    with pytest.raises(ChunkDecodeError, match=r"array 'indices', chunk c/0"):
        src.block(0).read()


@pytest.mark.parametrize("kind", ["csr", "csc"])
def test_dask_array_of_sparse_blocks(kind: str) -> None:
    X = matrix()
    Xd = da.from_array(X.asformat(kind), chunks=(100, 20), asarray=False)
    src = as_source(Xd)
    assert isinstance(src, SparseDaskSource) and src.sparse and src.dask_route
    assert src.offsets == (0, 100, 200, 300, 400, 500)
    for i in range(src.n_blocks):  # each block computed alone (no to_delayed under
        rows = src.X[100 * i:100 * (i + 1)].compute()  # query planning)
        assert rows.format == "csr" and rows.has_canonical_format
        assert same(rows, X[100 * i:100 * (i + 1)])
    held = hold(src)
    assert held.held is not None and not held.dask_route
    for i, block in enumerate(held.held):
        assert same(block, X[held.offsets[i]:held.offsets[i + 1]])


def test_dask_array_of_sparse_blocks_from_map_blocks() -> None:
    """A dask array built with map_blocks producing scipy.sparse blocks (a vectoriser
    applied block by block), integer-valued: made float64 CSR."""
    dense = np.random.default_rng(0).poisson(0.1, size=(300, 25))
    Xd = da.from_array(dense, chunks=(75, 25)).map_blocks(
        sp.csr_matrix, meta=sp.csr_matrix((0, 0), dtype=dense.dtype))
    src = as_source(Xd)
    assert isinstance(src, SparseDaskSource) and src.dtype == np.float64
    got = src.X.compute()
    assert got.dtype == np.float64 and np.array_equal(got.toarray(), dense)
    assert not isinstance(as_source(sp.csr_matrix(dense)), SparseDaskSource)
    assert isinstance(as_source(sp.csr_matrix(dense)), SparseSource)


def test_sparse_dask_array_is_sized_by_its_csr_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dask array of CSR blocks whose dense size is over the memory budget but whose
    CSR size (values, column indices, row pointers) fits is held; over its CSR size
    too, it streams."""
    from daskmeans.engine import hold as hold_module

    X = matrix(2000, 400)  # 8% stored: the CSR rows take a fraction of the dense ones
    csr_bytes = X.data.nbytes + X.indices.nbytes + 5 * (400 + 1) * X.indptr.itemsize
    dense_bytes = X.shape[0] * X.shape[1] * X.dtype.itemsize
    assert csr_bytes < dense_bytes // 4
    Xd = da.from_array(X, chunks=(400, 400), asarray=False)
    monkeypatch.setattr(hold_module, "memory_budget", lambda: 2 * csr_bytes)
    src = as_source(Xd)
    assert src.nbytes == dense_bytes  # not known before it is computed: the bound
    held = hold(src)
    assert held.held is not None and not held.dask_route
    assert held.nbytes == src.stored_nbytes == csr_bytes  # measured, then held
    for i, block in enumerate(held.held):
        assert same(block, X[held.offsets[i]:held.offsets[i + 1]])
    monkeypatch.setattr(hold_module, "memory_budget", lambda: csr_bytes - 1)
    streamed = hold(as_source(Xd))
    assert streamed.held is None and streamed.dask_route
    assert streamed.nbytes == csr_bytes
    monkeypatch.setattr(hold_module, "memory_budget", lambda: dense_bytes)
    small = as_source(Xd)
    assert hold(small).held is not None and small.stored_nbytes is None  # not measured
