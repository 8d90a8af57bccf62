"""``daskmeans report``: one self-contained page, its inputs checked before any work,
written atomically and never over an existing file unless asked."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from daskmeans import KMeans, cli, io, open_dataset, open_source, report, save_model
from tests.conftest import MNIST_ROWS, REPORT_SAMPLE

DATA_URI = "data:image/png;base64,"


def images_of(page: str) -> list[tuple[str, str]]:
    """(src, alt) of every image of a page."""
    found = re.findall(r"<img src='([^']*)' alt='([^']*)'>", page)
    assert len(found) == page.count("<img"), "an image the pattern missed"
    return found


def test_page_is_self_contained(report_html: Path) -> None:
    page = report_html.read_text(encoding="utf-8")
    images = images_of(page)
    assert all(src.startswith(DATA_URI) for src, _ in images), [a for _, a in images]
    assert len(images) >= 4
    # no script, stylesheet or anything else fetched: nothing but data: URIs
    assert not re.search(r"<(script|link|iframe|object|embed)\b", page)
    assert not re.search(r"(src|href)\s*=\s*['\"](?!data:)", page)
    assert "url(" not in page
    alts = [alt for _, alt in images]
    for alt in ("inertia per iteration", "cluster centres as images", "contingency table",
                "per-cluster purity", "silhouette", "sweep.png", "elbow.png"):
        assert alt in alts, alt
    assert [p.name for p in report_html.parent.iterdir()] == ["report.html"]  # no temp left


def test_page_contents(report_html: Path) -> None:
    page = report_html.read_text(encoding="utf-8")
    for section in ("The model", "Fit history", "Scores on split &#x27;test&#x27;",
                    "Cluster centres", "Contingency table and per-cluster purity",
                    "PCA view and silhouette", "Choosing K: the sweep"):
        assert f"<h2>{section}</h2>" in page, section
    for score in ("accuracy", "purity", "homogeneity", "completeness", "v_measure",
                  "adjusted_rand", "normalized_mutual_info", "inertia"):
        assert f"<td class='text'>{score}</td>" in page, score
    # the history saved with the model: one row per iteration, shown collapsed
    assert re.search(r"the history&#x27;s \d+ entries", page)
    # the views say how many rows they drew, of how many
    assert f"drawn from {REPORT_SAMPLE} of the {MNIST_ROWS} rows, drawn at random" in page
    assert "recommendation: " in page
    # MNIST's class names are the digits themselves: named as the store records them
    assert "classes named as the store records them" in page


def test_class_names_on_the_page(mnist_dir: Path, tmp_path: Path) -> None:
    """A Fashion-MNIST store names its classes on the page; a store without names
    shows the label numbers and says so."""
    fashion = io.ingest(mnist_dir, tmp_path / "fashion.zarr", name="fashion-mnist")
    plain = io.ingest(mnist_dir, tmp_path / "plain.zarr", name="unnamed")
    X = open_source(fashion, "test")
    model = save_model(KMeans(3, random_state=0, max_iter=3).fit(X), tmp_path / "m.npz")
    inputs = report.open_inputs(model, fashion, split="test")
    assert inputs.class_names is not None and inputs.class_names[9] == "Ankle boot"
    assert report.open_inputs(model, plain, split="test").class_names is None
    page = report.Page("names")
    X_small, y_small = (a[:300].compute() for a in open_dataset(fashion, "test"))
    report.model_sections(page, inputs.model, X_small, y_small,
                          class_names=inputs.class_names, views=False)
    text = page.html()
    majority = {int(v) for v in np.bincount(y_small).argsort()[-3:]}
    names = dict(enumerate(inputs.class_names))
    assert any(f">{names[v]}</td>" in text for v in majority), "no class named in a table"
    plain_page = report.Page("numbers")
    report.model_sections(plain_page, inputs.model, X_small, y_small, views=False)
    assert "Ankle boot" not in plain_page.html() and "Trouser" not in plain_page.html()


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model of 64 features (8x8 digits): not MNIST's 784."""
    from sklearn.datasets import load_digits

    X = load_digits().data[:200] / 16
    return save_model(KMeans(3, random_state=0).fit(X),
                      tmp_path_factory.mktemp("digits") / "digits.npz")


