"""A drop-in for disk-objectstore's ``Container``, running on the dos pack store.

``dos_objectstore.Container`` is a subclass of ``disk_objectstore.Container``: it reads and
writes the same on-disk containers, returns the same types and raises the same exceptions,
and does the work in Rust with the interpreter lock released.

    from dos_objectstore import Container

    with Container('/path/to/container') as c:
        key = c.add_object(b'hello')
        assert c.get_object_content(key) == b'hello'
"""

from disk_objectstore import CompressMode, ObjectType

from ._dos import DosError, __version__
from .container import Container

__all__ = ('CompressMode', 'Container', 'DosError', 'ObjectType', '__version__')
