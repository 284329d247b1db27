"""What every command does with its files: open an input or refuse it in one line, check an
output's folder, list bad lines (the first :data:`SHOWN` and a count)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Iterator, Sequence

from schemas.errors import ConfigError

#: bad lines shown per input; the rest are counted
SHOWN = 20


def open_input(path: str, what: str = "input") -> IO[bytes]:
    """``path`` opened for reading (``-`` = stdin), or a :class:`ConfigError` naming it and why."""
    if path == "-":
        return sys.stdin.buffer
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{path}: is a folder, not a {what} file")
    try:
        return open(target, "rb")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what} file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from None


def stripped_lines(path: str, what: str = "input") -> Iterator[bytes]:
    """Every line of ``path`` stripped, blank ones included (as ``b""``) so that counting them
    gives the file's line numbers. The file is opened now: a missing one fails here, not later."""
    return _stripped(open_input(path, what))


def _stripped(handle: IO[bytes]) -> Iterator[bytes]:
    try:
        for line in handle:
            yield line.strip()
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def check_output(path: str, flag: str = "--output") -> None:
    """A :class:`ConfigError` when ``path`` cannot be written: its folder is missing, or it is a folder."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; give a file path")
    parent = target.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: the folder {parent} does not exist")


def print_line_errors(prog: str, path: str, errors: Sequence[object], total: int | None = None) -> None:
    """``prog: path: line N: reason`` for the first :data:`SHOWN` errors, then how many more."""
    for error in errors[:SHOWN]:
        print(f"spendsentry {prog}: {path}: {error}", file=sys.stderr)
    count = len(errors) if total is None else total
    if count > SHOWN:
        print(f"spendsentry {prog}: {path}: ... and {count - SHOWN} more bad line(s) ({count} in all)",
              file=sys.stderr)
