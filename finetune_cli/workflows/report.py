"""`ftcli report`: the comparison of a runs folder (runs/compare.py) written as one HTML file
(runs/report.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..runs.compare import compare_runs, no_runs_found
from ..runs.folder import check_writable, write_atomic
from ..runs.report import counted, report_html


@dataclass(frozen=True)
class WrittenReport:
    path: Path
    runs: int  # the completed runs in it
    skipped: list[tuple[Path, str]]  # folders left out, with the reason (listed in the report too)

    def line(self) -> str:
        """`wrote report.html (4 runs)`, and how many folders were left out."""
        skipped = f"; {counted(len(self.skipped), 'skipped folder')} listed in it" if self.skipped else ""
        return f"wrote {self.path} ({counted(self.runs, 'run')}{skipped})"


def write_report(runs_dir: Path, out_path: Path, datasets: list[str] | None = None, modes: list[str] | None = None,
                 metric: str = "auto") -> WrittenReport:
    """The report of the completed runs under `runs_dir` (filtered as `ftcli compare`) at `out_path`."""
    out_path = Path(out_path)
    check_writable(out_path.parent, "--out")  # a file on the way: one line, before the figures
    found = compare_runs(runs_dir, datasets, modes, metric=metric)
    if not found.runs:
        raise no_runs_found(runs_dir, bool(datasets or modes))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_path, report_html(found, Path(runs_dir), metric).encode("utf-8"))
    return WrittenReport(out_path, len(found.runs), found.skipped)
