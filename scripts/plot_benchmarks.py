#!/usr/bin/env python
"""Draw the benchmark scripts' JSON results as figures (PNG).

Usage::

    python scripts/plot_benchmarks.py --out figures/            # benchmarks/results/*.json
    python scripts/plot_benchmarks.py results/a.json results/b.json --out figures/

For the newest result of each benchmark and set of cases (by the date its machine
recorded) it draws, where the result holds what the figure needs:

- ``<results file>-ratio.png``: every contender's time relative to the result's reference
  contender (scikit-learn, where the script compares with the peers), per case (K...):
  the median of the per-round ratios, each ratio taken between measurements of the same
  interleaved round;
- ``<results file>-k.png``: the median time of every contender against K, when the result
  measured two K or more;
- ``<results file>-workers.png``: the median time against the number of workers, when the
  result measured the same contender on two worker counts or more.

A figure kind that no result can give is skipped, and the script says so. The docs'
performance page (``docs/_ext/benchmarks.py``) calls :func:`draw_all` at build time.
The figures are matplotlib ``Figure`` objects on their own Agg canvas: pyplot and the
process-wide backend are left alone.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

#: record fields that tell cases apart (a bar group, a line); the rest are measurements
CASE_FIELDS = ("case", "k", "rows", "command", "where", "strategy")
KINDS = ("ratio", "k", "workers")


@dataclass
class Drawn:
    """One figure written: which kind, of which benchmark, from which results file."""

    kind: str
    benchmark: str
    path: Path
    source: Path
    measure: str
    machine: dict[str, Any]


@dataclass
class Report:
    """What :func:`draw_all` drew, and why each kind it did not draw is missing."""

    drawn: list[Drawn] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading


def load(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The results files, each with its path as ``"_path"``."""
    out = []
    for p in sorted(paths):
        result = json.loads(Path(p).read_text())
        result["_path"] = Path(p)
        out.append(result)
    return out


def records(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The result's measurements as records (``contender``, ``seconds`` and the case
    fields), also for the two early formats (``revisions``, ``zarr-read``)."""
    if "records" in result:
        return list(result["records"])
    if result.get("benchmark") == "revisions":
        return [{"contender": f["tree"], "case": f["case"], "round": f["round"],
                 "seconds": f["seconds"], "inertia": f.get("inertia")}
                for f in result.get("fits", [])]
    if result.get("benchmark") == "zarr-read":
        out = []
        for key, case in (("read_seconds", "read the split"),
                          ("streamed_fit_seconds", "streamed fit")):
            for contender, times in result.get(key, {}).items():
                out += [{"contender": contender, "case": case, "round": r, "seconds": s}
                        for r, s in enumerate(times)]
        return out
    return []


def reference(result: dict[str, Any]) -> str | None:
    """The contender the result's ratios are against."""
    if result.get("reference"):
        return str(result["reference"])
    if result.get("benchmark") == "revisions" and result.get("trees"):
        return str(next(iter(result["trees"])))
    if result.get("benchmark") == "zarr-read":
        return "zarr"
    return None


def measure(result: dict[str, Any]) -> str:
    """What the result's seconds are."""
    if result.get("measure"):
        return str(result["measure"])
    return {"revisions": "seconds to a converged model",
            "zarr-read": "seconds"}.get(str(result.get("benchmark")), "seconds")


