"""The progress calls disk-objectstore 1.5 makes, block by block.

disk-objectstore calls ``callback(action, value)`` with ``action`` one of ``'init'``
(``value={'total': N, 'description': D}``), ``'update'`` (``value`` = progress since the last
update) and ``'close'`` (``value=None``), passing the two arguments by position in some places
and by keyword in others. Callers' callbacks see exactly the same calls here: the same blocks,
totals, descriptions, update batching and argument style.
"""

from __future__ import annotations

from typing import Callable, Iterable

# Rows per query when upstream lists the index.
_ROWS_PER_QUERY = 1000


def _every(total: int, per: int = 400) -> int:
    return max(int(total / per), 1)


def bulk_store_preamble(callback: Callable, raw, no_holes: bool) -> None:
    """The 'List existing' block a ``no_holes`` bulk write reports when packs hold objects."""
    if not no_holes:
        return
    total = sum(count for _, count in raw.pack_counts())
    if not total:
        return
    callback('init', {'total': total, 'description': 'List existing'})
    every = _every(total)
    since = 0
    left = total
    while left:
        chunk = min(_ROWS_PER_QUERY, left)
        left -= chunk
        since += chunk
        if since >= every:
            callback('update', value=since)
            since = 0
    if since:
        callback('update', since)
    callback('close', None)


def bulk_store(callback: Callable, count: int) -> None:
    """The 'Bulk storing' block of a bulk write of ``count`` objects."""
    callback('init', {'total': count, 'description': 'Bulk storing'})
    every = _every(count)
    since = 0
    for _ in range(count):
        since += 1
        if since >= every:
            callback('update', since)
            since = 0
    if since:
        callback('update', since)
    callback('close', value=None)


class Counter:
    """A block counting objects one by one, updates batched per 1/1000 of the total."""

    def __init__(self, callback: Callable | None, description: str, total: int, keyword_init: bool = False) -> None:
        self._callback = callback
        self._every = _every(total, 1000)
        self._since = 0
        if callback and keyword_init:
            callback(action='init', value={'total': total, 'description': description})
        elif callback:
            callback('init', {'total': total, 'description': description})

    def step(self) -> None:
        if not self._callback:
            return
        self._since += 1
        if self._since >= self._every:
            self._callback('update', self._since)
            self._since = 0

    def close(self) -> None:
        if not self._callback:
            return
        if self._since:
            self._callback('update', self._since)
        self._callback('close', None)


def counted_block(callback: Callable, description: str, total: int, keyword_init: bool = False) -> None:
    """A whole counting block at once (work that finished without steps of its own)."""
    counter = Counter(callback, description, total, keyword_init)
    for _ in range(total):
        counter.step()
    counter.close()


def validate(callback: Callable, loose: int, pack_counts: Iterable[tuple[int, int]]) -> None:
    """The blocks of ``validate``: loose objects one by one, then each pack with rows."""
    callback(action='init', value={'total': loose, 'description': 'Loose objects'})
    for _ in range(loose):
        callback(action='update', value=1)
    callback(action='close', value=None)
    for pack_id, count in sorted(pack_counts):
        callback(action='init', value={'total': count, 'description': f'Pack {pack_id}'})
        every = _every(count)
        since = 0
        for _ in range(count):
            since += 1
            if since >= every:
                callback(action='update', value=since)
                since = 0
        if since:
            callback(action='update', value=since)
        callback(action='close', value=None)


def repack_block(callback: Callable, pack_id: int, total: int, sizes: Iterable[int]) -> None:
    """One pack's block of ``repack``: the container's packed total, then each object's size."""
    callback('init', {'total': total, 'description': f'Repack {pack_id}'})
    for size in sizes:
        callback('update', size)
    callback('close', None)
