"""Small pieces every module of the data layer shares: the one error type and a progress bar.

Kept apart so that `sources`, `fetch`, `prepare` and `loader` can import them without
importing each other.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


class DataError(Exception):
    """Every failure of the data layer: a message saying what went wrong and a hint saying what to do.

    The CLI prints both and exits without a traceback, so the message must stand on its own.
    """

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


def cache_dir() -> Path:
    """Root of everything downloaded or prepared: `$NSLANG_CACHE`, else `~/.cache/nslang`.

    Read on every call (not at import) so that tests and the CLI can point it elsewhere.
    """
    root = os.environ.get("NSLANG_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "nslang"


def log(message: str, enabled: bool = True) -> None:
    # Progress goes to stderr so that stdout stays clean for whatever the CLI prints.
    if enabled:
        print(message, file=sys.stderr, flush=True)


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True,
             unit: str = "it") -> Iterator[T]:
    """Wrap an iterable in a tqdm bar when tqdm is installed, else print a line every ~10%.

    tqdm stays optional: the data layer must work on a bare install.
    """
    if not enabled:
        yield from iterable
        return
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        yield from tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)
        return
    start = time.monotonic()
    next_report = 0.1
    count = 0
    for item in iterable:
        yield item
        count += 1
        if total and count / total >= next_report:
            log(f"{desc}: {count}/{total} {unit} ({time.monotonic() - start:.1f} s)")
            next_report += 0.1
    if not total:
        log(f"{desc}: {count} {unit} ({time.monotonic() - start:.1f} s)")
