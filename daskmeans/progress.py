"""Progress reporting: a plain callback, or tqdm bars on stderr.

Library code never draws anything itself. A function or estimator that runs a long
loop takes ``verbose`` and/or a ``callback`` (:data:`ProgressCallback`) and reports
through a :class:`Progress` made by :func:`progress`::

    with progress(self.verbose, self.callback) as p:
        for step in range(1, n_steps + 1):
            ...
            p.report("mini-batch", step, n_steps, f"shift {shift:.3g}")
            if converged:
                p.close("converged")   # the bar ends at step of step, saying why
                break

The protocol seen by a callback is ``callback(phase, done, total, detail)``: ``done``
out of ``total`` (``None`` when unknown) steps of ``phase`` are finished, ``detail`` is
a short free text. Every phase ends with a call where ``done == total``: when a loop
stops early, :meth:`Progress.close` (or the start of the next phase) sends one last
call with ``total`` set to ``done`` and a detail saying why and where it stopped.
A consumer can therefore draw a bar per phase and trust the last call it saw.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

__all__ = ["Progress", "ProgressCallback", "TqdmBars", "progress"]

#: ``callback(phase, done, total, detail)``: ``done`` of ``total`` steps of ``phase``
#: are finished (``total`` is ``None`` when unknown); ``detail`` is free text.
ProgressCallback = Callable[[str, int, int | None, str], None]


class TqdmBars:
    """A :data:`ProgressCallback` that draws one tqdm bar per phase.

    A call with a new phase, or with ``done`` going backwards (the same phase run
    again, e.g. the next of several initialisations), closes the current bar and
    opens a new one; a change of ``total`` updates the current bar. Closed bars stay
    on the screen as last drawn (``leave=True``).

    Parameters
    ----------
    file : text stream, optional
        Where to draw; ``sys.stderr`` as it is when a bar opens (so pytest's capture
        and redirections are honoured).
    **tqdm_kwargs
        Passed to :class:`tqdm.tqdm` (e.g. ``mininterval``, ``ascii``).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bars = TqdmBars(file=out, ascii=True)
    >>> for i in range(1, 4):
    ...     bars("fit", i, 3, f"step {i}")
    >>> bars.close()
    >>> "fit" in out.getvalue() and "3/3" in out.getvalue()
    True
    """

    def __init__(self, file: IO[str] | None = None, **tqdm_kwargs: Any) -> None:
        self._file = file
        self._kwargs = tqdm_kwargs
        self._bar: Any = None
        self._phase: str | None = None

    def __call__(self, phase: str, done: int, total: int | None, detail: str = "") -> None:
        bar = self._bar
        if bar is None or phase != self._phase or done < bar.n:
            self.close()
            from tqdm import tqdm

            bar = self._bar = tqdm(
                desc=f"{phase:<11}", total=total, initial=done, leave=True,
                file=self._file if self._file is not None else sys.stderr,
                postfix=detail[:100] or None, dynamic_ncols=True, **self._kwargs)
            self._phase = phase
            return
        if total != bar.total:
            bar.total = total
        if detail:
            bar.set_postfix_str(detail[:100], refresh=False)
        if done > bar.n:
            bar.update(done - bar.n)  # redraws at most every ``mininterval``
        if total is not None and done >= total:
            bar.refresh()

    def __deepcopy__(self, memo: dict[int, Any]) -> TqdmBars:
        # an output sink: copies of an estimator holding it (sklearn's clone) share it
        return self

    def close(self) -> None:
        """Close the current bar, leaving it drawn with its last count."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._phase = None


class Progress:
    """Where a loop reports its progress; made by :func:`progress`.

    Call :meth:`report` after every step. With neither a callback nor ``verbose``
    it does nothing (one attribute test per call): check :attr:`enabled` before
    formatting an expensive ``detail``.

    Attributes
    ----------
    enabled : bool
        Whether reports go anywhere.
    """

    def __init__(self, verbose: int | bool = 0, callback: ProgressCallback | None = None,
                 file: IO[str] | None = None) -> None:
        self._bars: TqdmBars | None = None
        self._sink: ProgressCallback | None
        if callback is not None:
            self._sink = callback
        elif verbose:
            self._bars = TqdmBars(file=file)
            self._sink = self._bars
        else:
            self._sink = None
        self.enabled = self._sink is not None
        self._phase: str | None = None
        self._done = 0
        self._total: int | None = None
        self._detail = ""

    def report(self, phase: str, done: int, total: int | None, detail: str = "") -> None:
        """``done`` of ``total`` steps (``None``: unknown) of ``phase`` are finished.

        A new phase, or ``done`` going backwards, first ends the previous phase as
        :meth:`close` would.
        """
        sink = self._sink
        if sink is None:
            return
        if self._phase is not None and (phase != self._phase or done < self._done):
            self._finish(None)
        self._phase, self._done, self._total, self._detail = phase, done, total, detail
        sink(phase, done, total, detail)

    def _finish(self, detail: str | None) -> None:
        """End the current phase honestly: a last report with ``total == done``."""
        phase, done, total = self._phase, self._done, self._total
        self._phase = None
        if phase is None or self._sink is None:
            return
        if total is not None and done < total:  # stopped early: say so, and where
            why = detail or "stopped early"
            self._sink(phase, done, done, f"{why} ({done} of {total})")
        elif total is None or detail:  # unknown total: now known; or a final word
            self._sink(phase, done, done, detail if detail is not None else self._detail)

    def close(self, detail: str | None = None) -> None:
        """End the current phase; ``detail`` says why if it ended early.

        If fewer than ``total`` steps were done, the phase is reported one last time
        with ``total`` set to ``done`` and the detail ``"<detail> (done of total)"``
        (``detail`` defaults to ``"stopped early"``), so a bar ends full and says where
        and why it stopped instead of staying half-drawn. Closing twice is harmless.
        """
        self._finish(detail)
        if self._bars is not None:
            self._bars.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:  # interrupted: leave the bar at its real count, claim nothing more
            self._phase = None
            if self._bars is not None:
                self._bars.close()


def progress(verbose: int | bool = 0, callback: ProgressCallback | None = None) -> Progress:
    """A :class:`Progress` for a loop: to ``callback``, else tqdm bars if ``verbose``.

    Parameters
    ----------
    verbose : int or bool
        When truthy (and no ``callback``), draw a tqdm bar per phase on stderr.
    callback : :data:`ProgressCallback`, optional
        Receives every report as ``callback(phase, done, total, detail)``; takes
        precedence over ``verbose``.

    Returns
    -------
    Progress
        Use it as a context manager, or call :meth:`Progress.close` at the end.

    Examples
    --------
    >>> calls = []
    >>> with progress(callback=lambda *a: calls.append(a)) as p:
    ...     for step in range(1, 196):
    ...         p.report("fit", step, 195, f"step {step}")
    ...         if step == 24:
    ...             p.close("converged")
    ...             break
    >>> calls[-2:]
    [('fit', 24, 195, 'step 24'), ('fit', 24, 24, 'converged (24 of 195)')]
    >>> quiet = progress()  # neither: every report is a no-op
    >>> quiet.enabled, quiet.report("fit", 1, 10)
    (False, None)
    """
    return Progress(verbose, callback)
