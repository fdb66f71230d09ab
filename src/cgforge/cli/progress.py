"""A rich progress display for staged simulations: stage, steps, ns/day, time left."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

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


#: Progress lines per stage when the output is not a terminal (a log file, a batch job).
LINES_PER_STAGE = 4


def line_progress(
    lines_per_stage: int = LINES_PER_STAGE, unit: str = "steps"
) -> Callable[[str, int, int, float], None]:
    """A progress callback ``(stage, done, total, ns_per_day)`` for logs: one line when a stage
    starts, ``lines_per_stage`` lines in its course (at equal shares of its steps) and one
    when it ends, each flushed at once."""
    shown: dict[str, int] = {}

    def callback(stage: str, done: int, total: int, ns_per_day: float) -> None:
        total = max(total, 1)
        share = min(lines_per_stage, int(lines_per_stage * min(done, total) / total))
        if stage in shown and share <= shown[stage]:
            return
        first = stage not in shown
        shown[stage] = share
        speed = f", {ns_per_day:.2f} ns/day" if ns_per_day > 0 else ""
        if first and done < total:
            text = f"{stage}: started ({total} {unit})"
        else:
            text = f"{stage}: {min(done, total)}/{total} {unit}{speed}"
            if done >= total:
                text += " (done)"
        console.print(text, highlight=False, markup=False, soft_wrap=True)
        console.file.flush()

    return callback


@contextlib.contextmanager
def stage_progress(enabled: bool = True) -> Iterator:
    """Yield a progress callback ``(stage, done, total, ns_per_day)`` that drives a rich display
    on a terminal, and writes progress lines (:func:`line_progress`) where the output goes to a
    file or a pipe, so that a log shows which stage runs."""
    if not enabled:
        yield None
        return
    if not console.is_terminal:
        yield line_progress()
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
