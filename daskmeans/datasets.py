"""Fetch MNIST and Fashion-MNIST: mirrors, checksums, a cache, or a local copy; and a
text corpus every Python installation has (:func:`load_docstrings`).

``fetch_mnist()`` returns the path of a Zarr store written by
:func:`daskmeans.io.ingest`; open it with :func:`daskmeans.open_dataset`.

Where the files come from, in order:

1. ``source=DIR``: a directory holding the IDX files (any of the splits);
2. a known local copy (Debian's ``dataset-fashion-mnist`` package installs
   ``/usr/share/datasets/fashion-mnist``);
3. the cache ``DATA_HOME/NAME/raw`` (``DATA_HOME`` is ``data_home=``, else
   ``$DASKMEANS_DATA_HOME``, else ``~/.cache/daskmeans``), filled by downloading from
   each mirror in turn. Every download is checked against the published md5 before it
   is kept; a mismatch or an unreachable mirror falls through to the next mirror.

Local copies are validated structurally (IDX header, sizes, image/label counts) and
their checksums recorded in the store's attrs; they are not required to match the
published md5 (Debian recompresses the files).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zarr

from . import io

__all__ = [
    "DOCSTRING_MODULES",
    "FASHION_MNIST",
    "MNIST",
    "ChecksumError",
    "DatasetSpec",
    "DownloadError",
    "data_home",
    "fetch",
    "fetch_fashion_mnist",
    "fetch_mnist",
    "load_docstrings",
]

log = logging.getLogger(__name__)


class DownloadError(OSError):
    """No mirror delivered a file with the right checksum."""


class ChecksumError(DownloadError):
    """A downloaded file's md5 differs from the published one."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's four files live and what their md5 must be."""

    name: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # file name (.gz) -> md5
    local_dirs: tuple[str, ...] = field(default=())


MNIST = DatasetSpec(
    name="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    local_dirs=("/usr/share/datasets/fashion-mnist",),
)


def data_home(path: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory (created if needed)."""
    home = Path(
        path
        or os.environ.get("DASKMEANS_DATA_HOME")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "daskmeans"
    )
    home.mkdir(parents=True, exist_ok=True)
    return home


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(
    name: str, mirrors: Sequence[str], md5: str, dest_dir: Path, *, timeout: float = 30.0
) -> Path:
    """Download ``name`` from the first mirror that serves it with the right md5.

    The file is streamed to a temporary file in ``dest_dir``, hashed on the way, and
    renamed into place only when the md5 matches. Raises :class:`ChecksumError` when
    every mirror that answered served wrong bytes, :class:`DownloadError` otherwise.
    """
    # Not pooch: it has no mirror list, prints "Downloading data from" to stderr past
    # logging and --quiet, and reports a failing file:// mirror as a checksum error.
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / name
    failures: list[str] = []
    bad_checksum = False
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        fd, tmpname = tempfile.mkstemp(prefix=f".{name}.", dir=dest_dir)
        tmp = Path(tmpname)
        try:
            h = hashlib.md5()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                for block in iter(functools.partial(r.read, 1 << 20), b""):
                    h.update(block)
                    out.write(block)
            got = h.hexdigest()
            if got != md5:
                bad_checksum = True
                failures.append(f"{url}: md5 {got}, expected {md5}")
                log.warning("%s: checksum mismatch (md5 %s, expected %s); trying next mirror",
                            url, got, md5)
                continue
            os.chmod(tmp, io.new_file_mode())  # mkstemp's 0o600 -> as any other file
            os.replace(tmp, dest)
            log.info("downloaded %s from %s", name, mirror)
            return dest
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            failures.append(f"{url}: {reason}")
            log.warning("%s: %s; trying next mirror", url, reason)
        finally:
            tmp.unlink(missing_ok=True)
    cls = ChecksumError if bad_checksum else DownloadError
    raise cls(f"could not download {name}: " + "; ".join(failures or ["no mirrors given"]))


def _same_origin(store: Path, src: Path) -> bool:
    """The cached store was ingested from these very files (names and sizes)."""
    try:
        attrs = zarr.open_group(store, mode="r").attrs
    except Exception:
        return False
    if attrs.get("origin") != str(src.resolve()):
        return False
    found = io.find_idx_files(src)
    complete = {s for (s, _) in found if (s, "images") in found and (s, "labels") in found}
    found = {key: p for key, p in found.items() if key[0] in complete}
    recorded: dict[str, Any] = dict(attrs.get("sources", {}))  # type: ignore[arg-type]
    return {f"{s}/{k}" for (s, k) in found} == set(recorded) and all(
        recorded[f"{s}/{k}"].get("size") == p.stat().st_size for (s, k), p in found.items()
    )


