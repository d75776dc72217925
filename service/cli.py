"""``palette serve`` / ``palette worker`` (also ``python -m service serve|worker``).

The library's ``palette`` command finds them through the ``palette_native.commands`` entry point
(:func:`add_commands`); this module is the only place their options are defined.

``serve`` runs uvicorn with the app and its in-process workers. SIGTERM drains: ``/readyz``
answers 503 and new jobs get 503 while running images finish (up to
``PALETTE_DRAIN_GRACE_SECONDS``); unfinished jobs go back to the queue; then the server exits
with status 0. A second SIGTERM or SIGINT stops at once.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a command runs: `palette extract` does not pay for them
    from .settings import Settings

__all__ = ["add_arguments", "add_commands", "build_parser", "main", "serve", "worker"]

logger = logging.getLogger("service")


def _settings(args: argparse.Namespace) -> Settings:
    from .settings import Settings, load_dotenv

    load_dotenv()
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "workers"):
        value = getattr(args, name, None)
        if value:  # serve --workers 0: an API node, the setting still sizes the sync pool
            overrides[name] = value
    threads = getattr(args, "threads", None)
    if threads is not None:
        overrides["workers"] = threads
    environ = dict(os.environ)
    for name in ("ssl_certfile", "ssl_keyfile"):
        value = getattr(args, name, None)
        if value is not None:
            environ["PALETTE_" + name.upper()] = value
    return Settings.from_env(environ, **overrides)


def _keep_transient_buffers_mapped() -> None:
    """glibc: serve request bodies and decode buffers (up to 16 MiB) from the heap.

    By default glibc hands out such blocks as fresh kernel mappings and unmaps them on free,
    so every request page-faults its body and its decode buffers in again. Served from the
    heap (trimmed above 32 MiB free), they are reused: about 1.5 % less CPU per request under
    load (benchmarks/bench_service.py). Elsewhere (musl, macOS) this does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the symbols already loaded: libc's, on Linux
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's <malloc.h>
    mallopt(m_mmap_threshold, 16 << 20)
    mallopt(m_trim_threshold, 32 << 20)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def serve(args: argparse.Namespace) -> int:
    """Run the HTTP service with in-process workers until SIGTERM/SIGINT."""
    import ssl

    import uvicorn

    from .app import create_app
    from .security.connection import guarded_protocol

    class DrainingServer(uvicorn.Server):
        """uvicorn that keeps serving while it drains, so readiness can report it."""

        def __init__(self, config: uvicorn.Config, drain: Any) -> None:
            super().__init__(config)
            self._drain = drain
            self._draining = False

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if sig == signal.SIGTERM and not self._draining:
                self._draining = True
                self._drain.begin_drain()
                threading.Thread(
                    target=self._drain_then_exit, name="palette-drain", daemon=True
                ).start()
                return
            super().handle_exit(sig, frame)

        def _drain_then_exit(self) -> None:
            started = time.monotonic()
            try:
                self._drain.drain_workers()
                delay = self._drain.settings.drain_delay_seconds
                time.sleep(max(0.0, delay - (time.monotonic() - started)))
            finally:
                self.should_exit = True

    settings = _settings(args)
    _configure_logging(settings.log_level)
    _keep_transient_buffers_mapped()
    # --workers 0: an API node only; `palette worker` processes run the jobs.
    app = create_app(settings, run_workers=args.workers != 0)
    guards = settings.security
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_grace_seconds) + 5,
        http=guarded_protocol(
            max_head_bytes=guards.max_header_bytes,
            max_headers=guards.max_headers,
            head_timeout_s=guards.header_timeout_seconds,
        ),
        ssl_certfile=guards.ssl_certfile or None,
        ssl_keyfile=guards.ssl_keyfile or None,
    )
    config.load()
    if config.ssl is not None:
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    server = DrainingServer(config, app.state.runtime)
    server.run()
    return 0


