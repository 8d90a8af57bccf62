"""Checkpoints of a fit and the ``.npz`` files they and saved models are written to
(arrays + a JSON header, no pickle, written atomically)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from .. import io
from ..algorithms import IterationRecord, MiniBatchState, ResumeState, RunResult
from ..engine.source import Source
from ..io.errors import CheckpointFormatError, ModelFormatError

log = logging.getLogger(__name__)


def write_npz(path: Path, header: dict[str, Any], *, overwrite: bool = False,
              **arrays: np.ndarray) -> None:
    """Arrays plus a JSON header in one ``.npz``, written atomically beside ``path``
    then renamed over it (:func:`daskmeans.io.atomic_file`): an existing file is
    refused unless ``overwrite``; a failed write (a full disk) keeps the old one."""
    import json

    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with io.atomic_file(path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # (stub: a key could be allow_pickle)


def read_npz(path: Path, error: type[ModelFormatError], what: str
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, arrays)`` of a file written by :func:`write_npz`; a damaged one
    (truncated, corrupt, empty, not an ``.npz``) raises ``error`` naming ``path``."""
    import json
    import zipfile
    import zlib

    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            arrays = {key: np.array(data[key]) for key in data.files if key != "header"}
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
            UnicodeDecodeError) as e:
        raise error(f"{path}: not a daskmeans {what} file: damaged, truncated or of another "
                    f"kind ({type(e).__name__}: {e})") from e
    if not isinstance(header, dict):
        raise error(f"{path}: not a daskmeans {what} file (its header is not a mapping)")
    return header, arrays


@dataclass
class SavedFit:
    """Where a checkpointed KMeans fit left off: the run to go on with, where it
    resumes (None: from its initialisation) and the best finished run so far."""

    run: int
    resume: ResumeState | None
    best: RunResult | None


class Checkpoint:
    """Atomic ``.npz`` checkpoints of a Lloyd fit (arrays + a JSON header, no pickle)."""

    def __init__(self, path: str | Path, every: int, est: BaseEstimator, X: Source,
                 seeds: list[int]) -> None:
        self.path: Path = Path(path)
        self.every: int = int(every)
        params = {k: v for k, v in est.get_params().items()
                  if v is None or isinstance(v, str | int | float | bool)}
        self.fingerprint: dict[str, Any] = {
            "params": params, "shape": list(X.shape), "dtype": str(X.dtype), "seeds": seeds}

    def save(self, run: int, iteration: int, C: np.ndarray | None, tol_abs: float,
             history: list[IterationRecord], best: RunResult | None) -> None:
        if C is not None and iteration % self.every:
            return
        header = {
            "run": run, "iteration": iteration, "tol_abs": tol_abs,
            "history": [asdict(h) for h in history],
            "best": None if best is None else {
                "inertia": best.inertia, "n_iter": best.n_iter, "strict": best.strict,
                "history": [asdict(h) for h in best.history]},
        }
        arrays = {}
        if C is not None:
            arrays["centers"] = C
        if best is not None:
            arrays["best_centers"] = best.centers
        self.write_raw(header, **arrays)

    def write_raw(self, header: dict[str, Any], **arrays: np.ndarray) -> None:
        """Atomically write ``header`` (JSON, with the fingerprint) and arrays: a
        checkpoint replaces the last one as the fit proceeds (passing ``checkpoint=``
        asks for that), never leaving a half-written file."""
        write_npz(self.path, {"format": "daskmeans-checkpoint/1",
                               "fingerprint": self.fingerprint, **header}, overwrite=True,
                  **arrays)

    def load_raw(self) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """(header, arrays) of a checkpoint from the same problem, or None; a damaged
        file raises :class:`~daskmeans.io.errors.CheckpointFormatError` naming it."""
        if not self.path.exists():
            log.info("no checkpoint at %s: starting afresh", self.path)
            return None
        header, arrays = read_npz(self.path, CheckpointFormatError, "checkpoint")
        if header.get("format") != "daskmeans-checkpoint/1":
            raise CheckpointFormatError(f"{self.path}: not a daskmeans checkpoint")
        if header.get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"checkpoint {self.path} comes from other parameters or data "
                f"({header.get('fingerprint')} != {self.fingerprint})")
        return header, arrays

    def load(self) -> SavedFit | None:
        """Where a KMeans fit left off, or None without a checkpoint."""
        raw = self.load_raw()
        if raw is None:
            return None
        header, arrays = raw
        centers, best_c = arrays.get("centers"), arrays.get("best_centers")
        best = None
        if header["best"] is not None:
            b = header["best"]
            assert best_c is not None
            best = RunResult(b["inertia"], best_c, b["n_iter"],
                             [IterationRecord(**h) for h in b["history"]], b["strict"])
        resume = None
        if centers is not None:  # else the run saved last had ended: the next starts afresh
            resume = ResumeState(header["iteration"], centers, header["tol_abs"],
                                 [IterationRecord(**h) for h in header["history"]])
        return SavedFit(header["run"], resume, best)


class SaveRun:
    """``on_iteration`` of a checkpointed run: saves it with the best run so far."""

    def __init__(self, ckpt: Checkpoint, run: int, best: RunResult | None) -> None:
        self.ckpt, self.run, self.best = ckpt, run, best

    def __call__(self, iteration: int, C: np.ndarray, tol_abs: float,
                 history: list[IterationRecord]) -> None:
        self.ckpt.save(self.run, iteration, C, tol_abs, history, self.best)


class SaveMiniBatch:
    """``on_step`` of a checkpointed mini-batch fit: every ``ckpt.every`` steps, its
    state with the random generator's, so that a resumed fit equals an uninterrupted
    one."""

    def __init__(self, ckpt: Checkpoint, tol_abs: float, rng: np.random.Generator) -> None:
        self.ckpt, self.tol_abs, self.rng = ckpt, tol_abs, rng

    def __call__(self, state: MiniBatchState, order: list[int]) -> None:
        if state.step % self.ckpt.every:
            return
        self.ckpt.write_raw({"state": {
            "step": state.step, "tol_abs": self.tol_abs, "order": order,
            "n_since_last_reassign": state.n_since_last_reassign,
            "ewa": state.ewa_inertia, "ewa_min": state.ewa_inertia_min,
            "no_improvement": state.no_improvement, "history": state.history,
            "rng": self.rng.bit_generator.state}},
            centers=state.centers, counts=state.counts)

    @staticmethod
    def restore(header: dict[str, Any], arrays: dict[str, np.ndarray],
                rng: np.random.Generator) -> tuple[MiniBatchState, float, list[int]]:
        """(state, tol_abs, the rest of the epoch's block order) of a saved mini-batch
        fit; ``rng`` gets its saved state."""
        st = header["state"]
        state = MiniBatchState(
            arrays["centers"], arrays["counts"], st["step"], st["n_since_last_reassign"],
            st["ewa"], st["ewa_min"], st["no_improvement"], st["history"])
        rng.bit_generator.state = st["rng"]
        return state, st["tol_abs"], st["order"]
