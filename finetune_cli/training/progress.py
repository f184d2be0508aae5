"""A rich progress bar over all training steps, with the running loss and an ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..data.metrics import Evaluation, score_text


class TrainProgress:
    """Shows steps done / total, loss (moving average) and ETA; prints one line per epoch."""

    def __init__(self, epochs: int, steps_per_epoch: int, console: Console | None, enabled: bool, done: int = 0):
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.enabled = enabled
        self.step = done
        self.loss: float | None = None
        self.epochs = epochs
        self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TextColumn("eta"),
                            TimeRemainingColumn(), console=self.console, disable=not enabled, transient=True)
        self.task = self.bar.add_task("train", total=epochs * steps_per_epoch, completed=done, loss="-")

    def __enter__(self) -> TrainProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def advance(self, loss: float) -> None:
        self.step += 1
        self.loss = loss if self.loss is None else 0.9 * self.loss + 0.1 * loss
        self.bar.update(self.task, advance=1, loss=f"{self.loss:.4f}")

    def end_epoch(self, epoch: int, val: Evaluation) -> None:
        if self.enabled:
            scores = " | ".join(f"val {score_text(m, v)}" for m, v in val.scores.items())
            self.console.print(f"epoch {epoch}/{self.epochs}: train loss {self.loss:.4f} | "
                               f"val loss {val.loss:.4f} | {scores}")