def worker(args: argparse.Namespace) -> int:
    """Run only job workers (and webhook delivery) against the backends, until SIGTERM/SIGINT."""
    from .runtime import Runtime

    if args.workers == 0:
        raise SystemExit("palette worker: --workers 0 would run no jobs; give 1 or more")
    settings = _settings(args)
    _configure_logging(settings.log_level)
    _keep_transient_buffers_mapped()
    logger.info("settings in force: %s", settings.public_view())
    runtime = Runtime(settings)
    runtime.start()
    stop = threading.Event()

    def on_signal(sig: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(1.0):
            pass
        runtime.stop()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="listen address (PALETTE_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="listen port (PALETTE_PORT, 8000)")
    parser.add_argument(
        "--data-dir",
        dest="data_dir",
        default=None,
        help="SQLite + blobs directory (PALETTE_DATA_DIR, ./palette-data)",
    )
    parser.add_argument(
        "--workers",
        type=_count,
        default=None,
        help="job worker threads (PALETTE_WORKERS, 2); serve --workers 0: API only",
    )


def _add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ssl-certfile",
        dest="ssl_certfile",
        default=None,
        help="serve HTTPS with this PEM certificate chain (PALETTE_SSL_CERTFILE); TLS 1.2+",
    )
    parser.add_argument(
        "--ssl-keyfile",
        dest="ssl_keyfile",
        default=None,
        help="the certificate's private key, PEM (PALETTE_SSL_KEYFILE)",
    )


def add_commands(commands: Any) -> None:
    """``serve`` and ``worker`` on a sub-command parser (the ``palette_native.commands`` hook)."""
    for name, text, handler in (
        ("serve", "run the HTTP service", serve),
        ("worker", "run a worker that processes queued jobs", worker),
    ):
        parser = commands.add_parser(name, help=text, description=text[0].upper() + text[1:])
        add_arguments(parser)
        if handler is worker:
            parser.add_argument(
                "--threads", type=_positive_int, default=None, help="job threads (PALETTE_WORKERS)"
            )
        if handler is serve:
            _add_tls_arguments(parser)
        parser.set_defaults(handler=handler)
    _add_admin_commands(commands)


def keys_create(args: argparse.Namespace) -> int:
    """Mint an API key in the data directory's backend; print the key, and only the key."""
    from .auth.keys import PEPPER_SECRET, KeyService
    from .backends import open_backends

    backends = open_backends(_settings(args))
    try:
        pepper = backends.secrets.get_or_create(PEPPER_SECRET, _token).encode()
        _, key = KeyService(backends.api_keys, pepper, backends.clock).create(
            args.tenant, args.role, args.name, args.expires_in
        )
    finally:
        backends.close()
    print(key)
    return 0


def keys_rotate(args: argparse.Namespace) -> int:
    """Re-wrap every stored data key under the first of ``PALETTE_ENCRYPTION_KEYS``."""
    from .backends import open_backends

    settings = _settings(args)
    backends = open_backends(settings)
    try:
        if backends.encryption is None:
            print("encryption at rest is off (PALETTE_ENCRYPTION_KEYS is unset)", file=sys.stderr)
            return 2
        report = backends.encryption.run()
    finally:
        backends.close()
    print(
        f"re-wrapped {report.rewrapped} data keys under {report.kid}; {report.current} already were"
    )
    return 0


def audit_verify(args: argparse.Namespace) -> int:
    """Check the audit log's hash chain; exit 1 naming every changed, removed or moved entry."""
    from .audit.chain import verify
    from .backends import audit_key, open_backends

    settings = _settings(args)
    backends = open_backends(settings)
    try:
        entries = list(backends.audit.all_entries())
        problems = verify(audit_key(settings, backends.secrets), entries)
    finally:
        backends.close()
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"audit log intact: {len(entries)} entries")
    return 0


def _token() -> str:
    import secrets

    return secrets.token_urlsafe()


def _add_admin_commands(commands: Any) -> None:
    from .auth.principal import ROLES

    keys = commands.add_parser(
        "keys", help="API keys and encryption keys", description="API keys and encryption keys"
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser(
        "create", help="mint an API key (prints only the key)", description="Mint an API key"
    )
    create.add_argument("--data-dir", dest="data_dir", default=None)
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", default="")
    create.add_argument(
        "--expires-in",
        dest="expires_in",
        type=_positive_int,
        default=None,
        help="seconds until the key expires (default: never)",
    )
    create.set_defaults(handler=keys_create)
    rotate = key_commands.add_parser(
        "rotate",
        help="re-wrap stored data keys under the first PALETTE_ENCRYPTION_KEYS key",
        description="Re-wrap stored data keys under the first PALETTE_ENCRYPTION_KEYS key",
    )
    rotate.add_argument("--data-dir", dest="data_dir", default=None)
    rotate.set_defaults(handler=keys_rotate)
    audit = commands.add_parser("audit", help="the audit log", description="The audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    check = audit_commands.add_parser(
        "verify",
        help="check the audit log's hash chain",
        description="Check the audit log's hash chain",
    )
    check.add_argument("--data-dir", dest="data_dir", default=None)
    check.set_defaults(handler=audit_verify)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service")
    parser.set_defaults(handler=serve)  # no command: serve
    add_commands(parser.add_subparsers(dest="command"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.handler(args)
    return status