@pytest.fixture(scope="module")
def mnist_model(mnist_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(KMeans(3, random_state=0, max_iter=2).fit(open_source(mnist_store,
                                                                            "test")),
                      tmp_path_factory.mktemp("mnist-model") / "m.npz")


def test_mismatches_fail_before_any_work(mnist_store: Path, digits_model: Path,
                                         mnist_model: Path, tmp_path: Path,
                                         counting_scheduler) -> None:
    out = tmp_path / "r.html"
    cases = [
        (dict(model=digits_model, store=mnist_store),
         r"fitted on 64 features, but split 'test' of .* has 784"),
        (dict(model=mnist_model, store=mnist_store, split="train"),
         r"split 'train' is not in this store \(available: \['test'\]\)"),
        (dict(model=tmp_path / "none.npz", store=mnist_store), r"no such model file"),
        (dict(model=mnist_model, store=tmp_path / "none.zarr"), r"no such store"),
        (dict(model=mnist_model, store=mnist_store, sweep=tmp_path / "none.json"),
         r"no such sweep file"),
        (dict(model=mnist_model, store=mnist_store, sample_size=1),
         r"sample size must be an integer >= 2"),
    ]
    bad_sweep = tmp_path / "bad.json"
    bad_sweep.write_text('[{"k": 3}]')
    cases.append((dict(model=mnist_model, store=mnist_store, sweep=bad_sweep),
                  r"not a sweep file: expected a list of rows"))
    for kwargs, message in cases:
        with pytest.raises(report.ReportError, match=message):
            report.write_report(out=out, **kwargs)
    assert counting_scheduler.calls == 0  # not one pass over the data
    assert not out.exists()


def test_existing_output_refused_unless_overwrite(mnist_store: Path, mnist_model: Path,
                                                  tmp_path: Path, counting_scheduler) -> None:
    out = tmp_path / "r.html"
    out.write_text("the user's page")
    with pytest.raises(io.OutputExistsError, match=rf"{re.escape(str(out))}: exists; .*"
                                                  r"overwrite=True.*--overwrite"):
        report.write_report(mnist_model, mnist_store, out)
    assert counting_scheduler.calls == 0 and out.read_text() == "the user's page"
    with pytest.raises(report.ReportError, match="is a folder"):
        report.write_report(mnist_model, mnist_store, tmp_path)
    page = report.Page("small")
    page.paragraph("replaced")
    assert page.write(out, overwrite=True) == out
    assert "replaced" in out.read_text() and sorted(p.name for p in tmp_path.iterdir()) == [
        "r.html"]  # written beside, renamed into place: nothing left behind


def test_page_figures_must_be_png(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("not a png")
    with pytest.raises(ValueError, match="is not a PNG"):
        report.Page("p").figure(tmp_path / "x.png", "x")


def test_cli_report(mnist_store: Path, mnist_model: Path, digits_model: Path,
                    tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.html"
    argv = ["report", str(mnist_model), str(mnist_store), "--out", str(out), "--sample",
            "300", "--quiet", "--title", "MNIST, K=3"]
    assert cli.main(argv) == 0
    stdout = capsys.readouterr().out
    assert re.search(r"test: accuracy 0\.\d+, purity .* \d figures embedded", stdout)
    assert f"report -> {out}" in stdout
    assert "<title>MNIST, K=3</title>" in out.read_text()
    before = out.read_bytes()
    assert cli.main(argv) == 2  # refused: the page stays as it was
    err = capsys.readouterr().err
    assert f"daskmeans: error: {out}: exists" in err and "--overwrite" in err
    assert out.read_bytes() == before
    assert cli.main(["report", str(digits_model), str(mnist_store), "--out",
                     str(tmp_path / "d.html"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "fitted on 64 features, but split 'test'" in err
    assert not (tmp_path / "d.html").exists()
