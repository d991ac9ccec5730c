"""The start/stop shape every SDK client shares, usable as ``async with``."""

from __future__ import annotations

from typing import Self

__all__ = ["AsyncClient"]


class AsyncClient:
    """Subclasses implement ``start`` and ``stop``; ``async with`` calls them."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
