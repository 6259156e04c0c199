"""Offloaded packs from Python, against the real Ceph radosgw ``./scripts/test.sh`` starts
(``DOS_TEST_S3_ENV`` names its ``s3.env``; without it these tests fail, never skip):
dos_objectstore reads objects of offloaded packs exactly as local ones (whole, in bulk, streams
with seeks), validates them, opens a published snapshot by its ``s3://`` URL read-only, and
disk-objectstore refuses offloaded objects with an error (never wrong bytes) until they are
fetched back."""

from __future__ import annotations

import hashlib
import os
import random
import uuid

import disk_objectstore
import pytest

import dos_objectstore


def s3_env() -> dict[str, str]:
    path = os.environ.get('DOS_TEST_S3_ENV')
    if not path:
        pytest.fail(
            'DOS_TEST_S3_ENV is not set: these tests need a real S3 server; run ./scripts/test.sh '
            '(it starts a local Ceph) or scripts/ceph-s3.sh start DIR dos-test',
            pytrace=False,
        )
    env = dict(line.split('=', 1) for line in open(path).read().split() if '=' in line)
    return env


@pytest.fixture
def s3(monkeypatch, tmp_path):
    env = s3_env()
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', env['AWS_ACCESS_KEY_ID'])
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', env['AWS_SECRET_ACCESS_KEY'])
    monkeypatch.setenv('AWS_ENDPOINT_URL', env['S3_ENDPOINT'])
    monkeypatch.setenv('AWS_REGION', 'us-east-1')
    monkeypatch.setenv('DOS_CACHE_DIR', str(tmp_path / 'cache'))
    bucket = os.environ.get('DOS_TEST_S3_BUCKET', 'dos-test')
    return f's3://{bucket}/py-{uuid.uuid4().hex[:12]}'


def contents(seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = [b'', b'y']
    for i in range(80):
        n = rnd.choice((30, 4000, 90000))
        out.append((f'step {i} energy {rnd.random()}\n'.encode() * (n // 20 + 1))[:n])
    out.append(rnd.randbytes(3_000_000))
    out.append(b'frame 0.5 0.25\n' * 400_000)  # 6 MB, compressible
    return out


def test_offloaded_packs_read_from_python_and_published_snapshot(tmp_path, s3):
    c = dos_objectstore.Container(tmp_path / 'c')
    c.init_container(pack_size_target=200_000)
    data = contents(3)
    keys = c.add_objects_to_pack(data[::2], compress=True)
    keys += c.add_objects_to_pack(data[1::2], compress=False)
    data = data[::2] + data[1::2]
    c.add_object(b'a loose one')
    c.remote_set(s3)
    done = c.offload()
    assert len(done['packs']) >= 2, done
    places = c.pack_places()
    assert any(p['remote'] and not p['local'] for p in places), places

    assert [c.get_object_content(k) for k in keys] == data
    assert c.get_objects_content(keys) == dict(zip(keys, data))
    seen = 0
    with c.get_objects_stream_and_meta(keys) as it:
        for k, stream, meta in it:
            assert stream.read() == data[keys.index(k)]
            seen += 1
    assert seen == len(set(keys))
    rnd = random.Random(5)
    for k, d in zip(keys, data):
        if len(d) < 100_000:
            continue
        with c.get_object_stream(k) as s:
            for _ in range(20):
                pos = rnd.randrange(len(d))
                s.seek(pos)
                assert s.read(4096) == d[pos : pos + 4096]
    assert c.validate().is_valid()
    assert c.count_objects().packed == len(set(keys))

    # disk-objectstore: an error for every offloaded object, never other bytes.
    up = disk_objectstore.Container(tmp_path / 'c')
    refused = 0
    for k, d in zip(keys, data):
        try:
            got = up.get_object_content(k)
        except Exception:  # noqa: BLE001 - any error is a refusal
            refused += 1
            continue
        assert hashlib.sha256(got).hexdigest() == k
    assert refused > 0
    up.close()

    # A published snapshot, opened by its URL alone: read-only.
    c.publish()
    r = dos_objectstore.Container(s3)
    assert sorted(r.list_all_objects()) == sorted(set(keys))
    assert r.get_objects_content(keys) == dict(zip(keys, data))
    with pytest.raises(Exception, match='read-only'):
        r.add_object(b'nope')
    r.close()

    # Back to local: disk-objectstore reads and validates everything.
    fetched = c.fetch_packs()
    assert fetched['fetched'], fetched
    c.close()
    up = disk_objectstore.Container(tmp_path / 'c')
    assert up.get_objects_content(keys) == dict(zip(keys, data))
    assert up.validate().is_valid()
    up.close()
    # The fetched packs' remote copies are still what the published snapshot names: clean keeps
    # them, and the snapshot stays readable.
    c = dos_objectstore.Container(tmp_path / 'c')
    cleaned = c.clean_remote(grace_seconds=0)
    assert cleaned['objects_deleted'] == 0, cleaned
    r = dos_objectstore.Container(s3)
    assert r.get_objects_content(keys) == dict(zip(keys, data))
    assert r.validate().is_valid()
    r.close()
