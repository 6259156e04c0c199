"""Differential tests: ``disk_objectstore.Container`` (the reference) against the class under test.

Every case runs one seeded random sequence of API calls on a reference container and on a container of the class
under test, each in its own fresh folder, and compares after every call:

* the return value (normalised, see "Allowed differences" below),
* whether an exception was raised, and its type (the class under test may raise a subclass of the reference's
  exception type, since ``except ReferenceType`` still catches it; it may not raise a different type),
* the sequence of ``callback(action, value)`` calls, including whether ``action``/``value`` were passed by
  position or by keyword (upstream mixes both, and a callback written as ``def cb(*args)`` or ``def cb(**kw)``
  would notice).

After the sequence each implementation opens the other's folder (and its own, freshly), ``validate()`` must find
no issue, and every object must read back byte-exact.

Allowed differences, and why (everything else must be equal):

1. ``container_id``: a fresh ``uuid4().hex`` per container; only its format is compared.
2. Absolute folders: paths are compared relative to each container's own folder.
3. Pack layout. ``pack_all_loose`` pops keys from a Python ``set`` (container.py 1392), so the order in which loose
   objects are appended to packs is implementation-defined; ``import_objects`` appends objects in the order the
   SOURCE container yields them, and ``get_objects_stream_and_meta`` guarantees no order across packs or for loose
   objects (container.py 821-824); and the dos implementation uses a different deflate encoder, so compressed
   lengths differ, which shifts every later offset. Hence ``pack_offset`` is compared only while the layout is
   still fully determined by the calls made (no ``pack_all_loose`` of two or more loose objects, no import of two
   or more objects, no compressed byte ever written); ``pack_id`` and ``count_objects().pack_files`` are compared
   while that holds or while the pack size target is so large that everything is in pack 0. Per-pack callback
   blocks (``validate``'s ``Pack N`` blocks, ``repack``'s ``Repack N`` blocks) follow the same rule, else only
   their totals are compared, and ``repack_pack`` of "the pack holding object K" (whose other objects then differ
   between the sides) is only called with ``CompressMode.KEEP``. Where the layout is determined, the spec does fix
   it (reference section 10.13: lowest pack id >= the cached current id whose file is missing or below
   ``pack_size_target``, checked before each object; append only), so it is compared exactly.
4. Compressed sizes on disk: ``pack_length`` of compressed objects, ``total_size_packed_on_disk`` and
   ``total_size_packfiles_on_disk`` once a compressed byte has been written: the format only requires each
   compressed object to be one complete zlib stream that Python's ``zlib.decompressobj()`` decodes (reference
   1.9: "A port need not be byte-identical, only decodable"). Uncompressed objects must have
   ``pack_length == size`` on both sides; decodability is checked by the cross-validation at the end.
   ``pack_compressed`` itself must match, also for ``CompressMode.AUTO``: the data generator only makes objects
   whose compression ratio is far from AUTO's 0.9 threshold (random bytes: > 1 with any encoder; tiny objects of
   <= 8 bytes: > 1 since a zlib stream has >= 8 bytes of framing; repetitive text/patterns of >= 512 bytes:
   < 0.6 even for a Huffman-only encoder), so the decision cannot depend on the encoder.
5. ``total_size_packindexes_on_disk``: the size of the SQLite file depends on the SQLite library and on WAL
   checkpoints, not on the content; only "positive int" is checked.
6. Order of results the API does not order: ``list_all_objects``, ``delete_objects``, ``get_objects_meta``,
   ``get_objects_stream_and_meta``, ``get_objects_content`` (dict), ``import_objects`` (dict) and
   ``ValidationIssues`` lists are compared as sorted lists / dicts. For the bulk readers the class under test must
   still group packed objects by pack, visiting each pack once, with non-decreasing offsets inside a pack (what
   upstream's own test_packs_read_in_order checks).
7. Callback update values whose ORDER comes from set iteration (``pack_all_loose``: one ``update`` per packed object,
   in packing order) are compared as multisets. The byte-level progress of ``add_streamed_object_to_pack`` (a
   ``utils.CallbackStreamWrapper``, one update per ``read()`` call) depends on the read chunk size, which is not
   part of the contract: per init/close block, only the sum of the updates is compared.
8. ``seek(offset, SEEK_END)`` on a packed UNcompressed object: upstream's ``PackedObjectReader.seek`` returns the
   relative ``offset`` it was given (utils.py 579-588), not the new absolute position as every other stream does;
   the class under test may return either. ``tell()`` afterwards must match.
9. Read-side loose copies: upstream materialises a compressed packed object as a loose file on
   ``seek(..., SEEK_END)`` and on ``SEEK_CUR`` seeks whose offset is below the current position, even forward
   ones (utils.py 1003-1011); reference section 9.5 says a port
   should not copy that (and test_streams.py asserts that dos does not). After each stream-reading call the
   harness therefore deletes, on both sides, loose files that appeared during that call (they are copies of
   packed objects: exactly what ``clean_storage`` would delete), so the rest of the sequence sees the same state.
   Explicit loosening (``loosen_object``, ``get_lazy_loose_stream``) is part of the API and is compared.
10. ``readinto``: upstream's packed streams have no ``readinto`` (only loose files do). When the reference stream
    lacks it, the harness emulates it with ``read(n)``; the class under test may implement it (test_streams.py
    requires it for dos), and its result must equal the emulation.
12. Pack ids after a repack: upstream rewrites each pack into the temporary pack ``-1`` and moves it back to its
    id; dos writes the live objects of the packs it rewrites into a new pack first and deletes the old ones only
    after the index points at the new copy (docs/durability.md), so the ids change, and later writes may go to a
    freed id. After any repack, pack ids and offsets are masked (per-pack callback blocks compared by totals).
13. Empty pack files: upstream creates the pack file it is about to append to before it knows whether anything
    will be written (``lock_pack`` opens it for appending), so a ``no_holes`` write of objects that are all
    present already leaves an empty pack file, which ``count_objects().pack_files`` counts; dos creates a pack
    file only to write to it. ``pack_files`` is compared without the empty pack files of each side.
11. ``add_*_to_pack(no_holes=True, no_holes_read_twice=False)`` corrupts packs in 1.5 (reference 8.4 / 9.2). The
    reference side is always called with ``no_holes_read_twice=True`` in that case (a correct implementation gives
    the same observable result: no holes, same offsets), while dos gets ``False``; see also
    ``test_no_holes_without_read_twice``. When the class under test is upstream it gets ``True`` as well.

Not exercised on purpose: keys that are empty, contain ``/`` or ``..``, or are not longer than
``loose_prefix_len`` (upstream maps them onto directories or outside the loose folder and raises
``IsADirectoryError``, or ``has_objects`` answers True: not a contract worth copying); ``do_commit=False`` (needs
the private session to commit); ``repack(compress_mode=<bool>)`` (raises ``NotImplementedError`` mid-repack and
leaves a stale ``packs/-1`` behind, reference 9.4); concurrent access (test_threads.py). disk-objectstore 1.5 has
no ``export`` method (replaced by ``import_objects`` in 0.5).

Environment: ``DOS_PY_DIFF_SEEDS`` (default 20) is the number of seeded cases, ``DOS_PY_DIFF_OPS`` (default 40)
the number of calls per case.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import random
import re
import traceback
from pathlib import Path

import pytest

import disk_objectstore
from disk_objectstore import CompressMode, ObjectType, utils
from disk_objectstore.dataclasses import ObjectCount, ObjectMeta, TotalSize, ValidationIssues
from disk_objectstore.exceptions import NotExistent, NotInitialised

RefContainer = disk_objectstore.Container

N_CASES = int(os.environ.get('DOS_PY_DIFF_SEEDS', '20'))
N_OPS = int(os.environ.get('DOS_PY_DIFF_OPS', '40'))
BIG_TARGET = 4 * 1024 * 1024 * 1024
DEFAULT_TARGET_MEMORY = 104857600

# hash_type: 1.5 accepts exactly 'sha256' and 'sha1' (utils.get_hash_cls, utils.py 1188-1196).
# compression_algorithm: 'zlib+1' .. 'zlib+9' (utils.py 1086-1114).
CONFIGS = (
    {'loose_prefix_len': 2, 'hash_type': 'sha256', 'compression_algorithm': 'zlib+1', 'pack_size_target': BIG_TARGET},
    {'loose_prefix_len': 0, 'hash_type': 'sha1', 'compression_algorithm': 'zlib+9', 'pack_size_target': 1000},
    {'loose_prefix_len': 3, 'hash_type': 'sha256', 'compression_algorithm': 'zlib+9', 'pack_size_target': 1},
    {'loose_prefix_len': 2, 'hash_type': 'sha1', 'compression_algorithm': 'zlib+1', 'pack_size_target': 20000},
    {'loose_prefix_len': 0, 'hash_type': 'sha256', 'compression_algorithm': 'zlib+1', 'pack_size_target': 300},
    {'loose_prefix_len': 3, 'hash_type': 'sha1', 'compression_algorithm': 'zlib+9', 'pack_size_target': BIG_TARGET},
)

MASK = '<may differ>'


def case_params(seed):
    """Config and 'strict' flag of a case. Strict cases only make calls that keep the pack layout determined."""
    return CONFIGS[seed % len(CONFIGS)], seed % 5 == 4


def case_id(seed):
    config, strict = case_params(seed)
    return (
        f"seed{seed}-p{config['loose_prefix_len']}-{config['hash_type']}-{config['compression_algorithm']}"
        f"-t{config['pack_size_target'] if config['pack_size_target'] < BIG_TARGET else 'big'}"
        + ('-strict' if strict else '')
    )


def hash_of(hash_type, data):
    return hashlib.new(hash_type, data).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Data. Every content is far from AUTO's 0.9 compression-ratio threshold whatever the deflate encoder (see 4. above).


def _pattern(rng, size):
    unit = rng.randbytes(rng.randint(3, 40))
    return (unit * (size // len(unit) + 1))[:size]


def _text(rng, size):
    vocab = [rng.randbytes(rng.randint(1, 4)).hex().encode() for _ in range(8)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(vocab)
        out += b' '
    return bytes(out[:size])


POOL_KINDS = ('tiny',) * 4 + ('random',) * 6 + ('text',) * 5 + ('pattern',) * 4 + ('bigtext', 'bigpattern', 'bigrandom')


def make_content(rng, kind):
    if kind == 'tiny':
        return rng.randbytes(rng.randint(1, 8))
    if kind == 'random':
        return rng.randbytes(rng.randint(9, 3000))
    if kind == 'text':
        return _text(rng, rng.randint(512, 20000))
    if kind == 'pattern':
        return _pattern(rng, rng.randint(512, 40000))
    if kind == 'bigtext':
        return _text(rng, rng.randint(60000, 200000))
    if kind == 'bigpattern':
        # > 128 KiB, so AUTO samples 1 KiB chunks instead of reading everything (utils.py 1619-1643)
        return _pattern(rng, rng.randint(140000, 200000))
    if kind == 'bigrandom':
        return rng.randbytes(rng.randint(20000, 140000))
    raise ValueError(kind)


# ----------------------------------------------------------------------------------------------------------------
# Comparison helpers


def short(value, limit=120):
    if isinstance(value, (bytes, bytearray)):
        if len(value) > 24:
            return f'<{len(value)} bytes {bytes(value[:12])!r}... sha1={hashlib.sha1(value).hexdigest()[:10]}>'
        return repr(bytes(value))
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


def first_diff(ref, imp, path='$'):
    """Return a description of the first difference between two observations, or None."""
    if type(ref) is not type(imp):
        return f'{path}: type {type(ref).__name__} (ref) != {type(imp).__name__} (impl): {short(ref)} vs {short(imp)}'
    if isinstance(ref, dict):
        if set(ref) != set(imp):
            only_ref = sorted(map(repr, set(ref) - set(imp)))[:5]
            only_imp = sorted(map(repr, set(imp) - set(ref)))[:5]
            return f'{path}: keys only in ref {only_ref}, only in impl {only_imp}'
        for key in sorted(ref, key=repr):
            found = first_diff(ref[key], imp[key], f'{path}[{short(key, 40)}]')
            if found:
                return found
        return None
    if isinstance(ref, (list, tuple)):
        for index, (left, right) in enumerate(zip(ref, imp)):
            found = first_diff(left, right, f'{path}[{index}]')
            if found:
                return found
        if len(ref) != len(imp):
            return f'{path}: length {len(ref)} (ref) != {len(imp)} (impl); extra: {short(ref[len(imp):] or imp[len(ref):])}'
        return None
    if ref != imp:
        return f'{path}: {short(ref)} (ref) != {short(imp)} (impl)'
    return None


class CallRecorder:
    """A callback recording ``(action, deep copy of value, names passed by keyword)``."""

    def __init__(self):
        self.calls = []

    def __call__(self, *args, **kwargs):
        names = ('action', 'value')
        assert len(args) <= 2, f'callback called with {len(args)} positional arguments: {args!r}'
        bound = dict(zip(names, args))
        for key, value in kwargs.items():
            assert key in names and key not in bound, f'unexpected callback arguments {args!r} {kwargs!r}'
            bound[key] = value
        assert set(bound) == set(names), f'callback not called as (action, value): {args!r} {kwargs!r}'
        style = tuple(name for name in names if name in kwargs)
        self.calls.append((bound['action'], copy.deepcopy(bound['value']), style))

    def take(self):
        calls, self.calls = self.calls, []
        return calls


def split_blocks(calls):
    """Check init -> update* -> close nesting and return blocks ``[(init_call, [update_calls], close_call)]``."""
    blocks, current = [], None
    for call in calls:
        action, value, _ = call
        if action == 'init':
            assert current is None, f'init inside an open block: {calls!r}'
            assert isinstance(value, dict) and set(value) == {'total', 'description'}, f'bad init value {value!r}'
            assert type(value['total']) is int and isinstance(value['description'], str), f'bad init value {value!r}'
            current = (call, [])
        elif action == 'update':
            assert current is not None, f'update outside a block: {calls!r}'
            assert type(value) is int, f'update value is not an int: {value!r}'
            current[1].append(call)
        elif action == 'close':
            assert current is not None, f'close outside a block: {calls!r}'
            assert value is None, f'close value is not None: {value!r}'
            blocks.append((current[0], current[1], call))
            current = None
        else:
            raise AssertionError(f'unknown callback action {action!r}')
    assert current is None, f'block never closed: {calls!r}'
    return blocks


def cb_exact(calls, st):  # pylint: disable=unused-argument
    split_blocks(calls)
    return calls


def cb_updates_as_multiset(calls, st):  # pylint: disable=unused-argument
    return [(init, sorted(updates, key=repr), close) for init, updates, close in split_blocks(calls)]


def cb_stream_bytes(calls, st):  # pylint: disable=unused-argument
    return [
        (init, sum(call[1] for call in updates), sorted({call[2] for call in updates}), close)
        for init, updates, close in split_blocks(calls)
    ]


def cb_repack(calls, st):
    blocks = split_blocks(calls)
    for init, _, _ in blocks:
        assert re.fullmatch(r'Repack (0|[1-9][0-9]*)', init[1]['description']), init
    if st.layout_exact:
        return sorted(blocks, key=lambda block: int(block[0][1]['description'].split()[1]))
    if st.packs_exact:
        return sorted(
            ((init, sorted(updates, key=repr), close) for init, updates, close in blocks),
            key=lambda block: int(block[0][1]['description'].split()[1]),
        )
    return (
        sorted((call for _, updates, _ in blocks for call in updates), key=repr),
        sorted({(init[1]['total'], init[2]) for init, _, _ in blocks}),
        sorted({close for _, _, close in blocks}),
    )


def cb_repack_pack(calls, st):
    if st.layout_exact:
        return cb_exact(calls, st)
    blocks = split_blocks(calls)
    return [(init[1]['total'], init[2], close) for init, _, close in blocks]


def cb_validate(calls, st):
    if st.packs_exact or not calls:
        return cb_exact(calls, st)
    blocks = split_blocks(calls)
    assert blocks and blocks[0][0][1]['description'] == 'Loose objects', calls
    pack_ids = []
    for init, updates, _ in blocks[1:]:
        match = re.fullmatch(r'Pack (0|[1-9][0-9]*)', init[1]['description'])
        assert match, init
        pack_ids.append(int(match.group(1)))
        assert sum(call[1] for call in updates) == init[1]['total'], (init, updates)
    assert pack_ids == sorted(pack_ids) and len(set(pack_ids)) == len(pack_ids), f'packs not validated in order: {pack_ids}'
    return (
        blocks[0],
        sum(init[1]['total'] for init, _, _ in blocks[1:]),
        sorted({call[2] for init, updates, close in blocks[1:] for call in [init, close, *updates]}),
    )


def norm_meta(meta, st):
    """Check the types of an ObjectMeta and return what must be equal across implementations."""
    assert isinstance(meta, ObjectMeta), f'not a disk_objectstore ObjectMeta: {meta!r}'
    assert isinstance(meta.type, ObjectType), f'type is not an ObjectType: {meta.type!r}'
    pack_fields = (meta.pack_id, meta.pack_compressed, meta.pack_offset, meta.pack_length)
    if meta.type is ObjectType.MISSING:
        assert meta.size is None and pack_fields == (None,) * 4, meta
        return ('missing',)
    assert type(meta.size) is int and meta.size >= 0, meta
    assert meta['size'] == meta.size
    if meta.type is ObjectType.LOOSE:
        assert pack_fields == (None,) * 4, meta
        return ('loose', meta.size)
    # upstream returns the pack id as an int although ObjectMeta annotates Optional[str] (container.py 621)
    assert type(meta.pack_id) is int and meta.pack_id >= 0, meta
    assert type(meta.pack_compressed) is bool, meta
    assert type(meta.pack_offset) is int and meta.pack_offset >= 0, meta
    assert type(meta.pack_length) is int and meta.pack_length >= 0, meta
    if meta.pack_compressed:
        assert meta.pack_length > 0, meta
    else:
        assert meta.pack_length == meta.size, meta
    return (
        'packed',
        meta.size,
        meta.pack_compressed,
        MASK if meta.pack_compressed else meta.pack_length,
        meta.pack_id if st.packs_exact else MASK,
        meta.pack_offset if st.layout_exact else MASK,
    )


def check_bulk_order(items):
    """Packed objects grouped by pack (each pack once), offsets non-decreasing inside a pack; keys unique."""
    keys = [key for key, _ in items]
    assert len(keys) == len(set(keys)), f'a key was yielded twice: {keys}'
    visited, last_offset = [], None
    for key, meta in items:
        if meta.type is not ObjectType.PACKED:
            continue
        if visited and visited[-1] == meta.pack_id:
            assert meta.pack_offset >= last_offset, f'{key}: offset {meta.pack_offset} after {last_offset}'
        else:
            assert meta.pack_id not in visited, f'pack {meta.pack_id} visited twice: {[m for _, m in items]}'
            visited.append(meta.pack_id)
        last_offset = meta.pack_offset


def empty_packs(container):
    """Pack files of size 0 (allowed difference 13)."""
    folder = Path(container.get_folder()) / 'packs'
    return sum(1 for p in folder.iterdir() if re.fullmatch(r'0|[1-9][0-9]*', p.name) and p.stat().st_size == 0)


def norm_count(count, st, container=None):
    assert isinstance(count, ObjectCount), f'not an ObjectCount: {count!r}'
    for value in (count.packed, count.loose, count.pack_files):
        assert type(value) is int and value >= 0, count
    if container is not None:
        count = ObjectCount(
            packed=count.packed, loose=count.loose, pack_files=count.pack_files - empty_packs(container)
        )
    return (count.packed, count.loose, count.pack_files if st.packs_exact else MASK)


def norm_total(total, st):
    assert isinstance(total, TotalSize), f'not a TotalSize: {total!r}'
    for name in (
        'total_size_packed',
        'total_size_packed_on_disk',
        'total_size_packfiles_on_disk',
        'total_size_packindexes_on_disk',
        'total_size_loose',
    ):
        assert type(getattr(total, name)) is int and getattr(total, name) >= 0, total
    assert total.total_size_packindexes_on_disk > 0, total
    return (
        total.total_size_packed,
        total.total_size_packed_on_disk if st.sizes_exact else MASK,
        total.total_size_packfiles_on_disk if st.sizes_exact else MASK,
        total.total_size_loose,
    )


def norm_issues(issues):
    assert isinstance(issues, ValidationIssues), f'not a ValidationIssues: {issues!r}'
    fields = ('invalid_hashes_loose', 'invalid_hashes_packed', 'invalid_sizes_packed', 'overlapping_packed')
    for name in fields:
        assert isinstance(getattr(issues, name), list), issues
    return (issues.is_valid(), tuple(sorted(getattr(issues, name)) for name in fields))


def stream_kind(stream, meta):
    """What the stream type must be, where the drop-in contract fixes it."""
    if meta.type is ObjectType.LOOSE:
        # aiida-core's test_open expects io.BufferedReader for loose objects
        assert isinstance(stream, io.BufferedReader), f'loose stream is a {type(stream)}'
        return 'buffered'
    if meta.pack_compressed:
        # upstream's test_stream_seek checks this
        assert isinstance(stream, utils.ZlibLikeBaseStreamDecompresser), f'compressed stream is a {type(stream)}'
        return 'zlib'
    return 'packed'


def make_script(rng, n_ops):
    kinds = ['read', 'read_all', 'readinto', 'seek0', 'seek1', 'seek2', 'tell']
    return [
        (kind, rng.random(), rng.choice([0, 1, 3, 100, 4096, 65536, 300000, None]))
        for kind in rng.choices(kinds, weights=[5, 1, 3, 3, 3, 2, 2], k=n_ops)
    ]


def run_script(stream, script, meta):
    """Apply read/readinto/seek/tell calls that stay inside [0, size]; return the observations."""
    size = meta.size
    packed_plain = meta.type is ObjectType.PACKED and not meta.pack_compressed
    pos, obs = 0, []
    for kind, frac, amount in script:
        amount = int(frac * size) + 1 if amount is None else amount
        if kind == 'read':
            data = stream.read(amount)
            obs.append(('read', amount, data))
            pos = min(size, pos + amount)
        elif kind == 'read_all':
            data = stream.read() if frac < 0.5 else stream.read(-1)
            obs.append(('read_all', data))
            pos = size
        elif kind == 'readinto':
            if hasattr(stream, 'readinto'):
                buf = bytearray(amount)
                got = stream.readinto(buf)
                obs.append(('readinto', amount, got, bytes(buf[:got])))
            else:  # allowed difference 10: emulate
                data = stream.read(amount)
                obs.append(('readinto', amount, len(data), data))
            pos = min(size, pos + amount)
        elif kind == 'seek0':
            target = round(frac * size)
            obs.append(('seek', 0, target, stream.seek(target) if frac < 0.5 else stream.seek(target, io.SEEK_SET)))
            pos = target
        elif kind == 'seek1':
            target = round(frac * size)
            obs.append(('seek', 1, target - pos, stream.seek(target - pos, io.SEEK_CUR)))
            pos = target
        elif kind == 'seek2':
            delta = -round(frac * size)
            ret = stream.seek(delta, io.SEEK_END)
            if packed_plain and ret == delta:  # allowed difference 8
                ret = size + delta
            obs.append(('seek', 2, delta, ret))
            pos = size + delta
        elif kind == 'tell':
            obs.append(('tell', stream.tell()))
        else:
            raise ValueError(kind)
    obs.append(('final_tell', stream.tell(), pos))
    return obs


# ----------------------------------------------------------------------------------------------------------------
# The two sides and the state of a sequence


class Side:
    def __init__(self, role, cls, folder):
        self.role = role
        self.cls = cls
        self.folder = Path(folder)
        self.c = cls(self.folder)
        self.rec = CallRecorder()

    def reopen(self):
        self.c.close()
        self.c = self.cls(self.folder)

    def loose_snapshot(self):
        root = self.folder / 'loose'
        found = set()
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                for name in dirnames + filenames:
                    found.add(os.path.join(dirpath, name))
        return found

    def drop_new_loose(self, before):
        """Remove loose files (and shard folders) that appeared since ``before`` (allowed difference 9)."""
        new = self.loose_snapshot() - before
        for path in sorted(new, key=len, reverse=True):
            if os.path.isdir(path):
                os.rmdir(path)
            else:
                os.remove(path)


class State:
    def __init__(self, rng, config, strict, scratch):
        self.rng = rng
        self.config = dict(config)
        self.strict = strict
        self.scratch = scratch
        self.pool = [b''] + [make_content(rng, kind) for kind in POOL_KINDS]
        self.known = {}
        for content in self.pool:
            self.register(content)
        self.layout_exact = True
        self.sizes_exact = True
        # Pack ids after a repack are implementation-defined (allowed difference 12).
        self.ids_exact = True
        self._scratch_files = {}
        self.present = None  # set by Sequence: returns the keys the reference container holds

    @property
    def hash_type(self):
        return self.config['hash_type']

    @property
    def packs_exact(self):
        return self.ids_exact and (self.layout_exact or self.config['pack_size_target'] >= BIG_TARGET)

    def repacked(self):
        """After a repack: pack ids, and so the layout of later writes, may differ."""
        self.ids_exact = False
        self.layout_exact = False

    def register(self, content):
        for hash_type in ('sha1', 'sha256'):
            self.known[hash_of(hash_type, content)] = content

    def key(self, content, hash_type=None):
        return hash_of(hash_type or self.hash_type, content)

    def content(self):
        return self.rng.choice(self.pool)

    def contents(self, low, high):
        return [self.content() for _ in range(self.rng.randint(low, high))]

    def scratch_file(self, content):
        """A file outside the containers holding ``content`` (for LazyOpener / open files)."""
        key = hash_of('sha256', content)
        if key not in self._scratch_files:
            path = self.scratch / key
            path.write_bytes(content)
            self._scratch_files[key] = path
        return self._scratch_files[key]

    def bad_key(self):
        """A key that is not in the container and maps to no existing path (see the module docstring)."""
        rng = self.rng
        key = self.key(self.content())
        return rng.choice(
            [
                key.upper(),
                'g' * len(key),
                key[:-1],
                key + '0',
                'xyzw-not-hex',
                key[: self.config['loose_prefix_len'] + 1],
                hash_of('sha1' if self.hash_type == 'sha256' else 'sha256', self.content()),
            ]
        )

    def pick_key(self, p_missing=0.1, p_bad=0.1, p_present=0.6):
        """A key of the container (from the reference's listing), of the pool (maybe absent), missing, or bad."""
        roll = self.rng.random()
        if roll < p_missing:
            return self.rng.randbytes(len(self.key(b'')) // 2).hex()
        if roll < p_missing + p_bad:
            return self.bad_key()
        if roll < p_missing + p_bad + p_present:
            present = sorted(self.present())
            if present:
                return self.rng.choice(present)
        return self.key(self.content())

    def pick_keys(self, low, high, **kwargs):
        return [self.pick_key(**kwargs) for _ in range(self.rng.randint(low, high))]


class Sequence:  # pylint: disable=too-many-public-methods
    def __init__(self, seed, impl_cls, impl_name, tmp_path):
        config, strict = case_params(seed)
        self.case = case_id(seed)
        self.rng = random.Random(seed * 7919 + 17)
        scratch = tmp_path / 'scratch'
        scratch.mkdir()
        self.st = State(self.rng, config, strict, scratch)
        self.tmp_path = tmp_path
        self.impl_cls = impl_cls
        self.impl_fixes_no_holes = impl_name == 'dos'
        self.ref = Side('ref', RefContainer, tmp_path / 'ref')
        self.imp = Side('impl', impl_cls, tmp_path / 'impl')
        self.sides = (self.ref, self.imp)
        self.sources = {}
        self.log = []
        for side in self.sides:
            side.c.init_container(**self.st.config)
        self.st.present = lambda: list(self.ref.c.list_all_objects())

    # -- running one call on both sides ---------------------------------------------------------------------------

    def fail(self, label, message):
        tail = '\n    '.join(self.log[-15:])
        pytest.fail(
            f'[{self.case}] call #{len(self.log)} {label}: {message}\n  last calls:\n    {tail}\n'
            f'  state: layout_exact={self.st.layout_exact} sizes_exact={self.st.sizes_exact}',
            pytrace=False,
        )

    def both(self, label, run, cb=cb_exact, stream_op=False):
        """Run ``run(side)`` on both sides and compare. Return ``('ok', value)`` or ``('exc', exception type)``."""
        self.log.append(label)
        outcomes = []
        for side in self.sides:
            side.rec.take()
            before = side.loose_snapshot() if stream_op else None
            try:
                outcome = ('ok', run(side))
            except Exception as exc:  # noqa: BLE001
                outcome = ('exc', exc, traceback.format_exc())
            calls = side.rec.take()
            if stream_op:
                side.drop_new_loose(before)
            outcomes.append((outcome, calls))
        (ref_out, ref_calls), (imp_out, imp_calls) = outcomes
        if ref_out[0] == 'exc' and isinstance(ref_out[1], AssertionError):
            # no call of the random sequences makes upstream assert: this is a check of the harness failing
            self.fail(label, f'the reference side failed a check (harness bug?)\n{ref_out[2]}')
        if ref_out[0] != imp_out[0]:
            if ref_out[0] == 'exc':
                self.fail(label, f'reference raised, impl returned {short(imp_out[1])}\n{ref_out[2]}')
            self.fail(label, f'impl raised, reference returned {short(ref_out[1])}\n{imp_out[2]}')
        if ref_out[0] == 'exc':
            if not isinstance(imp_out[1], type(ref_out[1])):
                self.fail(
                    label,
                    f'exception types differ: reference {type(ref_out[1]).__name__}: {ref_out[1]}, '
                    f'impl {type(imp_out[1]).__name__}: {imp_out[1]}\n{imp_out[2]}',
                )
            found = first_diff(ref_calls, imp_calls, '$callbacks')
            if found:
                self.fail(label, found)
            return ('exc', type(ref_out[1]))
        found = first_diff(ref_out[1], imp_out[1], '$result')
        if found:
            self.fail(label, found)
        try:
            norm_ref = cb(ref_calls, self.st)
        except AssertionError as exc:
            self.fail(label, f'reference callbacks malformed ({exc}); the harness is wrong')
        try:
            norm_imp = cb(imp_calls, self.st)
        except AssertionError as exc:
            self.fail(label, f'impl callbacks malformed: {exc}')
        found = first_diff(norm_ref, norm_imp, '$callbacks')
        if found:
            self.fail(label, found)
        return ('ok', ref_out[1])

    def callback(self, side, use):
        return side.rec if use else None

    def read_twice_for(self, side, no_holes, read_twice):
        """Allowed difference 11: never give upstream the corrupting combination."""
        if no_holes and not read_twice and (side is self.ref or not self.impl_fixes_no_holes):
            return True
        return read_twice

    def ref_metas(self):
        c = self.ref.c
        return dict(c.get_objects_meta(list(c.list_all_objects())))

    def loose_only_count(self):
        return sum(1 for meta in self.ref_metas().values() if meta.type is ObjectType.LOOSE)

    def after_write(self, compressed_written=False):
        """Update what can still be compared exactly (allowed differences 3 and 4)."""
        if compressed_written or any(meta.pack_compressed for meta in self.ref_metas().values()):
            self.st.layout_exact = False
            self.st.sizes_exact = False

    def compress_flag(self):
        return False if self.st.strict else self.rng.random() < 0.4

    # -- writes ------------------------------------------------------------------------------------------------

    def op_add_object(self):
        content = self.st.content()
        status = self.both('add_object', lambda side: side.c.add_object(content))
        assert status == ('ok', self.st.key(content))

    def op_add_streamed_object(self):
        content = self.st.content()
        skip = self.rng.randint(0, min(5, len(content))) if self.rng.random() < 0.3 else 0
        self.st.pool.append(content[skip:])
        self.st.register(content[skip:])

        def run(side):
            stream = io.BytesIO(content)
            stream.seek(skip)  # add_streamed_object reads from the current position
            return side.c.add_streamed_object(stream)

        status = self.both(f'add_streamed_object(skip={skip})', run)
        assert status == ('ok', self.st.key(content[skip:]))

    def op_add_objects_to_pack(self):
        rng = self.rng
        contents = self.st.contents(0, 6)
        compress = self.compress_flag()
        no_holes = rng.random() < 0.4
        read_twice = rng.random() < 0.5
        use_cb = rng.random() < 0.5
        do_fsync = rng.random() < 0.3
        as_tuple = rng.random() < 0.2

        def run(side):
            return side.c.add_objects_to_pack(
                tuple(contents) if as_tuple else contents,
                compress=compress,
                no_holes=no_holes,
                no_holes_read_twice=self.read_twice_for(side, no_holes, read_twice),
                callback=self.callback(side, use_cb),
                do_fsync=do_fsync,
            )

        status = self.both(
            f'add_objects_to_pack(n={len(contents)}, compress={compress}, no_holes={no_holes}, '
            f'read_twice={read_twice}, cb={use_cb})',
            run,
        )
        assert status == ('ok', [self.st.key(content) for content in contents])
        self.after_write(compressed_written=compress and bool(contents))

    def op_add_streamed_objects_to_pack(self):
        rng = self.rng
        contents = self.st.contents(0, 6)
        compress = self.compress_flag()
        no_holes = rng.random() < 0.4
        read_twice = rng.random() < 0.5
        use_cb = rng.random() < 0.5
        do_fsync = rng.random() < 0.3
        mode = rng.choice(['bytesio', 'bytesio-open', 'file', 'lazy'])
        paths = [self.st.scratch_file(content) for content in contents] if mode in ('file', 'lazy') else None

        def run(side):
            handles = []
            if mode == 'lazy':
                streams, open_streams = [utils.LazyOpener(path) for path in paths], True
            elif mode == 'file':
                handles = [open(path, 'rb') for path in paths]  # pylint: disable=consider-using-with
                streams, open_streams = handles, False
            else:
                streams, open_streams = [io.BytesIO(content) for content in contents], mode == 'bytesio-open'
            try:
                return side.c.add_streamed_objects_to_pack(
                    streams,
                    compress=compress,
                    open_streams=open_streams,
                    no_holes=no_holes,
                    no_holes_read_twice=self.read_twice_for(side, no_holes, read_twice),
                    callback=self.callback(side, use_cb),
                    do_fsync=do_fsync,
                )
            finally:
                for handle in handles:
                    handle.close()

        status = self.both(
            f'add_streamed_objects_to_pack(n={len(contents)}, {mode}, compress={compress}, no_holes={no_holes}, '
            f'read_twice={read_twice}, cb={use_cb})',
            run,
        )
        assert status == ('ok', [self.st.key(content) for content in contents])
        self.after_write(compressed_written=compress and bool(contents))

    def op_add_streamed_object_to_pack(self):
        rng = self.rng
        content = self.st.content()
        compress = self.compress_flag()
        no_holes = rng.random() < 0.4
        use_cb = rng.random() < 0.5
        # with a callback, read_twice=True and False give different byte-level callbacks (a rewind): only
        # substitute (allowed difference 11) without a callback
        read_twice = True if use_cb else rng.random() < 0.5
        hint = rng.choice([0, len(content), 7])
        open_streams = rng.random() < 0.3  # a BytesIO is its own context manager
        do_fsync = rng.random() < 0.3

        def run(side):
            return side.c.add_streamed_object_to_pack(
                io.BytesIO(content),
                compress=compress,
                open_streams=open_streams,
                no_holes=no_holes,
                no_holes_read_twice=self.read_twice_for(side, no_holes, read_twice),
                callback=self.callback(side, use_cb),
                callback_size_hint=hint,
                do_fsync=do_fsync,
            )

        status = self.both(
            f'add_streamed_object_to_pack(size={len(content)}, compress={compress}, no_holes={no_holes}, '
            f'read_twice={read_twice}, cb={use_cb}, hint={hint})',
            run,
            cb=cb_stream_bytes,
        )
        assert status == ('ok', self.st.key(content))
        self.after_write(compressed_written=compress)

    # -- reads ------------------------------------------------------------------------------------------------

    def check_content(self, key, data):
        assert data == self.st.known[key], f'wrong content for {key}'
        return data

    def op_get_object_content(self):
        key = self.st.pick_key()
        self.both(
            f'get_object_content({key[:12]})', lambda side: self.check_content(key, side.c.get_object_content(key))
        )

    def op_get_objects_content(self):
        keys = self.st.pick_keys(0, 8)
        skip = self.rng.random() < 0.5

        def run(side):
            result = side.c.get_objects_content(keys, skip_if_missing=skip)
            assert isinstance(result, dict), type(result)
            for key, data in result.items():
                if data is not None:
                    self.check_content(key, data)
            if not skip:
                assert set(result) == set(keys), 'skip_if_missing=False must return every requested key'
            return result

        self.both(f'get_objects_content(n={len(keys)}, skip_if_missing={skip})', run)

    def op_stream(self):
        rng = self.rng
        key = self.st.pick_key(p_missing=0.05, p_bad=0.05)
        script = make_script(rng, rng.randint(1, 10))
        with_meta = rng.random() < 0.5

        def run(side):
            if with_meta:
                manager = side.c.get_object_stream_and_meta(key)
                stream, meta = manager.__enter__()  # pylint: disable=unnecessary-dunder-call
            else:
                meta = side.c.get_object_meta(key)
                manager = side.c.get_object_stream(key)
                stream = manager.__enter__()  # pylint: disable=unnecessary-dunder-call
            try:
                obs = [norm_meta(meta, self.st), stream_kind(stream, meta), stream.seekable()]
                obs += run_script(stream, script, meta)
            finally:
                manager.__exit__(None, None, None)
            obs.append(('closed_after_with', stream.closed))
            return obs

        self.both(
            f'get_object_stream{"_and_meta" if with_meta else ""}({key[:12]}, {len(script)} calls)',
            run,
            stream_op=True,
        )

    def op_bulk_stream(self):
        rng = self.rng
        keys = self.st.pick_keys(0, 10)
        skip = rng.random() < 0.5
        scripts = {key: make_script(rng, rng.randint(1, 4)) if rng.random() < 0.3 else [('read_all', 0.1, 0)] for key in keys}

        def run(side):
            result, order = {}, []
            with side.c.get_objects_stream_and_meta(keys, skip_if_missing=skip) as triplets:
                assert iter(triplets) is triplets, 'get_objects_stream_and_meta must yield an iterator'
                for key, stream, meta in triplets:
                    order.append((key, meta))
                    if stream is None:
                        assert meta.type is ObjectType.MISSING and not skip, (key, meta)
                        result[key] = (norm_meta(meta, self.st), None)
                    else:
                        obs = [stream_kind(stream, meta)] + run_script(stream, scripts[key], meta)
                        result[key] = (norm_meta(meta, self.st), obs)
            check_bulk_order(order)
            if not skip:
                assert set(result) == set(keys)
            return result

        self.both(f'get_objects_stream_and_meta(n={len(keys)}, skip_if_missing={skip})', run, stream_op=True)

    def op_meta(self):
        key = self.st.pick_key()
        self.both(f'get_object_meta({key[:12]})', lambda side: norm_meta(side.c.get_object_meta(key), self.st))

    def op_objects_meta(self):
        keys = self.st.pick_keys(0, 10)
        skip = self.rng.random() < 0.5

        def run(side):
            gen = side.c.get_objects_meta(keys, skip_if_missing=skip)
            assert iter(gen) is gen, 'get_objects_meta must return an iterator'
            items = list(gen)
            check_bulk_order(items)
            if not skip:
                assert {key for key, _ in items} == set(keys)
            return {key: norm_meta(meta, self.st) for key, meta in items}

        self.both(f'get_objects_meta(n={len(keys)}, skip_if_missing={skip})', run)

    def op_has(self):
        keys = self.st.pick_keys(0, 8)
        as_tuple = self.rng.random() < 0.3

        def run(side):
            result = side.c.has_objects(tuple(keys) if as_tuple else keys)
            assert type(result) is list and all(type(x) is bool for x in result), result
            single = [side.c.has_object(key) for key in keys[:3]]
            assert all(type(x) is bool for x in single)
            return result, single

        self.both(f'has_objects(n={len(keys)})', run)

    def op_list_all(self):
        def run(side):
            gen = side.c.list_all_objects()
            assert iter(gen) is gen, 'list_all_objects must return an iterator'
            keys = list(gen)
            assert len(keys) == len(set(keys)), 'list_all_objects yielded a key twice'
            return sorted(keys)

        self.both('list_all_objects', run)

    def op_count(self):
        self.both('count_objects', lambda side: norm_count(side.c.count_objects(), self.st, side.c))

    def op_total_size(self):
        self.both('get_total_size', lambda side: norm_total(side.c.get_total_size(), self.st))

    # -- maintenance ------------------------------------------------------------------------------------------

    def op_pack_all_loose(self):
        rng = self.rng
        modes = [False, CompressMode.NO, CompressMode.KEEP]
        if not self.st.strict:
            modes += [True, CompressMode.YES, CompressMode.AUTO]
        compress = rng.choice(modes)
        loose_only = self.loose_only_count()
        if self.st.strict and loose_only > 1:
            self.op_compare_state()
            return
        use_cb = rng.random() < 0.6
        validate_objects = rng.random() < 0.7
        do_fsync = rng.random() < 0.3
        clean = rng.random() < 0.4

        def run(side):
            return side.c.pack_all_loose(
                compress=compress,
                validate_objects=validate_objects,
                do_fsync=do_fsync,
                callback=self.callback(side, use_cb),
                clean_loose_per_pack=clean,
            )

        self.both(
            f'pack_all_loose(compress={compress}, cb={use_cb}, clean_loose_per_pack={clean}) [{loose_only} loose]',
            run,
            cb=cb_updates_as_multiset,
        )
        if loose_only > 1:
            self.st.layout_exact = False
        self.after_write()

    def op_repack(self):
        modes = [CompressMode.KEEP, CompressMode.NO]
        if not self.st.strict:
            modes += [CompressMode.YES, CompressMode.AUTO]
        mode = self.rng.choice(modes)
        use_cb = self.rng.random() < 0.6
        kwargs = {} if mode is CompressMode.KEEP and self.rng.random() < 0.5 else {'compress_mode': mode}
        self.both(
            f'repack({mode}, cb={use_cb})',
            lambda side: side.c.repack(callback=self.callback(side, use_cb), **kwargs),
            cb=cb_repack,
        )
        self.after_write()
        self.st.repacked()

    def op_repack_pack(self):
        """``repack_pack`` of the pack holding a given packed object (its id on each side)."""
        packed = [key for key, meta in self.ref_metas().items() if meta.type is ObjectType.PACKED]
        if not packed:
            return
        key = self.rng.choice(sorted(packed))
        modes = [CompressMode.KEEP, CompressMode.NO] + ([] if self.st.strict else [CompressMode.YES, CompressMode.AUTO])
        mode = self.rng.choice(modes)
        if not self.st.packs_exact:
            # the pack holding the key holds different other objects on each side: changing compression there
            # would (legitimately) change different objects
            mode = CompressMode.KEEP
        use_cb = self.rng.random() < 0.6

        def run(side):
            pack_id = str(side.c.get_object_meta(key).pack_id)
            return side.c.repack_pack(pack_id, compress_mode=mode, callback=self.callback(side, use_cb))

        self.both(f'repack_pack(<pack of {key[:12]}>, {mode}, cb={use_cb})', run, cb=cb_repack_pack)
        self.after_write()
        self.st.repacked()

    def op_clean_storage(self):
        vacuum = self.rng.random() < 0.5
        self.both(f'clean_storage(vacuum={vacuum})', lambda side: side.c.clean_storage(vacuum=vacuum))

    def op_delete(self, then_repack=False):
        keys = self.st.pick_keys(0, 5, p_missing=0.1, p_bad=0.1)

        def run(side):
            result = side.c.delete_objects(keys)
            assert type(result) is list and all(isinstance(key, str) for key in result), result
            assert len(result) == len(set(result)), 'delete_objects returned a key twice'
            return sorted(result)

        self.both(f'delete_objects(n={len(keys)})', run)
        if then_repack:
            use_cb = self.rng.random() < 0.5
            self.both(
                f'repack(cb={use_cb}) after delete',
                lambda side: side.c.repack(callback=self.callback(side, use_cb)),
                cb=cb_repack,
            )
            self.st.repacked()

    def op_validate(self):
        use_cb = self.rng.random() < 0.7

        def run(side):
            result = norm_issues(side.c.validate(callback=self.callback(side, use_cb)))
            assert result[0], f'validate() found issues: {result}'
            return result

        self.both(f'validate(cb={use_cb})', run, cb=cb_validate)

    def source(self, kind):
        """A source container for import_objects, of the reference class or of the class under test."""
        if kind not in self.sources:
            rng = self.rng
            cls = RefContainer if kind == 'ref' else self.impl_cls
            hash_type = rng.choice(['sha256', 'sha1'])
            container = cls(self.tmp_path / f'source-{kind}')
            container.init_container(
                hash_type=hash_type,
                loose_prefix_len=rng.choice([0, 2]),
                pack_size_target=rng.choice([500, BIG_TARGET]),
                compression_algorithm=rng.choice(['zlib+1', 'zlib+9']),
            )
            contents = rng.sample(self.st.pool, rng.randint(3, 10))
            cut = rng.randint(0, len(contents))
            for content in contents[:cut]:
                container.add_object(content)
            container.add_objects_to_pack(contents[cut:], compress=rng.random() < 0.5)
            if rng.random() < 0.5:
                container.pack_all_loose(compress=rng.choice([CompressMode.NO, CompressMode.YES]))
            self.sources[kind] = (container, [hash_of(hash_type, content) for content in contents])
        return self.sources[kind]

    def op_import(self):
        rng = self.rng
        kind = rng.choice(['ref', 'impl'])
        source, source_keys = self.source(kind)
        if self.st.strict:
            keys = [rng.choice(source_keys)]
        else:
            keys = rng.sample(source_keys, rng.randint(0, len(source_keys)))
            keys += rng.sample(keys, min(len(keys), rng.randint(0, 2)))  # duplicates
        keys += [self.st.pick_key(p_missing=0.5, p_bad=0) for _ in range(rng.randint(0, 2))]
        rng.shuffle(keys)
        compress = self.compress_flag()
        target = rng.choice([DEFAULT_TARGET_MEMORY, DEFAULT_TARGET_MEMORY, 1, 5000])
        # the "Final flush" callback block's total depends on which objects land in the last memory batch,
        # i.e. on the source's iteration order: only use a callback with the default (100 MB) batch
        use_cb = target == DEFAULT_TARGET_MEMORY and rng.random() < 0.6
        do_fsync = rng.random() < 0.3

        def run(side):
            result = side.c.import_objects(
                list(keys),
                source,
                compress=compress,
                target_memory_bytes=target,
                callback=self.callback(side, use_cb),
                do_fsync=do_fsync,
            )
            assert isinstance(result, dict), type(result)
            for old, new in result.items():
                assert new == self.st.key(self.st.known[old]), (old, new)
            return result

        status = self.both(
            f'import_objects(n={len(keys)}, source={kind}/{source.hash_type}, compress={compress}, '
            f'target_memory={target}, cb={use_cb})',
            run,
        )
        if status[0] == 'ok' and len(status[1]) > 1:
            self.st.layout_exact = False
        self.after_write(compressed_written=compress and status[0] == 'ok' and bool(status[1]))

    def op_loosen(self):
        key = self.st.pick_key(p_missing=0.15, p_bad=0.05)

        def run(side):
            path = side.c.loosen_object(key)
            assert isinstance(path, Path), type(path)
            self.check_content(key, path.read_bytes())
            return path.relative_to(side.c.get_folder()).as_posix()

        self.both(f'loosen_object({key[:12]})', run)

    def op_lazy(self):
        key = self.st.pick_key(p_missing=0.15, p_bad=0.05)

        def run(side):
            lazy = side.c.get_lazy_loose_stream(key)
            obs = [lazy.closed, lazy.mode, lazy.seekable()]
            with lazy as stream:
                obs.append(stream is lazy)
                obs.append(self.check_content(key, stream.read()))
                obs.append(stream.seek(0))
                obs.append(stream.read(5))
                obs.append(stream.tell())
            obs.append(lazy.closed)
            return obs

        self.both(f'get_lazy_loose_stream({key[:12]})', run)

    # -- container level ----------------------------------------------------------------------------------------

    def op_properties(self):
        def run(side):
            c = side.c
            assert re.fullmatch('[0-9a-f]{32}', c.container_id), c.container_id
            folder = c.get_folder()
            assert isinstance(folder, Path) and folder == side.folder.resolve(), folder
            return (c.is_initialised, c.loose_prefix_len, c.pack_size_target, c.hash_type, c.compression_algorithm)

        self.both('properties', run)
        assert self.ref.c.container_id != self.imp.c.container_id

    def op_init_again(self):
        self.both('init_container() again', lambda side: side.c.init_container(**self.st.config))

    def op_init_clear(self):
        config = dict(self.rng.choice(CONFIGS))

        def run(side):
            old = side.c.container_id
            side.c.init_container(clear=True, **config)
            assert side.c.container_id != old
            return (side.c.hash_type, side.c.loose_prefix_len, sorted(side.c.list_all_objects()))

        self.both(f'init_container(clear=True, {config})', run)
        self.st.config = config
        self.st.layout_exact = True
        self.st.sizes_exact = True

    def op_reopen(self):
        def run(side):
            side.reopen()
            return side.c.is_initialised

        self.both('close() + new instance', run)

    def op_close(self):
        def run(side):
            with side.c as entered:
                assert entered is side.c
            side.c.close()  # closing twice is fine; the instance stays usable

        self.both('with container: / close()', run)

    def op_compare_state(self):
        def run(side):
            keys = sorted(side.c.list_all_objects())
            metas = dict(side.c.get_objects_meta(keys))
            contents = side.c.get_objects_content(keys)
            for key in keys:
                self.check_content(key, contents[key])
            return (
                keys,
                {key: norm_meta(metas[key], self.st) for key in keys},
                norm_count(side.c.count_objects(), self.st, side.c),
                norm_total(side.c.get_total_size(), self.st),
            )

        self.both('(full state)', run)

    # -- the sequence ---------------------------------------------------------------------------------------------

    OPS = (
        ('op_add_object', 10),
        ('op_add_streamed_object', 4),
        ('op_add_objects_to_pack', 8),
        ('op_add_streamed_objects_to_pack', 6),
        ('op_add_streamed_object_to_pack', 4),
        ('op_get_object_content', 5),
        ('op_get_objects_content', 4),
        ('op_stream', 9),
        ('op_bulk_stream', 4),
        ('op_meta', 3),
        ('op_objects_meta', 3),
        ('op_has', 3),
        ('op_list_all', 2),
        ('op_count', 2),
        ('op_total_size', 2),
        ('op_pack_all_loose', 6),
        ('op_repack', 2),
        ('op_repack_pack', 1),
        ('op_clean_storage', 2),
        ('op_delete', 4),
        ('op_delete_then_repack', 1),
        ('op_validate', 2),
        ('op_import', 3),
        ('op_loosen', 2),
        ('op_lazy', 2),
        ('op_properties', 1),
        ('op_init_again', 1),
        ('op_init_clear', 0.3),
        ('op_reopen', 1),
        ('op_close', 1),
        ('op_compare_state', 2),
    )

    def op_delete_then_repack(self):
        self.op_delete(then_repack=True)

    def run(self, n_ops):
        names = [name for name, _ in self.OPS]
        weights = [weight for _, weight in self.OPS]
        for name in self.rng.choices(names, weights=weights, k=n_ops):
            getattr(self, name)()
        self.op_compare_state()
        self.op_validate()
        self.cross_check()

    def cross_check(self):
        """Each implementation opens the other's folder (and its own, afresh): validate and read everything."""
        for side in self.sides:
            side.c.close()
        with RefContainer(self.ref.folder) as ref:
            expected = sorted(ref.list_all_objects())
        configs = {}
        for side in self.sides:
            with open(side.folder / 'config.json', encoding='utf8') as handle:
                configs[side.role] = json.load(handle)
        assert set(configs['impl']) == {
            'container_version',
            'loose_prefix_len',
            'pack_size_target',
            'hash_type',
            'container_id',
            'compression_algorithm',
        }, configs['impl']
        assert {**configs['impl'], 'container_id': MASK} == {**configs['ref'], 'container_id': MASK}
        for opener, side in (
            (self.impl_cls, self.ref),
            (RefContainer, self.imp),
            (RefContainer, self.ref),
            (self.impl_cls, self.imp),
        ):
            label = f'{opener.__module__}.{opener.__name__} opening the {side.role} folder'
            with opener(side.folder) as container:
                issues = norm_issues(container.validate())
                if not issues[0]:
                    self.fail(label, f'validate() reports {issues}')
                keys = sorted(container.list_all_objects())
                if keys != expected:
                    self.fail(label, f'lists other objects: {first_diff(expected, keys)}')
                contents = container.get_objects_content(keys)
                for key in keys:
                    if contents[key] != self.st.known[key]:
                        self.fail(label, f'{key}: content differs (get_objects_content)')
                for key in self.rng.sample(keys, min(4, len(keys))):
                    with container.get_object_stream(key) as stream:
                        if stream.read() != self.st.known[key]:
                            self.fail(label, f'{key}: content differs (get_object_stream)')
                assert (container.hash_type, container.loose_prefix_len, container.compression_algorithm) == (
                    self.st.hash_type,
                    self.st.config['loose_prefix_len'],
                    self.st.config['compression_algorithm'],
                )
        for source, _ in self.sources.values():
            source.close()


def test_implementation_is_importable(request):
    """A plain FAILED (not only setup errors) when the implementation under test is missing."""
    cls = request.getfixturevalue('impl_cls')
    assert issubclass(cls, RefContainer)


@pytest.mark.parametrize('seed', range(N_CASES), ids=case_id)
def test_differential_sequence(seed, impl_cls, impl_name, tmp_path):
    sequence = Sequence(seed, impl_cls, impl_name, tmp_path)
    try:
        sequence.run(N_OPS)
    finally:
        for side in sequence.sides:
            side.c.close()
        for source, _ in sequence.sources.values():
            source.close()


# ----------------------------------------------------------------------------------------------------------------
# Deterministic differential tests of error paths


def compare_calls(calls, ref, imp, label=''):
    """Run each ``(name, fn)`` on both containers; compare outcome (exception type or normalised value)."""
    for name, call in calls:
        outcomes = []
        for container in (ref, imp):
            try:
                value = call(container)
                if hasattr(value, '__next__'):
                    value = list(value)
                outcomes.append(('ok', value))
            except Exception as exc:  # noqa: BLE001
                outcomes.append(('exc', exc))
        (ref_kind, ref_value), (imp_kind, imp_value) = outcomes
        assert ref_kind == imp_kind, f'{label}{name}: reference {outcomes[0]!r}, impl {outcomes[1]!r}'
        if ref_kind == 'exc':
            assert isinstance(imp_value, type(ref_value)), (
                f'{label}{name}: reference raised {type(ref_value).__name__}({ref_value}), '
                f'impl raised {type(imp_value).__name__}({imp_value})'
            )


KEY = 'a' * 64
NOT_INITIALISED_CALLS = (
    # exception types upstream raises are commented: NotInitialised only where the config is read first
    ('is_initialised', lambda c: c.is_initialised),  # -> False
    ('loose_prefix_len', lambda c: c.loose_prefix_len),  # NotInitialised
    ('pack_size_target', lambda c: c.pack_size_target),  # NotInitialised
    ('hash_type', lambda c: c.hash_type),  # NotInitialised
    ('compression_algorithm', lambda c: c.compression_algorithm),  # NotInitialised
    ('container_id', lambda c: c.container_id),  # NotInitialised
    ('add_object', lambda c: c.add_object(b'x')),  # NotInitialised
    ('add_streamed_object', lambda c: c.add_streamed_object(io.BytesIO(b'x'))),  # NotInitialised
    ('add_objects_to_pack', lambda c: c.add_objects_to_pack([b'x'])),  # ValueError (container.py 1874)
    ('add_streamed_objects_to_pack', lambda c: c.add_streamed_objects_to_pack([io.BytesIO(b'x')])),  # FileNotFoundError
    ('add_streamed_object_to_pack', lambda c: c.add_streamed_object_to_pack(io.BytesIO(b'x'))),  # FileNotFoundError
    ('get_object_content', lambda c: c.get_object_content(KEY)),  # FileNotFoundError('Pack index does not exist')
    ('get_objects_content', lambda c: c.get_objects_content([KEY])),  # FileNotFoundError
    ('get_objects_content([])', lambda c: c.get_objects_content([])),  # FileNotFoundError
    ('get_object_meta', lambda c: c.get_object_meta(KEY)),  # FileNotFoundError
    ('get_objects_meta', lambda c: c.get_objects_meta([KEY])),  # FileNotFoundError (when iterated)
    ('has_objects', lambda c: c.has_objects([KEY])),  # FileNotFoundError
    ('has_objects([])', lambda c: c.has_objects([])),  # FileNotFoundError
    ('has_object', lambda c: c.has_object(KEY)),  # FileNotFoundError
    ('list_all_objects', lambda c: c.list_all_objects()),  # FileNotFoundError (os.listdir of loose/)
    ('count_objects', lambda c: c.count_objects()),  # FileNotFoundError
    ('get_total_size', lambda c: c.get_total_size()),  # FileNotFoundError
    ('pack_all_loose', lambda c: c.pack_all_loose()),  # NotInitialised (reads hash_type first)
    ('repack', lambda c: c.repack()),  # FileNotFoundError (os.listdir of packs/)
    ('clean_storage', lambda c: c.clean_storage()),  # FileNotFoundError (os.listdir of duplicates/)
    ('clean_storage(vacuum)', lambda c: c.clean_storage(vacuum=True)),  # FileNotFoundError
    ('delete_objects', lambda c: c.delete_objects([KEY])),  # FileNotFoundError
    ('delete_objects([])', lambda c: c.delete_objects([])),  # FileNotFoundError
    ('validate', lambda c: c.validate()),  # FileNotFoundError
    ('loosen_object', lambda c: c.loosen_object(KEY)),  # NotInitialised
    ('get_object_stream', lambda c: c.get_object_stream(KEY).__enter__()),  # FileNotFoundError
    ('get_objects_stream_and_meta', lambda c: list(c.get_objects_stream_and_meta([KEY]).__enter__())),  # FileNotFoundError
    ('import_objects', lambda c: c.import_objects([KEY], c)),  # NotInitialised
    ('get_folder', lambda c: c.get_folder().name),  # works
    ('is_initialised (after)', lambda c: c.is_initialised),  # -> False
)


@pytest.mark.parametrize('folder_state', ['absent', 'empty'])
def test_not_initialised(folder_state, impl_cls, tmp_path):
    containers = []
    for role, cls in (('ref', RefContainer), ('impl', impl_cls)):
        folder = tmp_path / role
        if folder_state == 'empty':
            folder.mkdir()
        containers.append(cls(folder))
    ref, imp = containers
    try:
        compare_calls(NOT_INITIALISED_CALLS, ref, imp, f'{folder_state} folder: ')
        assert not ref.is_initialised and not imp.is_initialised
        for role in ('ref', 'impl'):
            folder = tmp_path / role
            assert folder.exists() == (folder_state == 'empty'), f'{role}: folder existence changed'
            if folder.exists():
                assert not os.listdir(folder), f'{role}: files were created in a non-initialised container'
        # the exact types, to make the expectations explicit
        with pytest.raises(NotInitialised):
            imp.add_object(b'x')
        with pytest.raises(FileNotFoundError):
            imp.get_object_content(KEY)
        with pytest.raises(ValueError):
            imp.add_objects_to_pack([b'x'])
    finally:
        ref.close()
        imp.close()


def test_init_container_errors(impl_cls, tmp_path):
    ref, imp = RefContainer(tmp_path / 'ref'), impl_cls(tmp_path / 'impl')
    try:
        for container in (ref, imp):
            container.init_container()
        calls = [
            ('init twice', lambda c: c.init_container()),  # FileExistsError
            ('init twice, other args', lambda c: c.init_container(loose_prefix_len=3)),  # FileExistsError
            ('init twice, bad compression', lambda c: c.init_container(compression_algorithm='gzip')),  # FileExistsError
            ('init twice, negative prefix', lambda c: c.init_container(loose_prefix_len=-1)),  # ValueError (checked first)
        ]
        compare_calls(calls, ref, imp)
        with pytest.raises(FileExistsError):
            imp.init_container()
        key = imp.add_object(b'survives?')
        ref.add_object(b'survives?')
        ids = (ref.container_id, imp.container_id)
        for container in (ref, imp):
            container.init_container(
                clear=True, loose_prefix_len=3, hash_type='sha1', compression_algorithm='zlib+9', pack_size_target=77
            )
        assert ref.container_id != ids[0] and imp.container_id != ids[1]
        for container in (ref, imp):
            assert (container.loose_prefix_len, container.hash_type, container.compression_algorithm) == (
                3,
                'sha1',
                'zlib+9',
            )
            assert container.pack_size_target == 77
            assert container.has_objects([key]) == [False]
            assert list(container.list_all_objects()) == []
            new_key = container.add_object(b'survives?')
            assert new_key == hash_of('sha1', b'survives?')
    finally:
        ref.close()
        imp.close()


@pytest.mark.parametrize(
    'kwargs',
    [
        {'loose_prefix_len': -1},
        {'pack_size_target': 0},
        {'pack_size_target': -5},
        {'hash_type': 'md5'},
        {'hash_type': 'sha512'},
        {'hash_type': 'SHA256'},
        {'compression_algorithm': 'zlib'},
        {'compression_algorithm': 'zlib+0'},
        {'compression_algorithm': 'zlib+10'},
        {'compression_algorithm': 'zlib+a'},
        {'compression_algorithm': 'gzip+1'},
        {'compression_algorithm': 'zstd+30'},
    ],
    ids=lambda kw: '-'.join(f'{k}={v}' for k, v in kw.items()),
)
def test_init_container_invalid_arguments(kwargs, impl_cls, tmp_path):
    ref, imp = RefContainer(tmp_path / 'ref'), impl_cls(tmp_path / 'impl')
    try:
        compare_calls([(f'init_container({kwargs})', lambda c: c.init_container(**kwargs))], ref, imp)
        with pytest.raises(ValueError):
            impl_cls(tmp_path / 'impl2').init_container(**kwargs)
        assert not ref.is_initialised and not imp.is_initialised
    finally:
        ref.close()
        imp.close()


@pytest.mark.parametrize('hash_type', ['sha256', 'sha1'])
@pytest.mark.parametrize('compression_algorithm', [f'zlib+{level}' for level in range(1, 10)])
def test_init_container_valid_arguments(hash_type, compression_algorithm, impl_cls, tmp_path):
    container = impl_cls(tmp_path / 'c')
    try:
        container.init_container(hash_type=hash_type, compression_algorithm=compression_algorithm)
        assert container.hash_type == hash_type and container.compression_algorithm == compression_algorithm
        data = b'compress me ' * 100
        [key] = container.add_objects_to_pack([data], compress=True)
        assert key == hash_of(hash_type, data)
        assert container.get_object_content(key) == data
        assert container.get_object_meta(key).pack_compressed is True
    finally:
        container.close()
    with RefContainer(tmp_path / 'c') as ref:
        assert ref.get_object_content(key) == data
        assert ref.validate().is_valid()


def test_init_container_in_non_empty_folder(impl_cls, tmp_path):
    for role, cls in (('ref', RefContainer), ('impl', impl_cls)):
        folder = tmp_path / role
        folder.mkdir()
        (folder / 'unrelated').write_text('x')
        with pytest.raises(FileExistsError):
            cls(folder).init_container()
        assert os.listdir(folder) == ['unrelated'], role


def test_compress_argument_types(impl_cls, tmp_path):
    """Direct-to-pack writes and import_objects take only a bool (upstream asserts it, container.py 1594)."""
    ref, imp = RefContainer(tmp_path / 'ref'), impl_cls(tmp_path / 'impl')
    source = RefContainer(tmp_path / 'source')
    try:
        for container in (ref, imp, source):
            container.init_container()
        present = source.add_object(b'already there')
        for container in (ref, imp):
            container.add_object(b'already there')
        new = source.add_object(b'new object')
        calls = []
        for mode in (CompressMode.YES, CompressMode.NO, CompressMode.AUTO, CompressMode.KEEP):
            calls += [
                (f'add_objects_to_pack({mode})', lambda c, m=mode: c.add_objects_to_pack([b'x'], compress=m)),
                (
                    f'add_streamed_objects_to_pack({mode})',
                    lambda c, m=mode: c.add_streamed_objects_to_pack([io.BytesIO(b'x')], compress=m),
                ),
                (
                    f'add_streamed_object_to_pack({mode})',
                    lambda c, m=mode: c.add_streamed_object_to_pack(io.BytesIO(b'x'), compress=m),
                ),
                # raises only when there is something to copy (the assert is in add_objects_to_pack)
                (f'import_objects(new, {mode})', lambda c, m=mode: c.import_objects([new], source, compress=m)),
                (f'import_objects(present, {mode})', lambda c, m=mode: c.import_objects([present], source, compress=m)),
            ]
        compare_calls(calls, ref, imp)
        with pytest.raises(AssertionError):
            imp.add_objects_to_pack([b'x'], compress=CompressMode.YES)
        assert imp.import_objects([present], source, compress=CompressMode.YES) == {}
        for container in (ref, imp):
            assert container.count_objects().packed == 0
        # pack_all_loose accepts bools and every CompressMode (KEEP == NO for loose objects)
        for mode in (True, False, CompressMode.YES, CompressMode.NO, CompressMode.AUTO, CompressMode.KEEP):
            for container in (ref, imp):
                container.add_object(repr(mode).encode() * 100)
                container.pack_all_loose(compress=mode)
        expected = {key: meta.pack_compressed for key, meta in ref.get_objects_meta(list(ref.list_all_objects()))}
        assert {key: meta.pack_compressed for key, meta in imp.get_objects_meta(list(expected))} == expected
    finally:
        for container in (ref, imp, source):
            container.close()


def test_missing_and_invalid_keys(impl_cls, tmp_path):
    ref, imp = RefContainer(tmp_path / 'ref'), impl_cls(tmp_path / 'impl')
    try:
        for container in (ref, imp):
            container.init_container()
            loose = container.add_object(b'loose')
            [packed] = container.add_objects_to_pack([b'packed'])
        keys = [
            'f' * 64,
            loose.upper(),
            'g' * 64,
            loose[:-1],
            loose + '0',
            'xyzw',
            packed[:40],
            loose[:3],
        ]
        calls = []
        for key in keys:
            calls += [
                (f'get_object_content({key})', lambda c, k=key: c.get_object_content(k)),  # NotExistent
                (f'get_object_meta({key})', lambda c, k=key: c.get_object_meta(k)),  # NotExistent
                (f'get_object_stream({key})', lambda c, k=key: c.get_object_stream(k).__enter__()),  # NotExistent
                (f'loosen_object({key})', lambda c, k=key: c.loosen_object(k)),  # NotExistent
                (f'lazy({key})', lambda c, k=key: c.get_lazy_loose_stream(k).open_stream()),  # NotExistent
            ]
        compare_calls(calls, ref, imp)
        for key in keys:
            with pytest.raises(NotExistent):
                imp.get_object_content(key)
            with pytest.raises(NotExistent):
                imp.get_object_meta(key)
        assert imp.has_objects(keys + [loose, packed]) == [False] * len(keys) + [True, True]
        assert imp.get_objects_content(keys) == {}
        assert imp.get_objects_content(keys + [loose], skip_if_missing=False) == {
            **{key: None for key in keys},
            loose: b'loose',
        }
        missing = dict(imp.get_objects_meta(keys, skip_if_missing=False))
        assert set(missing) == set(keys)
        assert all(meta.type is ObjectType.MISSING and meta.size is None for meta in missing.values())
        assert list(imp.get_objects_meta(keys)) == []
        assert imp.delete_objects(keys) == []
        # duplicates in the input: has_objects answers per element, the dict/bulk readers once per key
        assert imp.has_objects([loose, loose, 'f' * 64]) == [True, True, False]
        assert imp.get_objects_content([loose, loose]) == {loose: b'loose'}
        assert sorted(imp.delete_objects([loose, loose, packed, 'f' * 64])) == sorted([loose, packed])
    finally:
        ref.close()
        imp.close()


def test_no_holes_without_read_twice(impl_cls, impl_name, tmp_path):
    """``no_holes=True, no_holes_read_twice=False``: upstream corrupts the pack (reference 8.4 and 9.2).

    The pack handle is opened with O_APPEND, so after seeking back over a duplicate the next write still goes to
    the end of the file while its offset is recorded at the seek position, and the final ``truncate()`` cuts real
    data. dos must not copy this: its result must equal upstream's correct ``no_holes_read_twice=True`` result.
    With DOS_PY_IMPL=upstream this test asserts that the bug is still there.
    """
    contents = [b'1234567', b'1234567', b'wefvmafsf', b'224f', b'wefvmafsf', b'224f']
    expected_keys = [hash_of('sha256', content) for content in contents]
    reference = RefContainer(tmp_path / 'ref')
    reference.init_container()
    container = impl_cls(tmp_path / 'impl')
    container.init_container()
    try:
        assert reference.add_objects_to_pack(contents, no_holes=True, no_holes_read_twice=True) == expected_keys
        assert container.add_objects_to_pack(contents, no_holes=True, no_holes_read_twice=False) == expected_keys
        pack = (tmp_path / 'impl' / 'packs' / '0').read_bytes()
        issues = container.validate()
        if impl_name == 'upstream':
            # the documented corruption
            assert pack == b'12345671234567wefvma'
            assert not issues.is_valid()
            assert sorted(issues.invalid_hashes_packed) == sorted({expected_keys[2], expected_keys[3]})
            assert container.get_object_content(expected_keys[2]) != contents[2]
            return
        assert issues.is_valid(), issues
        assert pack == (tmp_path / 'ref' / 'packs' / '0').read_bytes() == b'1234567wefvmafsf224f'
        for key, content in zip(expected_keys, contents):
            assert container.get_object_content(key) == content
        ref_metas = dict(reference.get_objects_meta(expected_keys))
        assert dict(container.get_objects_meta(expected_keys)) == ref_metas
        # and again, with objects that are already packed: nothing is appended
        more = [b'224f', b'new one', b'1234567', b'new one']
        assert container.add_objects_to_pack(more, no_holes=True, no_holes_read_twice=False) == reference.add_objects_to_pack(
            more, no_holes=True, no_holes_read_twice=True
        )
        assert (tmp_path / 'impl' / 'packs' / '0').read_bytes() == (tmp_path / 'ref' / 'packs' / '0').read_bytes()
        assert container.validate().is_valid()
    finally:
        reference.close()
        container.close()
