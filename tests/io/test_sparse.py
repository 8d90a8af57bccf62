"""The CSR layout in Zarr (daskmeans.io.sparse): written chunk by chunk, read a block of
rows at a time, atomic, refusing what exists, and naming the array and chunk of a
damaged store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import zarr

from daskmeans.io import ChunkDecodeError, OutputExistsError, StoreError
from daskmeans.io.sparse import CSR_FORMAT, is_csr_group, open_csr, write_csr


def matrix(n: int = 200, d: int = 30, density: float = 0.1, dtype: str = "float32",
           seed: int = 0) -> sp.csr_matrix:
    X = sp.random(n, d, density=density, format="csr", dtype=dtype, random_state=seed)
    X.data += 0.5  # no explicit zeros
    X = X.tolil()
    X[7] = 0  # an empty row
    return X.tocsr()


def same(a: sp.spmatrix, b: sp.spmatrix) -> bool:
    return a.shape == b.shape and (a != b).nnz == 0


def test_layout_attributes_and_chunks(tmp_path: Path) -> None:
    X = matrix()
    write_csr(X, tmp_path / "x.zarr", rows_per_chunk=32, nnz_per_chunk=100)
    g = zarr.open_group(tmp_path / "x.zarr", mode="r")
    assert g.attrs["encoding-type"] == "csr_matrix"
    assert g.attrs["encoding-version"] == "0.1.0"
    assert g.attrs["shape"] == [200, 30]
    assert g.attrs["daskmeans"] == {"format": CSR_FORMAT, "nnz": X.nnz, "rows_per_chunk": 32}
    assert g["indptr"].shape == (201,) and g["indptr"].chunks == (32,)
    assert g["indptr"].dtype == np.int64 and g["indices"].dtype == np.int32
    assert g["data"].dtype == np.float32 and g["data"].chunks == (100,)
    assert g["chunk_indptr"][:].tolist() == [*X.indptr[::32].tolist(), X.nnz]
    np.testing.assert_array_equal(g["indptr"][:], X.indptr)
    np.testing.assert_array_equal(g["indices"][:], X.indices)
    assert is_csr_group(g) and not is_csr_group(g["data"])


@pytest.mark.parametrize("rows", [7, 32, 64, 200, 500])
def test_every_row_block_equals_the_matrix(tmp_path: Path, rows: int) -> None:
    X = matrix()
    m = open_csr(write_csr(X, tmp_path / "x.zarr", rows_per_chunk=rows, nnz_per_chunk=37))
    assert m.shape == X.shape and m.nnz == X.nnz and m.dtype == np.float32
    R = m.rows_per_chunk
    for start in range(0, 200, R):
        for stop in (start + R, start + 3 * R, 200):
            block = m.read_rows(start, min(stop, 200))
            assert isinstance(block, sp.csr_matrix) and block.has_canonical_format
            assert same(block, X[start:min(stop, 200)])
    assert same(m.to_scipy(), X)
    with pytest.raises(ValueError, match="whole row chunks"):
        m.read_rows(1, 2) if R > 1 else m.read_rows(0, 201)


def test_row_blocks_iterable_and_canonical_form(tmp_path: Path) -> None:
    """Blocks of any size in order (a corpus vectorised a batch at a time); duplicates
    summed and indices sorted; integer values stored as float64."""
    X = matrix(dtype="float64")
    blocks = [X[0:13], X[13:14], X[14:150], X[150:200]]
    m = open_csr(write_csr(iter(blocks), tmp_path / "b.zarr", rows_per_chunk=16,
                           nnz_per_chunk=64))
    assert same(m.to_scipy(), X) and m.dtype == np.float64
    dup = sp.coo_matrix(([1, 2, 3], ([0, 0, 1], [3, 3, 0])), shape=(2, 4), dtype=np.int64)
    got = open_csr(write_csr(dup, tmp_path / "d.zarr")).to_scipy()
    assert got.dtype == np.float64 and got.toarray().tolist() == [[0, 0, 0, 3], [3, 0, 0, 0]]
    with pytest.raises(ValueError, match="columns"):
        write_csr([X[:5], X[5:10, :20]], tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()


def test_written_whole_chunks_and_reads_only_what_a_block_needs(tmp_path: Path) -> None:
    """Chunks of indices/data outside a block's nonzeros are never read: with them
    deleted, the block still reads; the other blocks then fail naming the chunk."""
    X = matrix(n=400)
    store = tmp_path / "x.zarr"
    m = open_csr(write_csr(X, store, rows_per_chunk=50, nnz_per_chunk=60))
    n_chunks = -(-X.nnz // 60)
    assert len(list((store / "data" / "c").iterdir())) == n_chunks
    p0, p1 = m.chunk_indptr[2], m.chunk_indptr[4]
    needed = set(range(p0 // 60, (p1 - 1) // 60 + 1))
    for c in set(range(n_chunks)) - needed:
        (store / "data" / "c" / str(c)).unlink()
    assert same(m.read_rows(100, 200), X[100:200])
    with pytest.raises(ChunkDecodeError, match=r"array 'data', chunk c/0.*NaN"):
        m.read_rows(0, 50)


def test_refuses_an_existing_target_unless_overwrite(tmp_path: Path) -> None:
    X = matrix()
    store = write_csr(X, tmp_path / "x.zarr")
    with pytest.raises(OutputExistsError, match="x.zarr"):
        write_csr(X[:10], store)
    assert open_csr(store).shape == (200, 30)
    write_csr(X[:10], store, overwrite=True)
    assert open_csr(store).shape == (10, 30)
    (tmp_path / "notes").mkdir()
    with pytest.raises(OutputExistsError, match="not a Zarr store"):
        write_csr(X, tmp_path / "notes", overwrite=True)


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    X = matrix()

    def blocks():
        yield X[:100]
        raise RuntimeError("the corpus went away")

    store = write_csr(X, tmp_path / "x.zarr")
    with pytest.raises(RuntimeError, match="went away"):
        write_csr(blocks(), store, overwrite=True, rows_per_chunk=16)
    assert same(open_csr(store).to_scipy(), X)  # the old store, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zarr"]


def test_damaged_chunks_name_the_array_and_chunk(tmp_path: Path) -> None:
    X = matrix()
    store = tmp_path / "x.zarr"
    m = open_csr(write_csr(X, store, rows_per_chunk=50, nnz_per_chunk=100))
    chunk = store / "data" / "c" / "1"
    chunk.write_bytes(chunk.read_bytes()[:10])  # truncated
    with pytest.raises(ChunkDecodeError, match=rf"{store}.*array 'data', chunk c/1"):
        m.to_scipy()
    write_csr(X, store, rows_per_chunk=50, nnz_per_chunk=100, overwrite=True)
    bad = zarr.open_array(store / "indices", mode="r+")
    bad[150] = 30  # out of range
    with pytest.raises(ChunkDecodeError, match=r"array 'indices', chunk c/1: column index 30"):
        open_csr(store).to_scipy()
    write_csr(X, store, rows_per_chunk=50, nnz_per_chunk=100, overwrite=True)
    ptr = zarr.open_array(store / "indptr", mode="r+")
    ptr[60] = ptr[59] - 1  # decreasing
    with pytest.raises(ChunkDecodeError, match=r"array 'indptr', chunk c/1"):
        open_csr(store).read_rows(50, 100)
    assert same(open_csr(store).read_rows(0, 50), X[:50])  # other blocks still read


def test_damaged_metadata_and_other_stores(tmp_path: Path) -> None:
    X = matrix()
    store = write_csr(X, tmp_path / "x.zarr")
    (store / "indices" / "zarr.json").write_text("{ not json")
    with pytest.raises(StoreError, match=r"x.zarr.*'indices'"):
        open_csr(store)
    write_csr(X, store, overwrite=True)
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["shape"] = [201, 30]
    (store / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="do not describe a CSR matrix of shape"):
        open_csr(store)
    g = zarr.open_group(tmp_path / "plain.zarr", mode="w")
    g.create_array("X", shape=(3, 2), dtype="f4")
    with pytest.raises(StoreError, match="not a CSR matrix store"):
        open_csr(tmp_path / "plain.zarr")


def test_reads_a_group_without_chunk_indptr(tmp_path: Path) -> None:
    """A CSR group in anndata's encoding (no chunk_indptr) is read from indptr."""
    X = matrix()
    g = zarr.open_group(tmp_path / "a.zarr", mode="w")
    g.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0",
                    "shape": list(X.shape)})
    for name, chunks in (("indptr", 40), ("indices", 50), ("data", 50)):
        values = getattr(X, name)
        g.create_array(name, shape=values.shape, dtype=values.dtype, chunks=(chunks,))[:] = values
    m = open_csr(tmp_path / "a.zarr")
    assert m.rows_per_chunk == 40 and m.n_chunks == 5
    assert same(m.read_rows(40, 120), X[40:120]) and same(m.to_scipy(), X)
