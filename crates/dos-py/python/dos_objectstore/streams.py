"""Stream objects handed to and returned by ``Container``."""

from __future__ import annotations


import zlib

from disk_objectstore.utils import ZlibLikeBaseStreamDecompresser

from ._dos import PackedStream  # noqa: F401  (uncompressed packed objects; native)


class CompressedObjectStream(ZlibLikeBaseStreamDecompresser):
    """A compressed packed object (zlib, or zstd in a ``zstd+N`` container) read as its
    uncompressed bytes, seekable in every direction, with nothing ever written to disk.

    The decoding is native (``_dos.CompressedStream``); the class derives from
    ``disk_objectstore.utils.ZlibLikeBaseStreamDecompresser`` so that code checking for
    disk-objectstore's compressed streams keeps working.
    """

    def __init__(self, native) -> None:  # pylint: disable=super-init-not-called
        # Nothing of the base class's state is used: every call goes to the native stream.
        self._native = native

    @property
    def decompressobj_class(self):
        return zlib.decompressobj

    @property
    def decompress_error(self):
        return zlib.error

    @property
    def mode(self) -> str:
        return self._native.mode

    @property
    def closed(self) -> bool:
        return self._native.closed

    def close(self) -> None:
        self._native.close()

    @staticmethod
    def seekable() -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._native.read(-1 if size is None else size)

    def readinto(self, buffer) -> int:
        return self._native.readinto(buffer)

    def seek(self, target: int, whence: int = 0) -> int:
        return self._native.seek(target, whence)

    def tell(self) -> int:
        return self._native.tell()

    def __enter__(self):
        return self

    def __exit__(self, *args) -> None:
        self.close()

    def __repr__(self) -> str:
        return f'<CompressedObjectStream {self._native!r}>'


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