def latest(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest result (by its machine's date, then file name) of each benchmark and
    set of cases: a re-run of one case does not hide the full run before it."""
    best: dict[tuple[str, frozenset[str]], dict[str, Any]] = {}

    def when(r: dict[str, Any]) -> tuple[str, str]:
        return str(r.get("machine", {}).get("date", "")), r["_path"].name

    for r in results:
        key = (str(r.get("benchmark", r["_path"].stem)),
               frozenset(case_label(rec) for rec in records(r)))
        if key not in best or when(r) > when(best[key]):
            best[key] = r
    return sorted(best.values(), key=lambda r: (str(r.get("benchmark")), when(r)))


def machine_summary(machine: dict[str, Any]) -> str:
    """One line: CPU, cores, vector instructions (AVX-512 or not), BLAS, versions, date."""
    cpu = machine.get("cpu", {})
    flags = list(cpu.get("flags", []))
    avx512 = [f for f in flags if f.startswith("avx512")]
    vector = ", ".join(f.upper() for f in flags if not f.startswith("avx512"))
    vector += f"; AVX-512 ({', '.join(avx512)})" if avx512 else "; no AVX-512"
    blas = sorted({f"{b.get('internal_api')} {b.get('version') or ''}".strip()
                   + (f" ({b['architecture']})" if b.get("architecture") else "")
                   for b in machine.get("blas", []) if b.get("internal_api") != "openmp"})
    versions = machine.get("versions", {})
    names = ("daskmeans", "numpy", "dask", "zarr", "numba", "scikit-learn")
    soft = ", ".join(f"{n} {versions[n]}" for n in names if n in versions)
    env = machine.get("env") or {}
    blas_env = ("BLAS variables: " + ", ".join(f"{k}={v}" for k, v in env.items())
                if env else "no BLAS variables set")
    return (f"{cpu.get('model', 'unknown CPU')}, {machine.get('cores', '?')} cores, "
            f"{vector}; BLAS {', '.join(blas) or 'unknown'} ({blas_env}); "
            f"Python {machine.get('python', '?')}, {soft}; "
            f"measured {str(machine.get('date', '?'))[:10]}")


# --------------------------------------------------------------------------- grouping


def case_label(rec: dict[str, Any], skip: Sequence[str] = ()) -> str:
    """The case a record belongs to, e.g. ``"K=10"`` or ``"K=64, biggest_inertia"``."""
    parts = []
    for f in CASE_FIELDS:
        if f in skip or rec.get(f) is None:
            continue
        parts.append(f"K={rec[f]}" if f == "k" else str(rec[f]))
    return ", ".join(parts) or "all"


def _by_round(recs: Iterable[dict[str, Any]]) -> dict[Any, float]:
    return {r.get("round", i): float(r["seconds"]) for i, r in enumerate(recs)}


def ratios(recs: Sequence[dict[str, Any]], ref: str) -> dict[str, dict[str, float]]:
    """``{case: {contender: ratio}}``: the median over rounds of the contender's time over
    the reference's in the same round (the ratio of the medians where no round is
    shared). Cases without the reference are left out."""
    cases: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in recs:
        cases.setdefault(case_label(r), {}).setdefault(str(r["contender"]), []).append(r)
    out: dict[str, dict[str, float]] = {}
    for case, by_contender in cases.items():
        if ref not in by_contender:
            continue
        base = _by_round(by_contender[ref])
        out[case] = {}
        for contender, rs in by_contender.items():
            mine = _by_round(rs)
            shared = [k for k in mine if k in base and base[k] > 0]
            if shared:
                out[case][contender] = median(mine[k] / base[k] for k in shared)
            elif median(base.values()) > 0:
                out[case][contender] = median(mine.values()) / median(base.values())
    return out


def _figure(**kwargs: Any) -> Figure:
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _short(text: str, width: int = 44) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------- figures


def ratio_figure(result: dict[str, Any]) -> Figure | None:
    """Horizontal bars: each contender's time relative to the reference, per case."""
    ref = reference(result)
    table = ratios(records(result), ref) if ref else {}
    if not table:
        return None
    contenders = list(dict.fromkeys(c for row in table.values() for c in row))
    cases = list(table)
    height = 0.8 / len(cases)
    fig = _figure(figsize=(9, 1.2 + 0.32 * len(contenders) * max(1, len(cases) / 2)),
                  layout="constrained")
    ax = fig.subplots()
    for j, case in enumerate(cases):
        ys = [i + (j - (len(cases) - 1) / 2) * height for i in range(len(contenders))]
        vals = [table[case].get(c, float("nan")) for c in contenders]
        # bars from 1 (the reference) to the ratio, on a log scale: 0.5 and 2 look alike
        bars = ax.barh(ys, [v - 1 for v in vals], left=1, height=height, label=case,
                       color=f"C{j}")
        ax.bar_label(bars, [f"{v:.2f}" if v == v else "" for v in vals], fontsize=7,
                     padding=2)
    ax.set_yticks(range(len(contenders)), [_short(c) for c in contenders], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="gray", linewidth=0.8)
    ax.set_xscale("log")
    finite = [v for row in table.values() for v in row.values() if v == v and v > 0]
    ax.set_xlim(min([*finite, 1.0]) / 1.25, max([*finite, 1.0]) * 1.25)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"time relative to {ref} (median of per-round ratios; below 1 is faster)")
    ax.set_title(f"{result.get('benchmark')}: {measure(result)}")
    if len(cases) > 1:
        fig.legend(fontsize=8, loc="outside right upper")
    return fig


