"""zstd containers from Python: dos_objectstore writes and reads them (whole, in bulk, through
seekable streams checked against the content), validates them, and disk-objectstore 1.5 refuses
to read their compressed objects instead of returning wrong bytes."""

from __future__ import annotations

import hashlib
import random

import disk_objectstore
import pytest

import dos_objectstore


def contents(seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = [b'', b'x']
    for i in range(60):
        n = rnd.choice((10, 3000, 70000))
        out.append((f'step {i} energy {rnd.random()}\n'.encode() * (n // 20 + 1))[:n])
    out.append(b'trajectory frame 0.125 0.5 0.75\n' * 300000)  # ~9.6 MB, streamed
    return out


@pytest.mark.parametrize('algo', ['zstd+1', 'zstd+3', 'zstd+19'])
def test_zstd_round_trip_and_seeks(tmp_path, algo):
    c = dos_objectstore.Container(tmp_path / 'c')
    c.init_container(compression_algorithm=algo)
    data = contents(7)
    packed = c.add_objects_to_pack(data[: len(data) // 2], compress=True)
    loose = [c.add_object(d) for d in data[len(data) // 2 :]]
    c.pack_all_loose(compress=True)
    keys = packed + loose
    assert [c.get_object_content(k) for k in keys] == data
    assert c.get_objects_content(keys) == dict(zip(keys, data))
    rnd = random.Random(1)
    for k, d in zip(keys, data):
        if len(d) < 100:
            continue
        with c.get_object_stream(k) as s:
            for _ in range(10):
                at = rnd.randrange(len(d))
                s.seek(at)
                n = rnd.randrange(1, 5000)
                assert s.read(n) == d[at : at + n]
                assert s.tell() == min(at + n, len(d))
            s.seek(-10, 2)
            assert s.read() == d[-10:]
    assert c.validate().is_valid()
    meta = c.get_object_meta(keys[-1])
    assert meta['type'] == disk_objectstore.ObjectType.PACKED and meta['pack_compressed'] is True

    # disk-objectstore: right bytes or an error, never wrong bytes; at least one refusal.
    up = disk_objectstore.Container(tmp_path / 'c')
    refused = 0
    for k, d in zip(keys, data):
        try:
            got = up.get_object_content(k)
        except Exception:  # noqa: BLE001 - any error is a refusal
            refused += 1
            continue
        assert hashlib.sha256(got).digest() == hashlib.sha256(d).digest()
    assert refused > 0
    with pytest.raises(Exception):
        assert not up.validate().is_valid()
        raise AssertionError('validate reported a zstd container invalid without raising')


@pytest.mark.parametrize('algo', ['zlib+1', 'zlib+9', 'zstd+3'])
@pytest.mark.parametrize('streamed', [False, True])
def test_random_access_in_a_large_compressed_object(tmp_path, algo, streamed):
    """An 11 MB compressed object read with random seeks in every direction, checked against its
    content; nothing is written into the container (no loose copy), in zlib and zstd containers,
    for an object compressed in memory and one streamed from a file."""
    rnd = random.Random(5)
    parts = []
    for i in range(400):
        parts.append(f'frame {i} positions {rnd.random():.6f} {rnd.random():.6f}\n'.encode() * 700)
        parts.append(rnd.randbytes(2000))
    data = b''.join(parts)
    assert len(data) > 11_000_000
    c = dos_objectstore.Container(tmp_path / 'c')
    c.init_container(compression_algorithm=algo)
    if streamed:
        src = tmp_path / 'big.bin'
        src.write_bytes(data)
        with open(src, 'rb') as f:
            key = c.add_streamed_object_to_pack(f, compress=True)
    else:
        [key] = c.add_objects_to_pack([data], compress=True)
    assert c.get_object_meta(key)['pack_compressed'] is True
    before = sorted(p.name for p in (tmp_path / 'c' / 'loose').rglob('*'))
    with c.get_object_stream(key) as s:
        for step in range(300):
            how = step % 3
            if how == 0:
                at = rnd.randrange(len(data))
                s.seek(at)
            elif how == 1:
                at = min(max(s.tell() + rnd.randrange(-3_000_000, 3_000_000), 0), len(data))
                s.seek(at - s.tell(), 1)
            else:
                at = len(data) - rnd.randrange(0, 4_000_000)
                s.seek(at - len(data), 2)
            assert s.tell() == at
            n = rnd.randrange(1, 9000)
            assert s.read(n) == data[at : at + n]
    assert sorted(p.name for p in (tmp_path / 'c' / 'loose').rglob('*')) == before
