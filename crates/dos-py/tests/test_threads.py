"""Several Python threads reading and writing one container of the class under test at the same time.

Two ways of sharing:

* one ``Container`` instance per thread, all on the same folder: this is what disk-objectstore supports (its
  concurrency model is "any number of readers and loose writers, one packer", normally separate processes);
* one ``Container`` instance shared by all threads: upstream does not support this. Its SQLAlchemy operation
  session is shared, and in a trial on 1.5.0 four threads doing ``add_object`` + ``get_object_content`` on one
  instance raised ``sqlalchemy.exc.InvalidRequestError`` ("This session is provisioning a new connection;
  concurrent operations are not permitted") or crashed the interpreter with a segmentation fault. dos releases
  the GIL inside its calls, so it must be safe here; the test runs only with ``DOS_PY_IMPL=dos``.

Objects are drawn from a small shared set so that threads often write the same object at the same moment.
"""

from __future__ import annotations

import hashlib
import random
import threading

import pytest

import disk_objectstore

N_THREADS = 4
N_ITERATIONS = 200


def make_objects():
    rng = random.Random(5)
    objects = [b''] + [rng.randbytes(rng.randint(1, 3000)) for _ in range(150)]
    objects += [(b'shared %d ' % i) * 200 for i in range(20)]
    return objects


def run_threads(worker, n_threads=N_THREADS):
    errors = []
    barrier = threading.Barrier(n_threads)

    def wrapped(index):
        try:
            barrier.wait(timeout=60)
            worker(index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((index, repr(exc)))

    threads = [threading.Thread(target=wrapped, args=(index,), daemon=True) for index in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
        assert not thread.is_alive(), 'a thread hung'
    assert not errors, errors


def reader_writer(container_for, objects, written, lock):
    def worker(index):
        container = container_for(index)
        rng = random.Random(index)
        mine = {}
        for iteration in range(N_ITERATIONS):
            data = rng.choice(objects)
            key = container.add_object(data)
            assert key == hashlib.sha256(data).hexdigest()
            assert container.get_object_content(key) == data
            mine[key] = data
            if iteration % 25 == 0:
                keys = rng.sample(sorted(mine), min(10, len(mine)))
                assert container.get_objects_content(keys + ['f' * 64]) == {key: mine[key] for key in keys}
                assert container.has_objects(keys + ['f' * 64]) == [True] * len(keys) + [False]
                with container.get_objects_stream_and_meta(keys) as triplets:
                    for got_key, stream, meta in triplets:
                        assert stream.read() == mine[got_key] and meta.size == len(mine[got_key])
        with lock:
            written.update(mine)

    return worker


def check_final(container, written, folder):
    assert container.validate().is_valid()
    assert set(container.list_all_objects()) == set(written)
    assert container.get_objects_content(list(written)) == written
    with disk_objectstore.Container(folder) as reference:
        assert reference.validate().is_valid()
        assert reference.get_objects_content(list(written)) == written


def test_threads_one_instance_each(impl_cls, new_impl_container):
    container = new_impl_container()
    folder = container.get_folder()
    objects = make_objects()
    written, lock = {}, threading.Lock()
    instances = [impl_cls(folder) for _ in range(N_THREADS)]
    try:
        run_threads(reader_writer(lambda index: instances[index], objects, written, lock))
    finally:
        for instance in instances:
            instance.close()
    assert container.count_objects().loose == len(written)
    check_final(container, written, folder)


def test_threads_shared_instance(impl_name, new_impl_container):
    if impl_name == 'upstream':
        pytest.skip(
            'disk-objectstore 1.5 cannot share one Container between threads (InvalidRequestError or a segfault '
            'in its shared SQLAlchemy session); this is required of dos only'
        )
    container = new_impl_container()
    objects = make_objects()
    written, lock = {}, threading.Lock()
    run_threads(reader_writer(lambda index: container, objects, written, lock))
    assert container.count_objects().loose == len(written)
    check_final(container, written, container.get_folder())


def test_threads_with_a_packer(impl_cls, new_impl_container):
    """Three reader/writer threads and one thread packing (each with its own instance, one packer at a time)."""
    container = new_impl_container(pack_size_target=20000)
    folder = container.get_folder()
    objects = make_objects()
    written, lock = {}, threading.Lock()
    instances = [impl_cls(folder) for _ in range(N_THREADS)]
    readers = reader_writer(lambda index: instances[index], objects, written, lock)
    stop = threading.Event()

    def worker(index):
        if index < N_THREADS - 1:
            try:
                readers(index)
            finally:
                if index == 0:
                    stop.set()
            return
        packer = instances[index]
        rounds = 0
        while not stop.is_set() or rounds < 2:
            packer.pack_all_loose(compress=rounds % 2 == 1, clean_loose_per_pack=rounds % 3 == 0)
            packer.clean_storage()
            rounds += 1
            stop.wait(0.05)

    try:
        run_threads(worker)
    finally:
        for instance in instances:
            instance.close()
    container.pack_all_loose()
    container.clean_storage()
    counts = container.count_objects()
    assert counts.loose == 0 and counts.packed == len(written)
    check_final(container, written, folder)
