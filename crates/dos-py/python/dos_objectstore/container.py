"""``Container``: disk-objectstore's public API on the dos pack store.

The class inherits what is pure bookkeeping from ``disk_objectstore.Container`` (the folder
helpers, the cached ``config.json`` properties, ``is_initialised``, ``lock_pack``,
``get_lazy_loose_stream``) and runs everything that reads or writes objects through
``_dos.RawContainer``. Progress callbacks get exactly the calls disk-objectstore 1.5 makes
(the same blocks, descriptions, totals and argument style; see ``callbacks.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import disk_objectstore
from disk_objectstore.dataclasses import ObjectCount, ObjectMeta, TotalSize, ValidationIssues
from disk_objectstore.exceptions import InconsistentContent, NotExistent, NotInitialised
from disk_objectstore.utils import (
    CallbackStreamWrapper,
    CompressMode,
    LazyOpener,
    get_compressobj_instance,
    get_stream_decompresser,
    is_known_hash,
    rename_callback,
)

from . import callbacks
from ._dos import DosError, RawContainer
from .streams import CompressedObjectStream, OpeningStream

ObjectType = disk_objectstore.ObjectType

_NOT_INITIALISED = 'The container is not initialised yet - use .init_container() first'


_TYPES = {t.value: t for t in ObjectType}
_new_object = object.__new__


def _meta(row: tuple) -> ObjectMeta:
    """An ``ObjectMeta`` from a native row ``(type, size, pack_id, compressed, offset, length)``.

    ``ObjectMeta`` is a frozen dataclass without ``__post_init__``: its fields live in the
    instance ``__dict__``, which is filled here directly (the generated ``__init__`` sets them
    one ``object.__setattr__`` at a time, the largest cost of a bulk read per object). The
    result equals, hashes and prints like one built by ``ObjectMeta(...)``.
    """
    meta = _new_object(ObjectMeta)
    d = meta.__dict__
    d['type'] = _TYPES[row[0]]
    d['size'] = row[1]
    d['pack_id'] = row[2]
    d['pack_compressed'] = row[3]
    d['pack_offset'] = row[4]
    d['pack_length'] = row[5]
    return meta


def _identity(folder) -> tuple | None:
    """What tells one container's ``config.json`` from another's at the same path."""
    try:
        st = os.stat(os.path.join(folder, 'config.json'))
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _loose_meta(size: int) -> ObjectMeta:
    return _meta(('loose', size, None, None, None, None))


class Container(disk_objectstore.Container):
    """A container of objects in a folder, read and written by dos.

    Opens and writes the same containers as ``disk_objectstore.Container``, which it subclasses;
    one instance may be used from several threads at once.
    """

    def __init__(self, folder: str | Path) -> None:
        # ``s3://bucket/prefix``: the snapshot published there (``dos offload --publish``),
        # read-only; its index and config are kept in a local cache folder, which then serves
        # as the container's folder.
        self._url: str | None = None
        raw = None
        if isinstance(folder, str) and folder.startswith('s3://'):
            raw = RawContainer.open_url(folder)
            self._url = folder
            folder = raw.folder()
        super().__init__(folder)
        self._raw_container: RawContainer | None = raw
        self._raw_lock = threading.Lock()
        # After close(): the native container kept for the next use, and the identity of the
        # config.json it was opened with (see close()).
        self._kept: tuple[RawContainer, tuple] | None = None

    # -- the native container ------------------------------------------------------------------

    def _raw(self, missing: type[Exception] = FileNotFoundError) -> RawContainer:
        """The open native container, opened on first use.

        On a folder without a container, raise what disk-objectstore raises for the calling
        method: ``NotInitialised`` for some, ``FileNotFoundError`` (its missing index) for most.
        """
        raw = self._raw_container
        if raw is None:
            with self._raw_lock:
                if self._raw_container is None and self._kept is not None:
                    kept, ident = self._kept
                    self._kept = None
                    if _identity(self._folder) == ident:
                        self._raw_container = kept
                    else:
                        # Another container now: forget the cached config.json as well.
                        self._config = None
                        self._current_pack_id = None
                if self._raw_container is None:
                    if not self.is_initialised:
                        if missing is FileNotFoundError:
                            raise FileNotFoundError(f'Pack index {self._get_pack_index_path()} does not exist')
                        if missing is ValueError:
                            raise ValueError('Invalid use of function, please first initialise the container.')
                        raise missing(_NOT_INITIALISED)
                    if self._url is not None:
                        self._raw_container = RawContainer.open_url(self._url)
                    else:
                        self._raw_container = RawContainer.open(str(self._folder))
                raw = self._raw_container
        return raw

    def close(self) -> None:
        """Close the container (it is opened again if it is used again).

        aiida-core enters and leaves the container around every single call (``with container:
        container.add_streamed_object(...)``), and opening dos's index costs about a millisecond,
        so the native container is kept for the next use, unless the folder then holds another
        container (its ``config.json`` changed: re-initialised or replaced).
        """
        with self._raw_lock:
            raw = self._raw_container
            self._raw_container = None
            ident = _identity(self._folder) if raw is not None else None
            self._kept = (raw, ident) if raw is not None and ident is not None else None
        super().close()

    # -- creation --------------------------------------------------------------------------------

    def init_container(
        self,
        clear: bool = False,
        pack_size_target: int = 4 * 1024 * 1024 * 1024,
        loose_prefix_len: int = 2,
        hash_type: str = 'sha256',
        compression_algorithm: str = 'zlib+1',
    ) -> None:
        """Create the container (``clear=True``: delete whatever is in the folder first)."""
        if loose_prefix_len < 0:
            raise ValueError('The loose prefix length can only be zero or a positive integer')
        if pack_size_target <= 0:
            raise ValueError('The pack size target can only be a non-zero positive integer')
        if not is_known_hash(hash_type):
            raise ValueError(f'Unknown hash type "{hash_type}"')
        if clear:
            self.close()
            self._kept = None
            if self._folder.exists():
                shutil.rmtree(self._folder)
            self._config = None
            self._current_pack_id = None
        if self.is_initialised:
            raise FileExistsError(
                'The container already exists, so you cannot initialise it - '
                'use the clear option if you want to overwrite with a clean one'
            )
        os.makedirs(self._folder, exist_ok=True)
        if os.listdir(self._folder):
            raise FileExistsError(
                'There is already some file or folder in the Container folder, I cannot initialise it!'
            )
        # The same checks of the algorithm as upstream's, in the same place (after the folder
        # exists): unknown names raise ValueError. `zstd+N` (dos only: disk-objectstore cannot
        # read such a container) is checked by the native side, which raises ValueError too.
        if not compression_algorithm.startswith('zstd+'):
            get_compressobj_instance(compression_algorithm)
            get_stream_decompresser(compression_algorithm)
        raw = RawContainer.init(str(self._folder), pack_size_target, loose_prefix_len, hash_type, compression_algorithm)
        with self._raw_lock:
            self._raw_container = raw
            self._kept = None
        self._config = None

    # -- reading ---------------------------------------------------------------------------------

    def get_object_content(self, hashkey: str) -> bytes:
        """The content of the object ``hashkey`` (``NotExistent`` if there is none)."""
        return self._raw().get_object_content(hashkey)

    def get_objects_content(self, hashkeys: list[str], skip_if_missing: bool = True) -> dict[str, bytes | None]:
        """The contents of ``hashkeys`` (each once), packed objects in pack order, then loose ones."""
        keys = list(hashkeys)
        retrieved: dict[str, bytes | None] = dict(self._raw().get_objects_content(keys))
        if not skip_if_missing:
            for hashkey in dict.fromkeys(keys):
                if hashkey not in retrieved:
                    retrieved[hashkey] = None
        return retrieved

    @contextmanager
    def get_object_stream(self, hashkey: str) -> Iterator[Any]:
        """A context manager yielding a readable, seekable stream of the object."""
        with self.get_object_stream_and_meta(hashkey) as (stream, _):
            yield stream

    @contextmanager
    def get_object_stream_and_meta(self, hashkey: str) -> Iterator[tuple[Any, ObjectMeta]]:
        """A context manager yielding ``(stream, meta)`` for one object."""
        with self.get_objects_stream_and_meta([hashkey], skip_if_missing=False) as triplets:
            for _, stream, meta in triplets:
                if stream is None:
                    raise NotExistent(f'No object with hash key {hashkey}')
                yield stream, meta

    @contextmanager
    def get_objects_stream_and_meta(
        self, hashkeys: Iterable[str], skip_if_missing: bool = True
    ) -> Iterator[Iterator[tuple[str, Any, ObjectMeta]]]:
        """A context manager yielding a generator of ``(hashkey, stream, meta)``.

        Packed objects come pack by pack in offset order, then loose ones, then (with
        ``skip_if_missing=False``) the missing ones with ``stream=None``. Each stream is valid
        until the generator moves on.
        """
        yield self._visit(hashkeys, skip_if_missing, with_streams=True)

    def get_objects_meta(self, hashkeys: Iterable[str], skip_if_missing: bool = True) -> Iterator[tuple[str, ObjectMeta]]:
        """A generator of ``(hashkey, meta)``, in the order of ``get_objects_stream_and_meta``."""
        return self._visit(hashkeys, skip_if_missing, with_streams=False)

    def get_object_meta(self, hashkey: str) -> ObjectMeta:
        """The metadata of one object (``NotExistent`` if there is none)."""
        meta = _meta(self._raw().get_object_meta(hashkey))
        if meta.type == ObjectType.MISSING:
            raise NotExistent(f'No object with hash key {hashkey}')
        return meta

    def _visit(self, hashkeys: Iterable[str], skip_if_missing: bool, with_streams: bool, retry: bool = True):
        raw = self._raw()
        rows = raw.locate(list(dict.fromkeys(hashkeys)))
        pack_handle = None
        pack_id = None
        vanished: list[str] = []
        missing: list[tuple[str, ObjectMeta]] = []
        try:
            for hashkey, row in rows:
                meta = _meta(row)
                if meta.type == ObjectType.PACKED:
                    if not with_streams:
                        yield hashkey, meta
                        continue
                    if pack_id != meta.pack_id:
                        if pack_handle is not None:
                            pack_handle.close()
                        pack_handle = raw.open_pack(meta.pack_id)
                        pack_id = meta.pack_id
                    if pack_handle is None:
                        # A repack moved it and removed its pack since the lookup.
                        vanished.append(hashkey)
                        continue
                    if meta.pack_compressed:
                        reader = CompressedObjectStream(
                            pack_handle.compressed_stream(meta.pack_offset, meta.pack_length, meta.size)
                        )
                    else:
                        reader = pack_handle.stream(meta.pack_offset, meta.pack_length)
                    yield hashkey, reader, meta
                elif meta.type == ObjectType.LOOSE:
                    if pack_handle is not None:
                        pack_handle.close()
                        pack_handle, pack_id = None, None
                    path = self._get_loose_path_from_hashkey(hashkey)
                    try:
                        if not with_streams:
                            size = path.stat().st_size
                        else:
                            handle = open(path, 'rb')
                    except FileNotFoundError:
                        # Packed by a concurrent process and cleaned since the lookup.
                        vanished.append(hashkey)
                        continue
                    if not with_streams:
                        yield hashkey, _loose_meta(size)
                        continue
                    with handle:
                        yield hashkey, handle, _loose_meta(os.fstat(handle.fileno()).st_size)
                else:
                    missing.append((hashkey, meta))
        finally:
            # Streams are valid until the generator moves to another pack or ends.
            if pack_handle is not None:
                pack_handle.close()
        if vanished and retry:
            # What vanished from loose/ must be in a pack by now, and what vanished with a
            # repacked pack is in its new one: look once more.
            for item in self._visit(vanished, skip_if_missing=False, with_streams=with_streams, retry=False):
                if item[-1].type == ObjectType.MISSING:
                    missing.append((item[0], item[-1]))
                else:
                    yield item
        if not skip_if_missing:
            for hashkey, meta in missing:
                yield (hashkey, None, meta) if with_streams else (hashkey, meta)

    def has_objects(self, hashkeys: list[str] | tuple[str, ...]) -> list[bool]:
        """For each key, whether the container has the object (answers in the order given)."""
        if iter(hashkeys) is hashkeys:
            # Upstream's lookup uses an iterator up before it answers, so it answers [].
            self._raw()
            for _ in hashkeys:
                pass
            return []
        return self._raw().has_objects(list(hashkeys))

    def list_all_objects(self) -> Iterator[str]:
        """Every key, packed and loose, each once."""
        yield from self._raw().list_all_objects()

    def count_objects(self) -> ObjectCount:
        """Numbers of packed objects, loose files and pack files."""
        packed, loose, pack_files = self._raw().count_objects()
        return ObjectCount(packed=packed, loose=loose, pack_files=pack_files)

    def get_total_size(self) -> TotalSize:
        """Sizes of the objects and of the files holding them."""
        packed, packed_on_disk, packfiles, indexes, loose = self._raw().get_total_size()
        return TotalSize(
            total_size_packed=packed,
            total_size_packed_on_disk=packed_on_disk,
            total_size_packfiles_on_disk=packfiles,
            total_size_packindexes_on_disk=indexes,
            total_size_loose=loose,
        )

    # -- writing ---------------------------------------------------------------------------------

    def add_object(self, content: bytes) -> str:
        """Write a loose object; returns its key."""
        if not isinstance(content, bytes):
            content = bytes(memoryview(content))
        return self._raw(NotInitialised).add_object(content)

    def add_streamed_object(self, stream) -> str:
        """Write a loose object read from ``stream`` (from its current position to the end)."""
        return self._raw(NotInitialised).add_streamed_object(stream)

    def add_objects_to_pack(
        self,
        content_list: list[bytes] | tuple[bytes, ...],
        compress: bool = False,
        no_holes: bool = False,
        no_holes_read_twice: bool = True,
        callback: Callable | None = None,
        do_fsync: bool = True,
        do_commit: bool = True,
    ) -> list[str]:
        """Write contents straight into packs; returns their keys in order (duplicates too).

        The pack bytes are always synced before the index commit: ``do_fsync`` and
        ``do_commit`` cannot make a write less durable here, and ``no_holes_read_twice`` is
        not needed (an object is hashed before it is written).
        """
        raw = self._raw(ValueError)
        contents = [c if isinstance(c, bytes) else bytes(memoryview(c)) for c in content_list]
        return [key for key, _ in self._to_pack(raw, contents, compress, no_holes, callback)]

    def add_streamed_objects_to_pack(
        self,
        stream_list,
        compress: bool = False,
        open_streams: bool = False,
        no_holes: bool = False,
        no_holes_read_twice: bool = True,
        callback: Callable | None = None,
        do_fsync: bool = True,
        do_commit: bool = True,
    ) -> list[str]:
        """Write streams (with ``open_streams``, context managers such as ``LazyOpener`` that
        give one when entered) into packs; returns their keys in order (duplicates too)."""
        raw = self._raw()
        items = []
        for stream in stream_list:
            if open_streams and type(stream) is LazyOpener:
                # A file by its path: read by dos itself, without the interpreter.
                items.append(os.fspath(stream.path))
            elif open_streams:
                items.append(OpeningStream(stream))
            else:
                items.append(stream)
        return [key for key, _ in self._to_pack(raw, items, compress, no_holes, callback)]

    @staticmethod
    def _to_pack(
        raw: RawContainer, items: list, compress: bool, no_holes: bool, callback: Callable | None
    ) -> list[tuple[str, bool]]:
        """One bulk write (contents, paths or streams) with upstream's progress blocks; returns
        each item's key and whether it was written (rather than found packed already)."""
        assert isinstance(compress, bool), 'Only True or False are valid `compress` modes when adding directly to a pack'
        if callback:
            callbacks.bulk_store_preamble(callback, raw, no_holes)
        keys = raw.add_to_pack(items, 'yes' if compress else 'no', bool(no_holes))
        if callback:
            callbacks.bulk_store(callback, len(items))
        return keys

    def add_streamed_object_to_pack(
        self,
        stream,
        compress: bool = False,
        open_streams: bool = False,
        no_holes: bool = False,
        no_holes_read_twice: bool = True,
        callback: Callable | None = None,
        callback_size_hint: int = 0,
        do_fsync: bool = True,
        do_commit: bool = True,
    ) -> str:
        """Write one stream into a pack; returns its key. The callback sees the bytes read."""
        wrapper = CallbackStreamWrapper(stream, callback=callback, total_length=callback_size_hint)
        raw = self._raw()
        # As upstream: with open_streams, the wrapper is what is entered (so a LazyOpener, which
        # cannot be read itself, fails as it does there).
        item = OpeningStream(wrapper) if open_streams else wrapper
        [(key, written)] = self._to_pack(raw, [item], compress, no_holes, None)
        if written and no_holes and no_holes_read_twice and callback is not None:
            # Upstream hashes such a stream first and reads it again to write it; the callback
            # sees that second pass as a "[rewind]" block.
            wrapper.seek(0)
            wrapper.read()
        wrapper.close_callback()
        return key

    # -- maintenance -----------------------------------------------------------------------------

    def pack_all_loose(
        self,
        compress: bool | CompressMode = CompressMode.NO,
        validate_objects: bool = True,
        do_fsync: bool = True,
        callback: Callable | None = None,
        clean_loose_per_pack: bool = False,
    ) -> None:
        """Pack every loose object not packed yet (each is hashed again while it is packed)."""
        raw = self._raw(NotInitialised)
        if isinstance(compress, bool):
            mode = 'yes' if compress else 'no'
        elif compress in (CompressMode.NO, CompressMode.KEEP):
            mode = 'no'
        elif compress in (CompressMode.YES, CompressMode.AUTO):
            mode = compress.value
        else:
            mode = None
        # What is to be packed is listed only where it is reported or decides an error.
        to_pack = raw.loose_not_packed() if callback or mode is None else None
        if mode is None and to_pack:
            raise NotImplementedError(f'Unknown compress mode {compress}')
        if callback:
            callback('init', {'total': self.get_total_size().total_size_loose, 'description': 'Packing loose objects'})
        if mode is not None and to_pack != []:
            bad = raw.pack_all_loose(mode or 'no', bool(clean_loose_per_pack))
            if bad:
                key, actual = bad[0]
                raise InconsistentContent(
                    f"Error when packing object '{key}': re-computed hash is different! '{actual}'"
                )
        if callback:
            for _, size in to_pack:
                callback('update', size)
            callback('close', None)

    def validate(self, callback: Callable | None = None) -> ValidationIssues:
        """Check every object; returns the issues found."""
        raw = self._raw()
        loose, packed, sizes, overlapping = raw.validate()
        if callback:
            callbacks.validate(callback, len(set(self._list_loose())), raw.pack_counts())
        return ValidationIssues(
            invalid_hashes_loose=loose,
            invalid_hashes_packed=packed,
            invalid_sizes_packed=sizes,
            overlapping_packed=overlapping,
        )

    def delete_objects(self, hashkeys: list[str]) -> list[str]:
        """Delete objects (loose and packed); returns the keys that were there."""
        return self._raw().delete_objects(list(hashkeys))

    def repack(self, compress_mode: CompressMode = CompressMode.KEEP, callback: Callable | None = None) -> None:
        """Rewrite every pack without the bytes of deleted objects, then compact the index."""
        raw = self._raw()
        if not isinstance(compress_mode, CompressMode):
            raise NotImplementedError(f'Unknown compress mode {compress_mode}')
        if callback:
            sizes = dict(raw.pack_object_sizes())
            total = self.get_total_size().total_size_packed
            order = [int(p) for p in self._list_packs()]
        raw.repack(compress_mode.value)
        if callback:
            for pack_id in order:
                if pack_id in sizes:
                    callbacks.repack_block(callback, pack_id, total, sizes[pack_id])

    def repack_pack(
        self, pack_id: str, compress_mode: CompressMode = CompressMode.KEEP, callback: Callable | None = None
    ) -> None:
        """Rewrite one pack without the bytes of deleted objects."""
        assert pack_id != str(self._REPACK_PACK_ID), (
            f"The specified pack_id '{pack_id}' is invalid, it is the one used for repacking"
        )
        raw = self._raw()
        if not isinstance(compress_mode, CompressMode):
            raise NotImplementedError(f'Unknown compress mode {compress_mode}')
        sizes = dict(raw.pack_object_sizes(int(pack_id))).get(int(pack_id))
        if sizes is None:
            # No object in it: the file goes (upstream's behaviour), without progress calls.
            path = self._get_pack_path_from_pack_id(pack_id)
            if path.exists():
                raw.repack(compress_mode.value, int(pack_id))
                if path.exists():
                    os.remove(path)
            return
        total = self.get_total_size().total_size_packed
        raw.repack(compress_mode.value, int(pack_id))
        if callback:
            callbacks.repack_block(callback, int(pack_id), total, sizes)

    def clean_storage(self, vacuum: bool = False) -> None:
        """Delete loose copies of packed objects; ``vacuum`` also compacts the index."""
        self._raw().clean_storage(bool(vacuum))

    def _vacuum(self) -> None:
        """Compact the index file."""
        self._raw().vacuum()

    def import_objects(
        self,
        hashkeys: Iterable[str],
        source_container: disk_objectstore.Container,
        compress: bool = False,
        target_memory_bytes: int = 104857600,
        callback: Callable | None = None,
        do_fsync: bool = True,
    ) -> dict[str, str]:
        """Copy objects from another container (of either kind) into packs of this one.

        Returns a mapping from each copied key in the source to its key here (the same key when
        both use the same hash type; objects already here are not copied then).
        """
        raw = self._raw(NotInitialised)
        if source_container.hash_type == self.hash_type:
            wanted = sorted(set(hashkeys))
            present = raw.has_objects(wanted)
            keys = [key for key, here in zip(wanted, present) if not here]
            if callback:
                callbacks.counted_block(callback, 'Listing objects', len(wanted), keyword_init=True)
            no_holes = False
        else:
            keys = hashkeys
            no_holes = True
        copied_old: list[str] = []
        copied_new: list[str] = []
        cache: dict[str, bytes] = {}
        cache_size = 0
        progress = callbacks.Counter(callback, 'Copy objects', len(set(keys)) if callback else 0)
        with source_container.get_objects_stream_and_meta(keys) as triplets:
            for old_key, stream, meta in triplets:
                if meta.size > target_memory_bytes:
                    copied_old.append(old_key)
                    copied_new.append(
                        self.add_streamed_object_to_pack(
                            stream, compress=compress, no_holes=no_holes, no_holes_read_twice=no_holes
                        )
                    )
                else:
                    if cache and cache_size + meta.size > target_memory_bytes:
                        batch_old, data = zip(*cache.items())
                        copied_old += batch_old
                        copied_new += self.add_objects_to_pack(data, compress=compress, no_holes=no_holes)
                        cache, cache_size = {}, 0
                    cache[old_key] = stream.read()
                    cache_size += meta.size
                progress.step()
        progress.close()
        if cache:
            batch_old, data = zip(*cache.items())
            copied_old += batch_old
            copied_new += self.add_objects_to_pack(
                data,
                compress=compress,
                no_holes=no_holes,
                callback=rename_callback(callback, new_description='Final flush'),
            )
        return dict(zip(copied_old, copied_new))

    # -- packs in object storage (dos only) --------------------------------------------------------

    def remote_set(self, url: str, endpoint: str | None = None, region: str | None = None, cache_bytes: int = 0) -> None:
        """Name the S3 location (``s3://bucket/prefix``) this container offloads packs to.

        Credentials come from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` or
        ``~/.aws/credentials``; the server from ``endpoint``, else ``AWS_ENDPOINT_URL``.
        """
        self._raw().remote_set(url, endpoint, region, int(cache_bytes))

    def offload(
        self,
        keep_local: bool = False,
        include_small: bool = False,
        min_age_seconds: int = 0,
        packs: Iterable[int] | None = None,
    ) -> dict:
        """Upload sealed packs to the remote store and remove their local files (``dos offload``).

        Reads of their objects then go to the store; disk-objectstore cannot read them until
        ``fetch_packs``. Returns what was done.
        """
        packs = None if packs is None else [int(p) for p in packs]
        return json.loads(self._raw().offload(bool(keep_local), bool(include_small), int(min_age_seconds), packs))

    def fetch_packs(self, packs: Iterable[int] | None = None) -> dict:
        """Bring offloaded packs back to local files (all of them by default)."""
        packs = None if packs is None else [int(p) for p in packs]
        return json.loads(self._raw().fetch_packs(packs))

    def publish(self) -> dict:
        """Publish a read-only snapshot next to the packs: ``Container('s3://bucket/prefix')``
        then opens it on any machine."""
        return json.loads(self._raw().publish())

    def clean_remote(self, grace_seconds: int = 3600) -> dict:
        """Delete remote objects nothing refers to (older than ``grace_seconds``)."""
        return json.loads(self._raw().clean_remote(int(grace_seconds)))

    def pack_places(self) -> list[dict]:
        """Every pack and where it is (``local``, ``remote`` object name, ``bytes``)."""
        return json.loads(self._raw().pack_places())['packs']

    # -- the index is dos's ----------------------------------------------------------------------

    def _get_operation_session(self):
        raise DosError(
            'dos_objectstore.Container reads and writes its index through dos; a second SQLite '
            'connection from Python to the same file in this process would break its locking'
        )

    _get_container_session = _get_operation_session
