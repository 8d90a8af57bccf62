"""The ``daskmeans`` command: parse, pick the cluster, call the library, print.

One module per command group (:mod:`.ingest`; :mod:`.models` for fit, predict,
evaluate and export; :mod:`.sweep`; :mod:`.report`; :mod:`.images` for quantize and segment;
:mod:`.demo`), the parser in :mod:`.parser` and what they share in :mod:`.console`
(output), :mod:`.scheduler` (where the work runs) and :mod:`.options`. Importing the package
(and ``daskmeans --help``) imports neither dask nor scikit-learn: each command imports
the library when it runs. ``daskmeans --help`` ends with examples
(:data:`.parser.EXAMPLES`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence

from .console import Console, UserError, setup_logging
from .demo import cmd_demo
from .images import cmd_quantize, cmd_segment
from .ingest import cmd_ingest
from .models import cmd_evaluate, cmd_export, cmd_fit, cmd_predict
from .options import parse_storage_options
from .parser import build_parser
from .report import cmd_report
from .sweep import cmd_sweep

__all__ = ["COMMANDS", "Console", "UserError", "build_parser", "main", "parse_storage_options"]

#: each command's function: ``(parsed arguments, console) -> exit status``
COMMANDS: dict[str, Callable[..., int]] = {
    "ingest": cmd_ingest, "fit": cmd_fit, "predict": cmd_predict, "evaluate": cmd_evaluate,
    "sweep": cmd_sweep, "quantize": cmd_quantize, "segment": cmd_segment,
    "report": cmd_report, "demo": cmd_demo, "export": cmd_export,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``daskmeans`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    console = Console(args.quiet)
    pkg, dist = logging.getLogger("daskmeans"), logging.getLogger("distributed")
    saved = (pkg.level, list(pkg.handlers), pkg.propagate, dist.level)
    setup_logging(args.log_level, console)
    debug = args.log_level == "debug"
    try:
        return COMMANDS[args.command](args, console)
    except KeyboardInterrupt:
        console.end_progress()
        print("daskmeans: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `daskmeans evaluate ... | head`: the reader left, stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own advice: no second error at exit
        return 141
    except (UserError, OSError, ValueError, TimeoutError) as e:
        console.end_progress()
        if debug:
            raise
        print(f"daskmeans: error: {e}", file=sys.stderr)
        return 2
    finally:  # called in-process (tests, notebooks): leave logging as it was
        pkg.setLevel(saved[0])
        pkg.handlers[:] = saved[1]
        pkg.propagate = saved[2]
        dist.setLevel(saved[3])