def _store_has(store: Path, splits: Sequence[str]) -> bool:
    try:
        attrs = zarr.open_group(store, mode="r").attrs
    except Exception:
        return False
    return set(splits) <= set(attrs.get("splits", []))  # type: ignore[arg-type]


def fetch(
    spec: DatasetSpec,
    *,
    source: str | os.PathLike[str] | None = None,
    data_home: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] | None = None,
    splits: Sequence[str] = ("train", "test"),
    chunk_rows: int = io.DEFAULT_CHUNK_ROWS,
    force: bool = False,
    timeout: float = 30.0,
) -> Path:
    """Get a dataset as a Zarr store (see the module docstring for the order).

    Parameters
    ----------
    spec : DatasetSpec (``MNIST`` or ``FASHION_MNIST``)
    source : directory of IDX files to ingest instead of downloading; the splits it
        holds are ingested and the others reported missing.
    data_home : cache directory
    mirrors : override the spec's mirror list (base URLs)
    splits : splits to download when downloading
    force : re-ingest even when the cached store has the splits

    Returns
    -------
    Path of the Zarr store ``DATA_HOME/NAME.zarr``.

    Examples
    --------
    A directory of IDX files (here a tiny one written on the spot; usually the four
    files downloaded once) is ingested into the cache, once:

    >>> import struct, tempfile
    >>> import numpy as np
    >>> from daskmeans import open_dataset
    >>> from daskmeans.datasets import fetch, MNIST
    >>> tmp = tempfile.TemporaryDirectory()
    >>> src = Path(tmp.name) / "src"
    >>> src.mkdir()
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    >>> labels = rng.integers(0, 10, 20).astype(np.uint8)
    >>> # an IDX file: two zero bytes, the type (8: uint8), the rank, the sizes, the data
    >>> _ = (src / "t10k-images-idx3-ubyte").write_bytes(
    ...     struct.pack(">HBB3I", 0, 8, 3, 20, 28, 28) + images.tobytes())
    >>> _ = (src / "t10k-labels-idx1-ubyte").write_bytes(
    ...     struct.pack(">HBBI", 0, 8, 1, 20) + labels.tobytes())
    >>> store = fetch(MNIST, source=src, data_home=Path(tmp.name) / "cache")
    >>> store.name, open_dataset(store, "test")[0].shape
    ('mnist.zarr', (20, 784))
    >>> tmp.cleanup()
    """
    bad = [s for s in splits if s not in io.SPLITS]
    if bad:
        raise ValueError(f"splits must be among {io.SPLITS}, got {list(splits)!r}")
    home = _data_home(data_home)
    store = home / f"{spec.name}.zarr"
    if source is not None:
        src = Path(source)
        if not src.is_dir():
            raise FileNotFoundError(f"{src}: source directory does not exist")
        if not force and _same_origin(store, src):
            log.info("using cached %s (ingested from %s)", store, src)
            return store
        # the cache is daskmeans' own: a store there is replaced when it no longer fits
        return io.ingest(src, store, name=spec.name, chunk_rows=chunk_rows, overwrite=True,
                         extra_attrs={"origin": str(src.resolve())})
    if not force and _store_has(store, splits):
        log.info("using cached %s", store)
        return store
    for local in spec.local_dirs:
        if Path(local).is_dir() and all(
            (s, kind) in io.find_idx_files(local) for s in splits for kind in ("images", "labels")
        ):
            log.info("using local copy %s", local)
            return io.ingest(local, store, name=spec.name, chunk_rows=chunk_rows,
                             overwrite=True, extra_attrs={"origin": local})
    raw = home / spec.name / "raw"
    files: dict[tuple[str, str], io.PathLike] = {}
    for split in splits:
        for kind in ("images", "labels"):
            fname = io.MNIST_FILES[(split, kind)] + ".gz"
            cached = raw / fname
            if cached.is_file() and _md5(cached) == spec.md5[fname]:
                log.info("cached %s ok", cached)
            else:
                download(fname, mirrors if mirrors is not None else spec.mirrors,
                         spec.md5[fname], raw, timeout=timeout)
            files[(split, kind)] = cached
    return io.ingest(files, store, name=spec.name, chunk_rows=chunk_rows, overwrite=True,
                     extra_attrs={"origin": "download"})


