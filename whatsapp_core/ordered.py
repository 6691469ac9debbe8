"""Keyed ordered workers: jobs of one key run one after another, keys run side by side.

Used twice: bot turns after the webhook ack (key = conversation) and outbound sends
(key = recipient, so replies keep their order while one slow or throttled contact never
holds up another).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Job = TypeVar("Job")


class OrderedWorkers(Generic[Job]):
    """Run ``handle(job)`` for submitted jobs, in submit order per key. A handler may
    :meth:`take` later jobs of its key (to merge them). A handler that raises is logged
    and the key's next job still runs."""

    def __init__(
        self,
        name: str,
        handle: Callable[[Job], Awaitable[None]],
        key: Callable[[Job], str],
    ) -> None:
        self._name = name
        self._handle = handle
        self._key = key
        self._queues: dict[str, deque[Job]] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, jobs: Iterable[Job]) -> None:
        """Queue ``jobs`` behind what each key already has queued."""
        for job in jobs:
            key = self._key(job)
            self._queues.setdefault(key, deque()).append(job)
            if key not in self._workers:
                self._idle.clear()
                self._workers[key] = asyncio.create_task(self._work(key), name=self._name)

    def take(self, key: str, wanted: Callable[[Job], bool]) -> list[Job]:
        """Remove and return the queued jobs of ``key`` that are ``wanted``, from the front
        of its queue up to the first job that is not."""
        queue = self._queues.get(key)
        taken: list[Job] = []
        while queue and wanted(queue[0]):
            taken.append(queue.popleft())
        return taken

    def waiting(self, key: str) -> tuple[Job, ...]:
        """The jobs of ``key`` queued behind the one running, in submit order."""
        return tuple(self._queues.get(key, ()))

    async def _run_one(self, job: Job) -> None:
        try:
            await self._handle(job)
        except Exception:  # noqa: BLE001 - one bad job must not stop the key's worker
            logger.exception("%s: job failed", self._name)

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                await self._run_one(queue.popleft())
        finally:
            del self._workers[key]
            del self._queues[key]
            if not self._workers:
                self._idle.set()

    @property
    def pending(self) -> int:
        """Jobs queued plus keys with a job in progress."""
        return sum(len(queue) for queue in self._queues.values()) + len(self._workers)

    async def wait_idle(self) -> None:
        """Return once every submitted job has run."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Cancel the workers; jobs not yet run are dropped from memory (not from the store)."""
        tasks = list(self._workers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