def k_figure(result: dict[str, Any]) -> Figure | None:
    """Median seconds against K, one line per contender (and case other than K)."""
    lines: dict[str, dict[int, list[float]]] = {}
    for r in records(result):
        if r.get("k") is None:
            continue
        rest = case_label(r, skip=("k",))
        name = str(r["contender"]) + ("" if rest == "all" else f" ({rest})")
        lines.setdefault(name, {}).setdefault(int(r["k"]), []).append(float(r["seconds"]))
    lines = {n: v for n, v in lines.items() if len(v) >= 2}
    if not lines:
        return None
    fig = _figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    ks: set[int] = set()
    for i, (name, by_k) in enumerate(lines.items()):
        xs = sorted(by_k)
        ks.update(xs)
        ax.plot(xs, [median(by_k[k]) for k in xs], marker="o", label=_short(name, 56),
                color=f"C{i % 10}", linestyle="-" if i < 10 else "--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sorted(ks), [str(k) for k in sorted(ks)])
    ax.minorticks_off()
    ax.set_xlabel("K (clusters)")
    ax.set_ylabel(f"{measure(result)} (median)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{result.get('benchmark')}: time against K")
    return fig


def workers_figure(result: dict[str, Any]) -> Figure | None:
    """Median seconds against the number of workers, per contender and case, where a
    contender was measured on two worker counts or more."""
    lines: dict[str, dict[int, list[float]]] = {}
    for r in records(result):
        if r.get("workers") is None:
            continue
        base = re.sub(r"\s*\d+x\d+", "", str(r["contender"]))  # "LocalCluster 2x1" -> one line
        name = f"{base} ({case_label(r)})"
        lines.setdefault(name, {}).setdefault(int(r["workers"]), []).append(float(r["seconds"]))
    lines = {n: v for n, v in lines.items() if len(v) >= 2}
    if not lines:
        return None
    fig = _figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    for i, (name, by_w) in enumerate(lines.items()):
        xs = sorted(by_w)
        ax.plot(xs, [median(by_w[w]) for w in xs], "o-", label=_short(name, 56),
                color=f"C{i % 10}")
    ax.set_xlabel("workers")
    ax.set_ylabel(f"{measure(result)} (median)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{result.get('benchmark')}: scaling with workers")
    return fig


FIGURES = {"ratio": ratio_figure, "k": k_figure, "workers": workers_figure}
WHY_MISSING = {
    "ratio": "no result names a reference contender measured in the same cases",
    "k": "no result measured a contender at two values of K or more",
    "workers": "no result measured a contender on two worker counts or more",
}


def draw_all(inputs: Iterable[Path], out: Path) -> Report:
    """Draw every figure the newest result of each benchmark allows into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    report = Report()
    for result in latest(load(inputs)):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", result["_path"].stem)
        for kind, make in FIGURES.items():
            fig = make(result)
            if fig is None:
                continue
            path = out / f"{name}-{kind}.png"
            fig.savefig(path, dpi=100)
            report.drawn.append(Drawn(kind, str(result.get("benchmark", name)), path,
                                      result["_path"], measure(result),
                                      result.get("machine", {})))
    kinds = {d.kind for d in report.drawn}
    report.skipped = {k: WHY_MISSING[k] for k in KINDS if k not in kinds}
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="*", type=Path,
                   help=f"results files (default: {RESULTS}/*.json)")
    p.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    args = p.parse_args(argv)
    inputs = args.results or sorted(RESULTS.glob("*.json"))
    if not inputs:
        p.error(f"no results files (looked in {RESULTS})")
    report = draw_all(inputs, args.out)
    for d in report.drawn:
        print(f"{d.path}  ({d.kind} of {d.benchmark}, from {d.source.name})")
    for kind, why in report.skipped.items():
        print(f"no {kind} figure: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
