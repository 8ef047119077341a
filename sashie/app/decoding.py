"""The memory the server spends decoding example images, bounded across all requests.

A search with example images holds their bytes and, while one is decoded, its pixels and a
copy of them (a 6000 x 6600 PNG takes about 240 MB) until it is shrunk to the encoder's
size. Sixteen such searches at once took gigabytes; so each search first reserves what its
images will take, from their headers, out of one budget (`SASHIE_DECODE_MB`, default 512). A
search that finds the budget spent waits up to WAIT_SECONDS for others to finish, then gets
503 with Retry-After. Freed memory is handed back to the system afterwards, so that the
server's size falls back when the burst is over (`benchmarks/server_load.py --big-images`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from ..errors import SashieError

DEFAULT_BUDGET_MB = 512
WAIT_SECONDS = 20.0
RETRY_AFTER = 5  # seconds a client is told to wait when the budget stays spent
BYTES_A_PIXEL = 6  # Pillow's 4 a pixel, and a converted copy's (benchmarks/server_load.py)
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


class Busy(SashieError):
    """The server is decoding as many images as its memory budget allows: try again soon."""

    def __init__(self) -> None:
        super().__init__(
            "the server is busy decoding other searches' images; try again in a few seconds"
        )
        self.retry_after = RETRY_AFTER


class DecodeBudget:
    """Bytes of example images being read and decoded, across every request of a server."""

    def __init__(self, total: int | None = None, wait: float = WAIT_SECONDS) -> None:
        self.total = total if total is not None else budget_from_environment()
        self.wait = wait
        self.used = 0
        self._changed: asyncio.Condition | None = None  # made on the server's event loop

    @asynccontextmanager
    async def held(self, amount: int) -> AsyncIterator[None]:
        """Hold `amount` bytes of the budget (a search larger than all of it is served
        alone); `Busy` when they are not free within `self.wait` seconds."""
        amount = min(max(amount, 0), self.total)
        if self._changed is None:
            self._changed = asyncio.Condition()
        changed = self._changed
        async with changed:
            try:
                await asyncio.wait_for(
                    changed.wait_for(lambda: self.used + amount <= self.total), self.wait
                )
            except TimeoutError:
                raise Busy() from None
            self.used += amount
        try:
            yield
        finally:
            async with changed:
                self.used -= amount
                changed.notify_all()
            release_freed_memory()


def budget_from_environment() -> int:
    """`SASHIE_DECODE_MB` in bytes (the default when unset or not a positive number)."""
    try:
        megabytes = float(os.environ.get("SASHIE_DECODE_MB", DEFAULT_BUDGET_MB))
    except ValueError:
        megabytes = DEFAULT_BUDGET_MB
    return int((megabytes if megabytes > 0 else DEFAULT_BUDGET_MB) * 2**20)


def cost(sizes: list[int], pixels: list[int]) -> int:
    """What a search's example images take while they are read and decoded: all their bytes,
    and the pixels of the largest (they are decoded one at a time)."""
    return sum(sizes) + BYTES_A_PIXEL * max(pixels, default=0)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


LIBC = _libc()  # glibc; elsewhere the system's own allocator returns what it returns


def keep_large_blocks_apart() -> None:
    """Large blocks (a decoded image, its copies) each get their own mapping, returned to
    the system when freed, rather than glibc's heap, which keeps them (its dynamic threshold
    otherwise rises to the largest block freed)."""
    if LIBC is not None:
        with suppress(Exception):
            LIBC.mallopt(M_MMAP_THRESHOLD, 1 << 20)


def release_freed_memory() -> None:
    """Hand the memory freed inside the heap back to the system (glibc's malloc_trim)."""
    if LIBC is not None:
        with suppress(Exception):
            LIBC.malloc_trim(0)
