"""The PaletteEngine HTTP service: a Starlette app built by ``create_app(settings)``."""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    # Imported lazily so ``import service.settings`` stays cheap (the CLI imports it).
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
