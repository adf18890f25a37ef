"""What a node remembers about the ends of a collection's rows, so popping
from one end does not open a LevelDB range read on every pop.

Popping from the front of a sorted set (ZPOPMIN) or a set of rows read in
order otherwise costs a LevelDB iterator per pop (a snapshot and a seek,
about 20 us, more than the rest of the pop), and, until LevelDB compacts,
a step over the deletion marker of every row popped before. For a range
read ``(start, stop, reverse)`` of one collection an :class:`_End` keeps

* ``bound``: no row lies before it (forward: in ``[start, bound)``;
  reverse: in ``[bound, stop)``), and
* ``keys``: the next keys from ``bound`` on, in read order; every row
  between ``bound`` and the last of them is one of them.

A read walks ``keys`` with point reads and opens an iterator only past
them, taking the next :data:`AHEAD` keys at once. A live row written
inside the known span is added (:meth:`RangeEnds.written`), so the two
facts stay true, and a read returns exactly what a plain range read
would. This is node-local memory, never replicated state.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from ..storage import layout

AHEAD = 16
"""Keys taken at once past the known ones."""
RANGES_PER_COLLECTION = 4
"""Ranges remembered per collection: its ends, a sorted set's index; reads
from random places (SPOP) are not worth it."""
COLLECTIONS = 1000
"""Collections remembered at most (then everything is forgotten)."""

Rows = Callable[[bytes, bytes, bool], Iterator[tuple[bytes, bytes]]]
Get = Callable[[bytes], "bytes | None"]


@dataclass
class _End:
    bound: bytes
    keys: list[bytes] = field(default_factory=list)


class RangeEnds:
    """The remembered ends of collections' range reads (see the module doc)."""

    def __init__(self) -> None:
        self._by_prefix: dict[bytes, dict[tuple[bytes, bytes, bool], _End]] = {}

    def clear(self) -> None:
        self._by_prefix = {}

    def written(self, key: bytes) -> None:
        """A live row was written at ``key``."""
        ends = self._by_prefix.get(key[: layout.ROW_HEADER])
        if not ends:
            return
        for (start, stop, reverse), end in ends.items():
            if not start <= key < stop:
                continue
            keys = end.keys
            if len(keys) > 4 * AHEAD:
                del keys[AHEAD:]  # a shorter known span stays true
            if not reverse:
                if key < end.bound:
                    end.bound = key
                    keys.insert(0, key)
                elif keys and key <= keys[-1] and key not in keys:
                    insort(keys, key)
            else:
                if key >= end.bound:
                    end.bound = key + b"\x00"
                    keys.insert(0, key)
                elif keys and key >= keys[-1] and key not in keys:
                    insort(keys, key, key=_Desc)

    def read(
        self, start: bytes, stop: bytes, reverse: bool, rows: Rows, get: Get
    ) -> Iterator[tuple[bytes, bytes]]:
        """The rows of ``[start, stop)`` in order (``reverse``d), as
        ``rows(lo, hi, reverse)`` would give them, with ``get`` reading one."""
        ends = self._by_prefix.get(start[: layout.ROW_HEADER])
        if ends is None:
            if len(self._by_prefix) >= COLLECTIONS:
                self._by_prefix = {}
            ends = self._by_prefix[start[: layout.ROW_HEADER]] = {}
        which = (start, stop, reverse)
        end = ends.get(which)
        if end is None:
            if len(ends) >= RANGES_PER_COLLECTION:
                yield from rows(start, stop, reverse)
                return
            end = ends[which] = _End(stop if reverse else start)
        keys = end.keys
        # Rows known dead at the front move the bound past them.
        value = None
        while keys:
            value = get(keys[0])
            if value is not None:
                break
            gone = keys.pop(0)
            end.bound = gone if reverse else gone + b"\x00"
        last = None
        for i, key in enumerate(list(keys)):
            if i:  # the first one's value was read just above
                value = get(key)
            if value is not None:
                yield key, value
            last = key
        # Past the known keys: a range read, whose first keys become known.
        if last is None:
            lo, hi = (start, end.bound) if reverse else (end.bound, stop)
        else:
            lo, hi = (start, last) if reverse else (last + b"\x00", stop)
        if not lo < hi:
            return
        more = rows(lo, hi, reverse)
        taken = list(islice(more, AHEAD))
        if end.keys is keys and (not keys or keys[-1] == last):
            keys.extend(k for k, _ in taken)
        yield from taken
        yield from more


class _Desc:
    """Orders keys descending (for a reverse read's known keys)."""

    __slots__ = ("key",)

    def __init__(self, key: bytes) -> None:
        self.key = key

    def __lt__(self, other: _Desc) -> bool:
        return self.key > other.key
