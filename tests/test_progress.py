"""Progress reporting: callbacks from the library, tqdm bars for ``verbose``, the CLI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daskmeans import KMeans, MiniBatchKMeans, cli, io, open_dataset, quantize
from daskmeans.progress import Progress, TqdmBars, progress
from tests.conftest import MNIST_ROWS

Call = tuple[str, int, "int | None", str]


def _last_line(err: str) -> str:
    """What a terminal shows last: tqdm redraws with carriage returns."""
    return err.replace("\n", "\r").rstrip("\r").rsplit("\r", 1)[-1]


# ------------------------------------------------------------------ library callbacks


def test_ingest_reports_every_chunk_of_every_file(mnist_dir: Path, tmp_path: Path) -> None:
    calls: list[Call] = []
    quarter = MNIST_ROWS // 4  # four chunks per file
    io.ingest(mnist_dir, tmp_path / "s.zarr", chunk_rows=quarter,
              progress=lambda *a: calls.append(a))
    # the test data have the test split only: labels, then images
    done = [quarter * i for i in (1, 2, 3, 4)]
    labels = [("ingest", n, MNIST_ROWS, "test/labels (t10k-labels-idx1-ubyte.gz)")
              for n in done]
    images = [("ingest", n, MNIST_ROWS, "test/images (t10k-images-idx3-ubyte.gz)")
              for n in done]
    assert calls == labels + images


def test_ingest_without_progress_still_works(mnist_dir: Path, tmp_path: Path) -> None:
    X, _ = open_dataset(io.ingest(mnist_dir, tmp_path / "s.zarr",
                                     chunk_rows=MNIST_ROWS // 2), "test")
    assert X.shape == (MNIST_ROWS, 784)


def test_quantize_reports_its_steps(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    calls: list[Call] = []
    q = quantize(img, 4, random_state=0, store=tmp_path / "q.zarr",
                 progress=lambda *a: calls.append(a))
    own = [c for c in calls if c[0] == "quantize"]
    assert [c[1:3] for c in own] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert own[0][3] == "sampling 2000 of 2000 pixels"
    assert own[2][3] == "palette of 4 colours"
    assert own[3][3] == f"labels -> {tmp_path / 'q.zarr'}"
    assert own[4][3] == f"PSNR {q.psnr:.2f} dB"
    # the palette's estimator reports through the same callback, between steps 1 and 2
    i1, i2 = calls.index(own[1]), calls.index(own[2])
    fit = calls[i1 + 1 : i2]
    assert fit and all(c[0] != "quantize" for c in fit)


def test_quantize_steps_follow_the_options() -> None:
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    calls: list[Call] = []
    quantize(img, 2, random_state=0, compute_psnr=False, algorithm="lloyd",
             progress=lambda *a: calls.append(a))
    own = [c[1:3] for c in calls if c[0] == "quantize"]
    assert own == [(0, 2), (1, 2), (2, 2)]


# ------------------------------------------------------------------ Progress


def test_callback_gets_reports_and_an_honest_early_end() -> None:
    calls: list[Call] = []
    with progress(verbose=1, callback=lambda *a: calls.append(a)) as p:  # callback wins
        assert p.enabled
        for step in range(1, 196):
            p.report("mini-batch", step, 195, f"step {step}")
            if step == 24:
                p.close("converged")
                break
    assert len(calls) == 25
    assert calls[23] == ("mini-batch", 24, 195, "step 24")
    assert calls[24] == ("mini-batch", 24, 24, "converged (24 of 195)")


def test_complete_phase_gets_no_extra_call_and_new_phase_ends_the_last() -> None:
    calls: list[Call] = []
    with progress(callback=lambda *a: calls.append(a)) as p:
        p.report("a", 1, 2)
        p.report("a", 2, 2)
        p.report("b", 3, 10, "x")
        p.report("c", 1, None, "y")
        p.report("c", 5, None, "z")
    assert calls == [("a", 1, 2, ""), ("a", 2, 2, ""),
                     ("b", 3, 10, "x"), ("b", 3, 3, "stopped early (3 of 10)"),
                     ("c", 1, None, "y"), ("c", 5, None, "z"), ("c", 5, 5, "z")]


def test_done_going_back_ends_the_run() -> None:
    calls: list[Call] = []
    p = Progress(callback=lambda *a: calls.append(a))
    for run in range(2):
        for it in range(1, 4 + run):
            p.report("lloyd", it, 300)
    p.close("converged")
    p.close()  # twice is harmless
    ends = [c for c in calls if c[1] == c[2]]
    assert ends == [("lloyd", 3, 3, "stopped early (3 of 300)"),
                    ("lloyd", 4, 4, "converged (4 of 300)")]


def test_interrupted_loop_claims_nothing() -> None:
    calls: list[Call] = []
    with pytest.raises(KeyboardInterrupt), progress(callback=lambda *a: calls.append(a)) as p:
        p.report("fit", 3, 10)
        raise KeyboardInterrupt
    assert calls == [("fit", 3, 10, "")]


def test_verbose_draws_a_tqdm_bar_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with progress(verbose=1) as p:
        for i in range(1, 11):
            p.report("fit", i, 10, f"inertia {100 - i}")
    out, err = capsys.readouterr()
    assert out == ""
    last = _last_line(err)
    assert last.startswith("fit") and "100%" in last and "10/10" in last, err
    assert "inertia 90" in last


def test_verbose_0_writes_nothing_and_never_touches_tqdm(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import tqdm

    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("tqdm used with verbose=0")

    monkeypatch.setattr(tqdm, "tqdm", refuse)
    with progress(verbose=0) as p:
        assert not p.enabled
        for i in range(1000):
            p.report("fit", i, 1000, "x")
    assert capsys.readouterr() == ("", "")


def test_early_stopped_bar_ends_at_its_done_count(capsys: pytest.CaptureFixture[str]) -> None:
    with progress(verbose=True) as p:
        for step in range(1, 196):
            p.report("mini-batch", step, 195)
            if step == 24:
                p.close("converged")
                break
    last = _last_line(capsys.readouterr().err)
    assert "24/24" in last and "100%" in last, last
    assert "converged (24 of 195)" in last
    assert "/195" not in last


def test_early_stop_without_close_detail_and_phase_change(
        capsys: pytest.CaptureFixture[str]) -> None:
    with progress(verbose=1) as p:
        for i in range(1, 8):
            p.report("lloyd", i, 50)
        p.report("refine", 1, 2)  # the next phase closes the first bar honestly
        p.report("refine", 2, 2)
    lines = [_last_line(chunk) for chunk in capsys.readouterr().err.split("\n") if chunk]
    assert len(lines) == 2, lines
    assert "7/7" in lines[0] and "stopped early (7 of 50)" in lines[0]
    assert lines[1].startswith("refine") and "2/2" in lines[1]


def test_tqdm_bars_new_bar_per_phase() -> None:
    import io as stdio

    buf = stdio.StringIO()
    bars = TqdmBars(file=buf, ascii=True)
    bars("a", 1, 3, "")
    bars("a", 3, 3, "done")
    bars("b", 2, None, "")
    bars.close()
    lines = [_last_line(chunk) for chunk in buf.getvalue().split("\n") if chunk]
    assert len(lines) == 2 and "3/3" in lines[0] and "done" in lines[0]
    assert lines[1].startswith("b") and "2it" in lines[1]


# ------------------------------------------------------------------ the CLI


def test_console_progress_draws_on_a_tty_only(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    quiet = cli.Console(quiet=True)
    quiet.progress("fit", 1, 2, "x")
    quiet.end_progress()
    assert capsys.readouterr() == ("", "")
    loud = cli.Console(quiet=False)
    loud.progress("fit", 1, 2, "x")
    loud.progress("fit", 2, 2, "y")
    loud.say("result")
    out, err = capsys.readouterr()
    assert out == "result\n"
    assert "2/2" in _last_line(err) and err.endswith("\n")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    piped = cli.Console(quiet=False)
    piped.progress("fit", 1, 2, "x")
    assert capsys.readouterr() == ("", "")  # a line was just printed (none yet: start)
    piped.HEARTBEAT = 0.0  # piped: a plain line at most every HEARTBEAT seconds
    piped.progress("fit", 2, 3, "y")
    assert capsys.readouterr() == ("", "  fit: 2/3 (y)\n")


@pytest.mark.parametrize("make", [
    lambda cb: MiniBatchKMeans(10, random_state=0, callback=cb),
    lambda cb: KMeans(10, random_state=0, callback=cb),  # bounds
    lambda cb: KMeans(10, random_state=0, algorithm="lloyd", callback=cb),
    lambda cb: KMeans(10, random_state=0, init="random", n_init=3, callback=cb),  # runs
    lambda cb: KMeans(10, random_state=0, metric="manhattan", callback=cb),  # k-medians
])
def test_a_fit_that_converges_says_so_at_the_end(make) -> None:
    from sklearn.datasets import load_digits

    calls: list[tuple[str, int, int | None, str]] = []
    est = make(lambda *a: calls.append(a)).fit(load_digits().data)
    phase, done, total, detail = calls[-1]
    assert done == total and detail.startswith("converged") and "of at most" in detail
    max_steps = next(c[2] for c in calls if c[0] == phase)  # the init comes first
    assert max_steps is not None and done < max_steps
    if phase in ("lloyd", "k-medians") and "runs" not in detail:
        assert detail.startswith(f"converged at iteration {est.n_iter_} of at most 300")
    elif phase == "lloyd":  # several runs share the passes: the bar ends with the last
        assert done >= est.n_iter_ and "all 3 runs" in detail


@pytest.mark.parametrize(("init", "ends"), [
    ("k-means++", [("init", 20, 20, "k-means++ on 1797 rows")]),
    ("k-means||", [("init", 2, 2, "k-means|| round 2: "),
                   ("init", 20, 20, "k-means++ on ")]),
])
def test_the_init_reports_its_progress_before_the_iterations(init: str, ends) -> None:
    """The init is a phase of its own, reported before the first iteration: the
    k-means++ centres chosen of K (and first the k-means|| rounds), each bar ending
    full; two runs report two inits."""
    from sklearn.datasets import load_digits

    calls: list[Call] = []
    KMeans(20, init=init, init_rounds=2, n_init=2, algorithm="lloyd", random_state=0,
           callback=lambda *a: calls.append(a)).fit(load_digits().data)
    first_lloyd = next(i for i, c in enumerate(calls) if c[0] == "lloyd")
    inits = calls[:first_lloyd]
    assert inits and {c[0] for c in inits} == {"init"}
    assert all(c[0] != "init" for c in calls[first_lloyd:])
    ended = [c for c in inits if c[1] == c[2]]
    assert len(ended) == 2 * len(ends)  # each of the two runs' phases ends full
    for got, (phase, done, total, detail) in zip(ended, ends * 2, strict=True):
        assert got[:3] == (phase, done, total) and got[3].startswith(detail), got
    assert inits[0][:3] == ("init", 1, ends[0][2])  # the first report at once


def test_bars_draw_the_init(capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.datasets import load_digits

    KMeans(20, random_state=0, callback=TqdmBars()).fit(load_digits().data)
    err = capsys.readouterr().err
    bars = [_last_line(chunk) for chunk in err.split("\n") if chunk.strip()]
    assert bars[0].startswith("init") and "20/20" in bars[0], bars
    assert any(b.startswith("lloyd") for b in bars[1:]), bars


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_ingest_draws_the_library_progress(
        quiet: bool, mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv = ["ingest", "mnist", "--source", str(mnist_dir), "--out", str(tmp_path / "m.zarr"),
            "--chunk-rows", str(MNIST_ROWS // 2)]  # two chunks per file
    assert cli.main([*argv, "--quiet"] if quiet else argv) == 0
    out, err = capsys.readouterr()
    assert "ingested mnist" in out
    if quiet:
        assert f"{MNIST_ROWS}/{MNIST_ROWS}" not in err and "ingest " not in err
    else:
        bars = [_last_line(chunk) for chunk in err.split("\n") if "ingest " in chunk]
        assert len(bars) == 2, err
        assert f"{MNIST_ROWS}/{MNIST_ROWS}" in bars[0] and "test/labels" in bars[0]
        assert f"{MNIST_ROWS}/{MNIST_ROWS}" in bars[1] and "test/images" in bars[1]
