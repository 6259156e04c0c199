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
