"""`ftcli report`: one self-contained HTML file, read back with html.parser (the table, the inlined
figures, the config differences, the warnings, escaping, no address to load) and opened in headless
Chromium where it is installed."""

from __future__ import annotations

import base64
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from helpers import copy_run, ftcli, train_template_run

from finetune_cli.runs.compare import compare_runs
from finetune_cli.runs.render import columns

HOSTILE = 'top <b>&"x"'  # a run folder name that is markup if not escaped
LABELS = ["neg<i>", "pos"]  # the hostile run's label names (in its confusion matrix's alt text)
WARNING = "predicts one class (<neg>) for 100% of the test split"
# (folder, mode, learning rate, test accuracy, more summary values)
RUNS = [("mode=full_lr=0.0001", "full", 1e-4, 0.70, {"warnings": None}),  # the tiny template's own warning gone
        ("mode=full_lr=0.0003", "full", 3e-4, 0.90, {"warnings": None}),
        (HOSTILE, "top", 1e-3, 0.50, {"warnings": [WARNING], "label_names": LABELS})]


class Page(HTMLParser):
    """What the tests read of a page: tables by id (rows of cell texts), images' attributes, tags, text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._table = self._row = self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id", ""), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Three runs (two full learning rates, one hostile top run with a warning), a failed run, and
    their report: (runs folder, report path, ftcli's output)."""
    root = tmp_path_factory.mktemp("report")
    template = train_template_run(root / "seed")
    runs = root / "runs"
    for folder, mode, lr, test, values in RUNS:
        copy_run(template, runs / folder, mode, lr, 0, {"inference_accuracy": test, **values})
    copy_run(template, runs / "failed", "full", 1e-2, 0, {"status": "failed", "error": "out of memory"})
    result = ftcli("report", runs, "--out", root / "out" / "report.html")
    assert result.exit_code == 0, result.output
    return runs, root / "out" / "report.html", result.stdout


def test_the_report_holds_the_compare_table_and_figures_inlined(report):
    runs, path, stdout = report
    assert stdout.strip() == f"wrote {path} (3 runs; 1 skipped folder listed in it)"
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    rows = compare_runs(runs).rows
    header, *body = page.tables["comparison"]
    assert header == [h for h, _ in columns(rows)]
    marked = [r["name"] + (" !" if r["warnings"] else "") for r in rows]  # compare's mark of a warning
    assert [cells[0] for cells in body] == marked and marked[2] == HOSTILE + " !" and len(body) == 3
    assert len(page.images) == 2 + 3  # accuracy vs parameters, learning curves, three confusion matrices
    prefix = "data:image/png;base64,"
    assert all(i["src"].startswith(prefix) for i in page.images)
    assert all(base64.b64decode(i["src"][len(prefix):], validate=True).startswith(b"\x89PNG") for i in page.images)
    assert "http://" not in html and "https://" not in html
    assert not {"script", "link", "iframe", "object"} & set(page.tags)  # nothing that loads from elsewhere
    assert "out of memory" in "".join(page.text)  # the failed run, listed as skipped


def test_the_report_shows_config_differences_warnings_and_escapes_run_texts(report):
    _, path, _ = report
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    header, *differences = page.tables["config-differences"]
    assert header == ["key", "mode=full_lr=0.0001", "mode=full_lr=0.0003", HOSTILE]
    by_key = {cells[0]: cells[1:] for cells in differences}
    assert by_key["train.learning_rate"] == ["0.0001", "0.0003", "0.001"]
    assert by_key["method.mode"] == ["full", "full", "top"]
    common = {cells[0]: cells[1] for cells in page.tables["config-common"][1:]}
    assert common["seed"] == "0" and "train.learning_rate" not in common and not set(common) & set(by_key)
    text = "".join(page.text)
    assert f"{HOSTILE}: {WARNING}" in text and "1 warning" in text
    assert any(", ".join(LABELS) in i["alt"] for i in page.images)
    for raw in (HOSTILE, WARNING, LABELS[0]):  # escaped: read back as text, never as markup
        assert raw not in html
    assert "b" not in page.tags and "i" not in page.tags


def test_a_report_of_no_completed_runs_is_one_line(report, tmp_path):
    runs, _, _ = report
    (tmp_path / "empty").mkdir()
    result = ftcli("report", tmp_path / "empty", "--out", tmp_path / "r.html")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"ftcli: error: {tmp_path / 'empty'}: no completed runs found"
    result = ftcli("report", runs, "--dataset", "snli", "--out", tmp_path / "r.html")
    assert result.exit_code == 1 and "no completed runs found (after filters)" in result.stderr
    assert not (tmp_path / "r.html").exists()


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium not installed: apt-get update && apt-get install chromium")
    return found


def open_in_chromium(path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", *args, path.as_uri()], capture_output=True, text=True, timeout=60)


def test_the_report_renders_in_headless_chromium(report, tmp_path):
    _, path, _ = report
    dumped = open_in_chromium(path, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr
    page = Page(dumped.stdout)  # the DOM as the browser built it
    assert len(page.tables["comparison"]) == 1 + 3 and len(page.images) == 5
    shot = tmp_path / "report.png"
    taken = open_in_chromium(path, f"--screenshot={shot}", "--window-size=1280,2000")
    assert taken.returncode == 0, taken.stderr
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    # chromium logs GPU and D-Bus noise; what matters is what the page itself logged or failed to load
    about_page = [line for run in (dumped, taken) for line in run.stderr.splitlines()
                  if "CONSOLE" in line or "ERR_" in line or "Failed to load" in line or path.name in line]
    assert about_page == [], "\n".join(about_page)
    names = [cells[0].removesuffix(" !") for cells in page.tables["comparison"][1:]]
    assert names == ["mode=full_lr=0.0001", "mode=full_lr=0.0003", HOSTILE]  # escaped names read as text
