"""A one-line progress bar on stderr, drawn only while stderr is a terminal (never into a pipe or a log file).

    with Progress(len(paths), "identify") as bar:
        for path in paths:
            bar.echo(f"{path}: ...")  # a line above the bar (stdout by default)
            bar.advance()
"""
from __future__ import annotations

import sys
import time

WIDTH = 30  # characters of the bar itself
REDRAW = 0.1  # seconds between redraws at most


class Progress:
    """``done / total`` items of ``label`` with rate and time left; ``stream`` (default ``sys.stderr``) gets
    the bar only when it is a terminal."""

    def __init__(self, total: int, label: str, unit: str = "photos", stream=None):
        self.total, self.label, self.unit = max(int(total), 0), label, unit
        self.stream = sys.stderr if stream is None else stream
        self.shown = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done, self.started, self.drawn = 0, time.perf_counter(), 0.0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.shown and (time.perf_counter() - self.drawn >= REDRAW or self.done >= self.total):
            self._draw()

    def echo(self, text: str, file=None) -> None:
        """Print ``text`` (a line) to ``file`` (default stdout) with the bar moved below it."""
        self._clear()
        print(text, file=sys.stdout if file is None else file, flush=True)
        if self.shown and self.done:
            self._draw()

    def close(self) -> None:
        self._clear()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _draw(self) -> None:
        elapsed = time.perf_counter() - self.started
        share = self.done / self.total if self.total else 1.0
        filled = int(round(WIDTH * min(share, 1.0)))
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        self.stream.write(f"\r\033[K{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total} "
                          f"{self.unit}, {rate:.1f}/s, {int(left) // 60}:{int(left) % 60:02d} left")
        self.stream.flush()
        self.drawn = time.perf_counter()

    def _clear(self) -> None:
        if self.shown and self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
