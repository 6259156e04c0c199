"""Stream objects handed to and returned by ``Container``."""

from __future__ import annotations

import io

from disk_objectstore.utils import ZlibStreamDecompresser

from ._dos import PackedStream  # noqa: F401  (uncompressed packed objects; native)


class CompressedObjectStream(ZlibStreamDecompresser):
    """A compressed packed object read as its uncompressed bytes, seekable in every direction.

    It is a ``disk_objectstore.utils.ZlibStreamDecompresser`` (code that checks for one keeps
    working), but it knows the object's size, so ``seek(n, SEEK_END)`` and ``tell()`` after it
    cost nothing, and it never writes anything to disk: a backward seek decompresses again
    from the start of the object instead of making the object loose.
    """

    def __init__(self, compressed_stream, size: int) -> None:
        super().__init__(compressed_stream, lazy_uncompressed_stream=None)
        self._size = size
        # The logical position; the decompressor is at `self._pos` and catches up on read.
        self._target = 0

    def tell(self) -> int:
        return self._target

    def seek(self, target: int, whence: int = 0) -> int:
        if whence == io.SEEK_SET:
            new = target
        elif whence == io.SEEK_CUR:
            new = self._target + target
        elif whence == io.SEEK_END:
            new = self._size + target
        else:
            raise ValueError('Invalid value for `whence`: only 0, 1 and 2 are valid values.')
        if new < 0:
            raise ValueError(f'negative seek position {new}')
        self._target = new
        return new

    def _catch_up(self) -> None:
        """Move the decompressor to the logical position."""
        if self._target < self._pos:
            self._compressed_stream.seek(0)
            self._decompressor = self.decompressobj_class()
            self._internal_buffer = b''
            self._pos = 0
        while self._pos < self._target and self._pos < self._size:
            if not self._read_compressed(min(524288, self._target - self._pos)):
                break

    def read(self, size: int = -1) -> bytes:
        if self._target >= self._size:
            return b''
        self._catch_up()
        data = self._read_compressed(size)
        self._target = self._pos
        return data

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast('B')
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class OpeningStream:
    """A stream that enters a ``LazyOpener``-like object (a context manager that returns a
    file) on the first read and leaves it at the end of the data, so that a bulk write opens
    one file at a time per reading thread."""

    def __init__(self, opener) -> None:
        self._opener = opener
        self._handle = None
        self._done = False

    @property
    def path(self):
        """The opener's path, when it has one."""
        return getattr(self._opener, 'path', None)

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b''
        if self._handle is None:
            self._handle = self._opener.__enter__()
        data = self._handle.read(size)
        if not data:
            self.close()
        return data

    def close(self) -> None:
        """Leave the opener's context (closing its file)."""
        if self._handle is not None:
            self._handle = None
            self._opener.__exit__(None, None, None)
        self._done = True
