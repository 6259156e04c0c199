"""AiiDA storage plugins whose file repository is a ``dos_objectstore.Container``.

``dos.sqlite_dos`` and ``dos.psql_dos`` are aiida-core's ``core.sqlite_dos`` and
``core.psql_dos`` with the repository opened by dos: the same database, the same container on
disk, nothing migrated. A profile switches by the name of its storage backend, and back::

    python -m dos_objectstore.aiida switch PROFILE dos     # core.* -> dos.*
    python -m dos_objectstore.aiida switch PROFILE core    # dos.* -> core.*
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from aiida.storage.psql_dos.backend import PsqlDosBackend, get_filepath_container
from aiida.storage.psql_dos.migrator import PsqlDosMigrator
from aiida.storage.sqlite_dos.backend import FILENAME_CONTAINER, SqliteDosMigrator, SqliteDosStorage

from .backup import backup_container
from .container import Container

#: The backend names a profile switches between.
SWITCHES = {'core.sqlite_dos': 'dos.sqlite_dos', 'core.psql_dos': 'dos.psql_dos'}


class DosSqliteDosMigrator(SqliteDosMigrator):
    """``core.sqlite_dos``'s migrator, with the repository opened by dos."""

    def get_container(self) -> Container:
        return Container(str(Path(self.profile.storage_config['filepath']) / FILENAME_CONTAINER))


class DosSqliteDosStorage(SqliteDosStorage):
    """``core.sqlite_dos`` (SQLite database + disk-objectstore container) on dos."""

    migrator = DosSqliteDosMigrator

    def __str__(self) -> str:
        state = 'closed' if self.is_closed else 'open'
        return f'DosSqliteDosStorage[{self.filepath_root}]: {state},'

    def get_container(self) -> Container:
        return Container(str(self.filepath_container))

    def _backup_storage(self, manager, path: Path, prev_backup: Path | None = None) -> None:
        """``verdi storage backup``: the container copied by dos (consistent while AiiDA runs:
        loose files, the index through SQLite's online backup, then the packs; unchanged files
        hard-linked from the previous backup), the database by the manager's rsync."""
        self.maintain(full=False, compress=False)
        backup_container(
            manager,
            self.get_container(),
            Path(path) / FILENAME_CONTAINER,
            Path(prev_backup) / FILENAME_CONTAINER if prev_backup else None,
        )
        manager.call_rsync(self.filepath_database, path, link_dest=prev_backup, dest_trailing_slash=True)


class DosPsqlDosMigrator(PsqlDosMigrator):
    """``core.psql_dos``'s migrator, with the repository opened by dos."""

    def get_container(self) -> Container:
        return Container(get_filepath_container(self.profile))


class DosPsqlDosBackend(PsqlDosBackend):
    """``core.psql_dos`` (PostgreSQL database + disk-objectstore container) on dos."""

    migrator = DosPsqlDosMigrator

    def get_repository(self):
        from aiida.repository.backend import DiskObjectStoreRepositoryBackend  # pylint: disable=import-outside-toplevel

        return DiskObjectStoreRepositoryBackend(container=Container(get_filepath_container(self.profile)))

    def _backup_storage(self, manager, path: Path, prev_backup: Path | None = None) -> None:
        """``verdi storage backup``: the database dumped with ``pg_dump`` and transferred by the
        manager's rsync, then the container copied by dos (see ``dos_objectstore.backup``)."""
        for exe in ('rsync', 'pg_dump'):
            if shutil.which(exe) is None:
                from aiida.common.exceptions import StorageBackupError  # pylint: disable=import-outside-toplevel

                raise StorageBackupError(f"Required executable '{exe}' not found in PATH, please add it.")
        self.maintain(full=False, compress=False)
        cfg = self._profile.storage_config
        with tempfile.TemporaryDirectory() as tmp:
            dump = Path(tmp) / 'db.psql'
            env = dict(os.environ, PGPASSWORD=str(cfg['database_password']))
            cmd = [
                'pg_dump',
                f"--host={cfg['database_hostname']}",
                f"--port={cfg['database_port']}",
                f"--dbname={cfg['database_name']}",
                f"--username={cfg['database_username']}",
                '--no-password',
                '--format=p',
                f'--file={dump}',
            ]
            try:
                subprocess.run(cmd, check=True, env=env)
            except subprocess.CalledProcessError as exc:
                from disk_objectstore.backup_utils import BackupError  # pylint: disable=import-outside-toplevel

                raise BackupError(f'pg_dump: {exc}') from exc
            manager.call_rsync(dump, path, link_dest=prev_backup, dest_trailing_slash=True)
        backup_container(
            manager,
            Container(get_filepath_container(self.profile)),
            Path(path) / 'container',
            Path(prev_backup) / 'container' if prev_backup else None,
        )


def switch(profile_name: str, to: str) -> str:
    """Point the profile's storage at the dos (``to='dos'``) or aiida-core (``'core'``) plugin;
    returns the new backend name. Only the name in the profile's configuration changes."""
    from aiida.manage.configuration import get_config  # pylint: disable=import-outside-toplevel

    config = get_config()
    profile = config.get_profile(profile_name)
    backend = profile.storage_backend
    names = SWITCHES if to == 'dos' else {v: k for k, v in SWITCHES.items()}
    if backend in names.values():
        return backend
    if backend not in names:
        raise ValueError(f'profile {profile_name!r} uses {backend!r}, which has no {to} counterpart')
    profile.set_storage(names[backend], profile.storage_config)
    config.update_profile(profile)
    config.store()
    return names[backend]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m dos_objectstore.aiida', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    s = sub.add_parser('switch', help="switch a profile's storage between aiida-core and dos")
    s.add_argument('profile')
    s.add_argument('to', choices=['dos', 'core'])
    args = parser.parse_args(argv)
    try:
        print(f'{args.profile}: {switch(args.profile, args.to)}')
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
