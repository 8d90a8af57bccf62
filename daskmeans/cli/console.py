"""What the ``daskmeans`` command prints, and where: results, status, progress, logs."""

from __future__ import annotations

import logging
import sys
import time

from ..progress import TqdmBars

__all__ = ["STARTED", "Console", "UserError", "setup_logging"]

#: When this command started (the entry point imports this package first): the times it
#: prints are wall-clock times from here, imports included.
STARTED = time.perf_counter()


class UserError(Exception):
    """A mistake on the command line: printed as one line, exit status 2."""


class Console:
    """What the command prints: results always, progress on a TTY unless --quiet.

    :meth:`progress` is the :data:`daskmeans.progress.ProgressCallback` the commands
    hand to the library (``callback=`` of the estimators, ``progress=`` of
    :func:`daskmeans.io.ingest` and :func:`daskmeans.quantize`): one tqdm bar per phase
    on stderr, nothing when --quiet or when stderr is not a terminal.
    """

    #: without a terminal, a long phase prints a line at most this often (seconds)
    HEARTBEAT = 5.0

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty() and not quiet
        self._bars = TqdmBars()
        self._last_line = time.perf_counter()

    def say(self, msg: str = "") -> None:
        """A result: to stdout, always."""
        self.end_progress()
        print(msg, flush=True)
        self._last_line = time.perf_counter()

    def info(self, msg: str) -> None:
        """Status (not results): to stderr, silent with --quiet."""
        if not self.quiet:
            self.end_progress()
            print(msg, file=sys.stderr, flush=True)
            self._last_line = time.perf_counter()

    def progress(self, phase: str, done: int, total: int | None, detail: str = "") -> None:
        """Draw ``done`` of ``total`` steps of ``phase`` (a ``ProgressCallback``); with
        stderr not a terminal, a plain line every :attr:`HEARTBEAT` seconds instead."""
        if self.tty:
            self._bars(phase, done, total, detail)
        elif not self.quiet and time.perf_counter() - self._last_line >= self.HEARTBEAT:
            of = f"/{total}" if total is not None else ""
            self.info(f"  {phase}: {done}{of}" + (f" ({detail})" if detail else ""))

    def end_progress(self) -> None:
        """Close the bar being drawn (it stays on screen as last drawn)."""
        self._bars.close()


class _ConsoleLogHandler(logging.StreamHandler):
    """Log lines to stderr, each after closing any progress bar being drawn."""

    def __init__(self, console: Console) -> None:
        super().__init__(sys.stderr)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.end_progress()
        super().emit(record)


def setup_logging(level: str, console: Console) -> None:
    """The package's log lines to stderr at ``level`` (closing any progress bar first);
    distributed's only from warnings up, unless debugging."""
    pkg = logging.getLogger("daskmeans")
    pkg.setLevel(logging.DEBUG)
    pkg.handlers.clear()
    pkg.propagate = False
    text = _ConsoleLogHandler(console)
    text.setLevel(getattr(logging, level.upper()))
    text.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    pkg.addHandler(text)
    logging.getLogger("distributed").setLevel(
        logging.WARNING if level.lower() != "debug" else logging.INFO)
