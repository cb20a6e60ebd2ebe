"""Read-only store access for the processes that do not write it (workers, control).

`FollowingReader` wraps a `StoreReader` and refreshes its maps when the shared
control block says the files under it changed: retention moved the CommitLog's
start (files deleted by the writer and dispatcher must not stay mapped here),
or the writer restarted (the supervisor's recovery may have deleted files past
the recovered end, a warmed next file among them, that the new writer creates
again; a map of the deleted file would serve its stale bytes). Recovery
finishes before the generation is published, so refreshing on the new
generation never maps a file about to go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rocketpy.ipc.control_block import ControlBlock

if TYPE_CHECKING:
    from rocketpy.store.file_store import StoreReader


class FollowingReader:
    def __init__(self, reader: StoreReader, control_block: ControlBlock) -> None:
        self.store_reader = reader
        self.control_block = control_block
        self._min_phys = 0
        self._generation = 0

    def get(self) -> StoreReader:
        """The reader, refreshed first when the files under it changed."""
        _, _, _, generation, min_phys, _ = self.control_block.writer_fields()
        if min_phys != self._min_phys or generation != self._generation:
            self.store_reader.refresh()
            self._min_phys = min_phys
            self._generation = generation
        return self.store_reader

    @property
    def committed_offset(self) -> int:
        return int(self.control_block.writer_fields()[0])

    def close(self) -> None:
        self.store_reader.close()
