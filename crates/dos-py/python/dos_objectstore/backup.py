"""Backups of a container by dos, for ``verdi storage backup`` and for scripts.

:func:`backup_container` takes the place of ``disk_objectstore.backup_utils.backup_container``
(same arguments): for a local destination dos writes the copy itself (loose files, then the
index through SQLite's online backup API, then the packs; unchanged files hard-linked from the
previous backup, a grown pack only extended by its new tail; everything fsynced). For a remote
destination (``user@host:path``) the files go through the manager's rsync as upstream does, but
the index is still copied by dos: opening ``packs.idx`` with Python's ``sqlite3`` in a process
where dos has it open would break dos's SQLite locks (two SQLite libraries in one process).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .container import Container


def backup_container(manager, container: Container, path: Path, prev_backup: Path | None = None) -> dict:
    """Back up ``container`` to ``path`` (a folder the new copy is written to), incremental
    against the container copy ``prev_backup``; returns what was written and shared."""
    path = Path(path)
    if not isinstance(container, Container):
        container = Container(container.get_folder())
    raw = container._raw()  # pylint: disable=protected-access
    if getattr(manager, 'remote', None):
        return _backup_remote(manager, container, path, prev_backup)
    if path.exists():
        # Left by an interrupted run: this folder is not published yet.
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prev = Path(prev_backup) if prev_backup is not None and Path(prev_backup).is_dir() else None
    return raw.backup_into(str(path), None if prev is None else str(prev))


def _backup_remote(manager, container: Container, path: Path, prev_backup: Path | None) -> dict:
    """Loose files, index, packs, config, in that order, through ``manager.call_rsync``."""
    root = Path(container.get_folder())
    loose = root / 'loose'
    packs = root / 'packs'
    manager.call_rsync(loose, path, link_dest=prev_backup / 'loose' if prev_backup else None)
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / 'packs.idx'
        container._raw().backup_index(str(index))  # pylint: disable=protected-access
        manager.call_rsync(index, path, link_dest=prev_backup)
    manager.call_rsync(packs, path, link_dest=prev_backup)
    # The rest of the container folder (config.json, the empty sandbox/ and duplicates/).
    manager.call_rsync(
        root,
        path,
        link_dest=prev_backup,
        src_trailing_slash=True,
        extra_args=['--exclude', 'loose', '--exclude', 'packs', '--exclude', 'packs.idx*',
                    '--exclude', '.dos-maintenance.lock'],
    )
    return {'folder': str(path), 'remote': True}
