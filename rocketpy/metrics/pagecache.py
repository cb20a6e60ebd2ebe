"""Page-cache residency of files, with mincore(2) through ctypes.

Maps each file read-only (no page is touched, so nothing is faulted in), asks
the kernel which pages are resident and unmaps. Cost is one syscall per file
and one byte per page of the vector; callers bound the files measured.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.mmap.restype = ctypes.c_void_p
        lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                             ctypes.c_long]
        lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
        _libc = lib
    return _libc


def resident_pages(path: str) -> tuple[int, int]:
    """(resident pages, total pages) of a file; (0, 0) for an empty file. OSError if it cannot be read."""
    size = os.path.getsize(path)
    if size == 0:
        return 0, 0
    lib = _lib()
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = lib.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
        try:
            vec = ctypes.create_string_buffer(pages)
            if lib.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore of {path} failed")
            resident = sum(1 for b in vec.raw if b & 1)
        finally:
            lib.munmap(addr, size)
    finally:
        os.close(fd)
    return resident, pages
