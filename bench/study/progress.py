"""The study's progress lines (stderr, with the UTC time)."""

from __future__ import annotations

import datetime as dt
import sys

__all__ = ["progress"]


def progress(msg: str) -> None:
    print(f"[study {dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {msg}", file=sys.stderr,
          flush=True)
