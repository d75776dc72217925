"""A ``palette worker`` whose decoder kills its own process on one image (the test hook of
test_worker_crashes.py): the real worker runtime, with ``extract`` wrapped so that an image
carrying the marker after its JPEG end marker ends the process at once, as a segfault would.

Run as ``python crashing_worker.py`` with ``PALETTE_*`` settings in the environment.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import palette_native

from service.runtime import Runtime
from service.settings import Settings

MARKER = b"KILL-MY-WORKER"


def dying_extract(source: Any, **kwargs: Any) -> Any:
    data = source if isinstance(source, (bytes, bytearray)) else open(source, "rb").read()
    if MARKER in data:
        os._exit(70)  # no cleanup, no lease release: what kill -9, OOM or a segfault leave
    return palette_native.extract(source, **kwargs)


def main() -> None:
    settings = Settings.from_env()
    runtime = Runtime(settings, extract=dying_extract)
    runtime.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    runtime.stop()


if __name__ == "__main__":
    main()
