"""``close()`` and use again, as aiida-core does around every call (``with container: ...``).

The class under test may keep what it opened for the next use, but it must then see the
container as it is: objects another process wrote meanwhile, and (dos, which reads
``config.json`` again where upstream keeps its cached copy) a container replaced at the same path
with other settings after ``close()``.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys

import disk_objectstore

WRITE_ELSEWHERE = '''
import sys
from disk_objectstore import Container
with Container(sys.argv[1]) as c:
    print(c.add_objects_to_pack([b'from another process'])[0])
'''


def test_with_around_every_call_sees_the_container_as_it_is(impl_cls, impl_name, tmp_path):
    folder = tmp_path / 'c'
    c = impl_cls(folder)
    c.init_container()
    keys = []
    for i in range(50):
        with c as cc:
            keys.append(cc.add_streamed_object(io.BytesIO(b'object %d' % i)))
    other = subprocess.run(
        [sys.executable, '-c', WRITE_ELSEWHERE, str(folder)], capture_output=True, text=True, check=True
    ).stdout.strip()
    with c as cc:
        assert cc.get_object_content(other) == b'from another process'
        assert cc.has_objects(keys + [other]) == [True] * 51
        assert cc.count_objects().packed == 1

    if impl_name != 'dos':
        return  # upstream keeps its cached config.json across close(); dos reads it again
    # Replaced after close(): another container, other settings, at the same path.
    c.close()
    shutil.rmtree(folder)
    up = disk_objectstore.Container(folder)
    up.init_container(loose_prefix_len=3, hash_type='sha1')
    up.close()
    with c as cc:
        assert cc.loose_prefix_len == 3 and cc.hash_type == 'sha1'
        assert cc.count_objects().loose == 0 and not cc.has_objects(keys[:1])[0]
        key = cc.add_object(b'into the new one')
    assert len(key) == 40
    assert (folder / 'loose' / key[:3] / key[3:]).is_file()
    with disk_objectstore.Container(folder) as again:
        assert again.get_object_content(key) == b'into the new one'
        assert again.validate().is_valid()
