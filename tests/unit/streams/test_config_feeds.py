"""ConfigFeeds starts its views side by side, and stops them all when one cannot start."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streams.config_feeds import ConfigFeeds


class View:
    def __init__(self, log: list[str], name: str, fails: bool = False) -> None:
        self.log, self.name, self.fails = log, name, fails

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        await asyncio.sleep(0.01)
        if self.fails:
            raise OSError(f"{self.name} unreachable")
        self.log.append(f"started {self.name}")

    async def wait_caught_up(self, timeout: float) -> None:
        self.log.append(f"caught up {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


async def test_views_start_side_by_side_then_catch_up() -> None:
    log: list[str] = []
    feeds = SimpleNamespace(views=[View(log, "a"), View(log, "b")], ready=asyncio.Event())
    await ConfigFeeds.on_start(feeds)  # type: ignore[arg-type]
    assert log == ["start a", "start b", "started a", "started b", "caught up a", "caught up b"]
    assert feeds.ready.is_set()


async def test_a_view_that_cannot_start_stops_them_all_and_fails_the_start() -> None:
    log: list[str] = []
    feeds = SimpleNamespace(views=[View(log, "a"), View(log, "b", fails=True)],
                            ready=asyncio.Event())
    with pytest.raises(OSError, match="b unreachable"):
        await ConfigFeeds.on_start(feeds)  # type: ignore[arg-type]
    assert log[-2:] == ["stop a", "stop b"] and not feeds.ready.is_set()
