"""Download progress: one rich row per file (bytes, speed, ETA), rich imported only when shown."""

from __future__ import annotations

from contextlib import contextmanager


class DownloadBar:
    """One rich task per file (bytes, speed, ETA), or nothing when progress is off."""

    def __init__(self, progress=None, label: str = ""):
        self.progress, self.label, self.task = progress, label, None

    def start(self, total: int | None, completed: int) -> None:
        """(Re)start at `completed` of `total` bytes; the row appears only once bytes flow (not on a 404)."""
        if self.progress and self.task is None:
            self.task = self.progress.add_task(self.label, total=total, completed=completed)
        elif self.progress:
            self.progress.reset(self.task, total=total, completed=completed)

    def advance(self, n: int) -> None:
        if self.progress:
            self.progress.advance(self.task, n)


@contextmanager
def download_bars(enabled: bool):
    """Yield a factory label -> bar; rich is imported only when a bar is shown."""
    if not enabled:
        yield lambda label: DownloadBar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as progress:
        yield lambda label: DownloadBar(progress, label)
