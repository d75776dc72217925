"""``python -m service [serve|worker] [--host ...]``: the same entry points as ``palette serve``."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
