"""Progress on stderr: a bar on a terminal; elsewhere (a log file, a pipe, a batch job) plain log lines at a
steady interval (done/total, rate, estimated time left); nothing when turned off (``--no-progress``)."""

from __future__ import annotations

import logging
import sys
import threading
import time

log = logging.getLogger(__name__)

_enabled = True
_interval = 30.0


def set_enabled(enabled: bool) -> None:
    """Turn progress on or off for this process (``--no-progress`` turns it off)."""
    global _enabled
    _enabled = enabled


def set_interval(seconds: float) -> None:
    """Seconds between two progress lines when stderr is not a terminal (``--progress-interval``)."""
    global _interval
    _interval = seconds


def enabled() -> bool:
    """Whether progress bars are shown: on, and stderr is a terminal."""
    return _enabled and sys.stderr.isatty()


def lines_enabled() -> bool:
    """Whether progress is logged as lines: on, and stderr is not a terminal."""
    return _enabled and not sys.stderr.isatty()


def bar(iterable=None, total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0):
    """Progress over ``iterable`` (or counted with ``update``), from ``initial`` (done before) to ``total``: a
    tqdm bar on a terminal, :class:`Lines` elsewhere, a :class:`Silent` count when off (tqdm, whose import takes
    20-45 ms, is imported only for a bar)."""
    if enabled():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr, dynamic_ncols=True)
    kind = Lines if lines_enabled() else Silent
    total = total if total is not None else _length(iterable)
    return kind(iterable, total=total, desc=desc, unit=unit, initial=initial)


def _length(iterable) -> int | None:
    try:
        return len(iterable)
    except TypeError:
        return None


def observer(desc: str, unit: str = "block"):
    """What ``daisy.run_blockwise`` takes as ``progress``: True (its bar) on a terminal, a :class:`Lines`
    observer elsewhere, False when progress is off."""
    if enabled():
        return True
    return DaisyLines(desc, unit) if lines_enabled() else False


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Lines:
    """Progress logged as plain lines every :func:`set_interval` seconds from a background thread (so a long
    block does not hold them back), and once at the end: ``DESC: 120/2000 blocks done (6%), 35.2 blocks/s,
    about 53 s left``. The rate counts from ``initial`` or the first update (what was done before, such as
    blocks skipped on a resumed run or a resumed training's iterations, does not inflate it). Counts like tqdm:
    ``update(n)``, ``set_postfix(...)``, iteration, ``with``."""

    def __init__(self, iterable=None, total: int | None = None, desc: str = "", unit: str = "it",
                 interval: float | None = None, initial: int = 0):
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.interval = _interval if interval is None else interval
        self.n = initial
        self.postfix = ""
        self._first: tuple[float, int] | None = (time.monotonic(), initial) if initial else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name=f"progress {self.desc}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            log.info("%s", self.line())

    def update(self, n: int = 1) -> None:
        self.set(self.n + n)

    def set(self, n: int) -> None:
        """The count is now ``n``."""
        self.n = n
        if self._first is None:
            self._first = (time.monotonic(), n)
        self._start()

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def line(self) -> str:
        """What the next progress line says."""
        words = [f"{self.n}/{self.total}" if self.total is not None else f"{self.n}", f"{self.unit}s done"]
        if self.total:
            words.append(f"({100 * self.n / self.total:.0f}%)")
        text = " ".join(words)
        if self._first is not None:
            seconds = time.monotonic() - self._first[0]
            counted = self.n - self._first[1]
            if seconds > 0 and counted > 0:
                rate = counted / seconds
                text += f", {rate:.3g} {self.unit}s/s"
                if self.total is not None and self.n < self.total:
                    text += f", about {format_seconds((self.total - self.n) / rate)} left"
        if self.postfix:
            text += f", {self.postfix}"
        return f"{self.desc}: {text}" if self.desc else text

    def close(self) -> None:
        """Stop the lines; log the last one (when anything was counted)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            log.info("%s", self.line())

    def __iter__(self):
        self._start()
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> Lines:
        self._start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Silent(Lines):
    """:class:`Lines` that counts and says nothing (progress turned off)."""

    def _start(self) -> None:
        pass

    def close(self) -> None:
        self._closed = True


class DaisyLines(Lines):
    """:class:`Lines` as a daisy progress observer (``on_start``, ``on_progress``, ``on_finish``) of one task:
    its completed blocks (blocks skipped as done count as completed) of its total."""

    def __init__(self, desc: str, unit: str = "block"):
        super().__init__(desc=desc, unit=unit)

    def _count(self, states) -> None:
        for state in states.values():
            self.total = int(state.total_block_count)
            self.set(int(state.completed_count))

    def on_start(self, states) -> None:
        self._count(states)

    def on_progress(self, states) -> None:
        self._count(states)

    def on_finish(self, states) -> None:
        self._count(states)
        self.close()
