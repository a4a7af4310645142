"""The UTF-8 text files the commands read (one text per line): errors that name the file and the line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


def bad_utf8_line(path: str | Path) -> str:
    """Where a file first stops being UTF-8: "line N, byte M (b'..')"."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return f"line {n}, byte {e.start + 1} ({raw[e.start : e.start + 1]!r})"
    return "a multi-byte character is cut"


def utf8_error(path: str | Path, e: UnicodeDecodeError) -> InputError:
    """The InputError for a file that is not UTF-8, naming it, the line and the byte."""
    return InputError(
        f"{path} is not valid UTF-8: {bad_utf8_line(path)} ({e.reason}); "
        "convert it first (e.g. iconv -f latin1 -t utf-8)"
    )


def iter_lines(path: str | Path, what: str = "input file") -> Iterator[str]:
    """The lines of a UTF-8 text file, without their newline.

    Raises:
        InputError: the file is missing, unreadable, or not valid UTF-8 (the message names the line).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} not found: {p}" + (" (it is a directory)" if p.is_dir() else ""))
    try:
        with open(p, encoding="utf-8") as f:
            for line in f:
                yield line.rstrip("\n")
    except UnicodeDecodeError as e:
        raise utf8_error(p, e) from None
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror or e}") from None
