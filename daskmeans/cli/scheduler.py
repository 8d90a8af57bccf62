"""Where a command's work runs: a running scheduler, a LocalCluster, or dask's threads."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .console import Console, UserError

__all__ = ["dask_cluster", "data_nbytes"]


def data_nbytes(X: Any) -> int:
    """Bytes of the data as stored (a source's raw rows, a dask array's chunks)."""
    return int(getattr(X, "nbytes", 0) or 0)


def _default_client() -> Any:
    """distributed's default client, or None."""
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


@contextlib.contextmanager
def dask_cluster(args: argparse.Namespace, console: Console,
                 nbytes: int | None = None) -> Iterator[Any]:
    """Where the work runs: a ``distributed.Client`` to ``--scheduler``; an embedded
    LocalCluster with ``--workers``; otherwise dask's threaded scheduler in this process
    when the data (``nbytes`` as stored) fit in memory (a quarter of what is available:
    no cluster to start, no round trips), else a LocalCluster. Says which in one line."""
    from distributed import Client, LocalCluster

    if not args.scheduler and not args.workers and nbytes is not None:
        import dask

        from ..engine import schedule

        if nbytes <= schedule.memory_budget():
            console.info(f"scheduler: dask's threads, in this process ({nbytes / 1e6:.0f} MB "
                         "of data; --workers N or --scheduler ADDRESS for a cluster)")
            with dask.config.set(scheduler="threads"):
                yield None
            return
    if args.scheduler:
        security = None
        if args.tls_ca_file or args.tls_cert or args.tls_key:
            from distributed.security import Security

            for opt in ("tls_ca_file", "tls_cert", "tls_key"):
                f = getattr(args, opt)
                if f and not Path(f).is_file():
                    raise UserError(f"--{opt.replace('_', '-')}: no such file: {f}")
            security = Security(tls_ca_file=args.tls_ca_file, tls_client_cert=args.tls_cert,
                                tls_client_key=args.tls_key, require_encryption=True)
        import dask

        before = {k: dask.config.get(k, None) for k in ("scheduler", "shuffle")}
        previous = _default_client()
        try:
            client = Client(args.scheduler, security=security, timeout=args.connect_timeout)
        except (OSError, TypeError, ValueError) as e:  # TimeoutError is an OSError
            # a Client that failed to connect can stay registered as the default one
            # (and dask pointed at it): every later computation of this process would
            # wait for it. Undo that: cli.main may run inside a notebook or a test.
            stale = _default_client()
            if stale is not None and stale is not previous:
                stale.close()
            dask.config.set(before)
            hint = ""
            if args.scheduler.startswith("tls://") and security is None:
                hint = " (a tls:// scheduler needs --tls-ca-file, --tls-cert and --tls-key)"
            raise UserError(f"cannot reach the scheduler at {args.scheduler}: {e}{hint}") from e
        console.info(f"cluster: {args.scheduler} "
                    f"({len(client.scheduler_info().get('workers', {}))} workers)")
        try:
            yield client
        finally:
            client.close()
        return
    n_cores = os.cpu_count() or 1
    threads = args.threads_per_worker or 1
    workers = args.workers or max(1, n_cores // threads)
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=threads, memory_limit=args.memory_limit,
        host="127.0.0.1", dashboard_address="127.0.0.1:0", processes=True,
    )
    client = Client(cluster)
    console.info(f"cluster: local, {workers} workers x {threads} threads, "
                f"memory limit {args.memory_limit}/worker; dashboard {client.dashboard_link}")
    try:
        yield client
    finally:
        client.close()
        cluster.close()
