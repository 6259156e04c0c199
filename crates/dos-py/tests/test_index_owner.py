"""dos owns the index: no Python SQLite connection to a dos container's ``packs.idx``.

Two SQLite libraries on one file in one process defeat each other's POSIX locks: when one
closes its connection it believes it is the last one, checkpoints and deletes the WAL and its
index, and the other's next query fails with "disk I/O error". Every operation of
``dos_objectstore.Container`` (those disk-objectstore implements with SQLAlchemy too) must
therefore go through dos.
"""

from __future__ import annotations

import io

import pytest

import disk_objectstore
from disk_objectstore import CompressMode


def _exercise(container, source):
    keys = container.add_objects_to_pack([b'a' * 100, b'b' * 200, b'c' * 300])
    container.add_object(b'loose one')
    mapping = container.import_objects(list(source.list_all_objects()), source, callback=lambda *a, **k: None)
    container.delete_objects([keys[1]])
    meta = container.get_object_meta(keys[0])
    container.repack_pack(str(meta.pack_id), compress_mode=CompressMode.KEEP)
    container._vacuum()  # pylint: disable=protected-access
    container.close()
    container.add_streamed_objects_to_pack([io.BytesIO(b'after close')])
    container.close()
    return keys, mapping


def test_no_python_sqlite_connection(new_impl_container, impl_name, tmp_path):
    source = disk_objectstore.Container(tmp_path / 'upstream-source')
    source.init_container()
    source_keys = [source.add_object(bytes([i]) * (i + 1)) for i in range(20)]
    source.pack_all_loose()
    container = new_impl_container()
    keys, mapping = _exercise(container, source)
    assert sorted(mapping) == sorted(source_keys)
    for _ in range(3):
        # Reopened after every close: reads keep working (they failed with "disk I/O error"
        # when an inherited method had opened a SQLAlchemy session on the same index).
        assert container.get_object_content(keys[0]) == b'a' * 100
        assert container.get_objects_content(source_keys) == {k: source.get_object_content(k) for k in source_keys}
        container.close()
    assert container.validate().is_valid()
    if impl_name == 'dos':
        import dos_objectstore  # pylint: disable=import-outside-toplevel

        assert container._operation_session is None  # pylint: disable=protected-access
        assert container._container_session is None  # pylint: disable=protected-access
        with pytest.raises(dos_objectstore.DosError):
            container._get_operation_session()  # pylint: disable=protected-access
    source.close()
