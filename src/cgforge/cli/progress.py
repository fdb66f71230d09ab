"""A rich progress display for staged simulations: stage, steps, ns/day, time left."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


@contextlib.contextmanager
def stage_progress(enabled: bool = True) -> Iterator:
    """Yield a progress callback ``(stage, done, total, ns_per_day)`` that drives a rich display."""
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps  {task.fields[speed]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def callback(stage: str, done: int, total: int, ns_per_day: float) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=max(total, 1), speed="")
        speed = f"{ns_per_day:8.2f} ns/day" if ns_per_day > 0 else ""
        progress.update(tasks[stage], completed=done, total=max(total, 1), speed=speed)

    with progress:
        yield callback