def fetch_mnist(**kwargs: object) -> Path:
    """MNIST (LeCun, Cortes, Burges; CC BY-SA 3.0) as a Zarr store. See :func:`fetch`."""
    return fetch(MNIST, **kwargs)  # type: ignore[arg-type]


def fetch_fashion_mnist(**kwargs: object) -> Path:
    """Fashion-MNIST (Zalando; MIT) as a Zarr store. See :func:`fetch`."""
    return fetch(FASHION_MNIST, **kwargs)  # type: ignore[arg-type]


def clear_cache(home: str | os.PathLike[str] | None = None) -> None:
    """Remove the whole cache directory."""
    shutil.rmtree(_data_home(home), ignore_errors=True)


_data_home = data_home


# --------------------------------------------------------------------------- text corpus

#: the standard library modules :func:`load_docstrings` reads by default: pure-Python
#: modules present in every CPython build, on distinct topics (files, text, numbers,
#: networking, concurrency, dates, testing, archives, ...)
DOCSTRING_MODULES = (
    "argparse", "asyncio", "calendar", "collections", "configparser", "csv", "datetime",
    "decimal", "difflib", "email.message", "fractions", "ftplib", "gzip", "http.client",
    "http.cookiejar", "imaplib", "ipaddress", "json", "logging", "mailbox", "os",
    "pathlib", "pickle", "random", "shutil", "smtplib", "statistics", "string",
    "subprocess", "tarfile", "tempfile", "textwrap", "threading", "inspect", "unittest",
    "urllib.parse", "urllib.request", "uuid", "xml.dom.minidom", "zipfile",
)


def load_docstrings(modules: Sequence[str] = DOCSTRING_MODULES, *,
                    min_chars: int = 200) -> Any:
    """A text corpus available offline on any machine: the docstrings of the Python
    standard library's public functions, classes and methods, one document each.

    The documents are the docstrings (``__doc__``, indentation cleaned, none inherited) of each
    module's public functions and classes defined in that module, and of those
    classes' public methods, of at least ``min_chars`` characters, in a fixed order:
    modules as given, then names sorted. The same Python version gives the same
    documents in the same order on any machine: they depend only on the standard
    library's source (docstrings change between Python releases, and a module missing
    from a stripped-down build is skipped), not on the installed packages, the locale
    or the file system. Each document's label is the module it comes from.

    Returns
    -------
    sklearn.utils.Bunch
        ``data``: list of str, the documents; ``target``: (n,) int array, the index of
        each document's module in ``target_names``; ``target_names``: the modules read;
        ``names``: each document's qualified name (``"json.dumps"``,
        ``"pathlib.Path.glob"``).

    Examples
    --------
    >>> corpus = load_docstrings(["json", "csv"])
    >>> corpus.target_names
    ['json', 'csv']
    >>> corpus.names[0], len(corpus.data) == len(corpus.target)
    ('json.dump', True)
    """
    import importlib
    import inspect

    import numpy as np
    from sklearn.utils import Bunch

    data: list[str] = []
    names: list[str] = []
    target: list[int] = []
    found: list[str] = []
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found.append(module_name)
        for qualname, doc in _module_docstrings(module, inspect):
            if len(doc) >= min_chars:
                data.append(doc)
                names.append(f"{module_name}.{qualname}")
                target.append(len(found) - 1)
    return Bunch(data=data, target=np.asarray(target, dtype=np.int64), target_names=found,
                 names=names)


def _module_docstrings(module: Any, inspect: Any) -> list[tuple[str, str]]:
    """(qualified name, docstring) of a module's public functions and classes defined
    in it, and of its classes' public methods, names sorted."""
    out = []
    for name in sorted(vars(module)):
        obj = vars(module)[name]
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        doc = obj.__doc__ and inspect.cleandoc(obj.__doc__)
        if doc:
            out.append((name, doc))
        if inspect.isclass(obj):
            for attr in sorted(vars(obj)):
                member = vars(obj)[attr]
                if attr.startswith("_") or not inspect.isfunction(member):
                    continue
                mdoc = member.__doc__ and inspect.cleandoc(member.__doc__)
                if mdoc:
                    out.append((f"{name}.{attr}", mdoc))
    return out
