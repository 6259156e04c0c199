"""AiiDA storage plugins whose file repository is a ``dos_objectstore.Container``.

``dos.sqlite_dos`` and ``dos.psql_dos`` are aiida-core's ``core.sqlite_dos`` and
``core.psql_dos`` with the repository opened by dos: the same database, the same container on
disk, nothing migrated. A profile switches by the name of its storage backend, and back::

    python -m dos_objectstore.aiida switch PROFILE dos     # core.* -> dos.*
    python -m dos_objectstore.aiida switch PROFILE core    # dos.* -> core.*
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiida.storage.psql_dos.backend import PsqlDosBackend, get_filepath_container
from aiida.storage.psql_dos.migrator import PsqlDosMigrator
from aiida.storage.sqlite_dos.backend import FILENAME_CONTAINER, SqliteDosMigrator, SqliteDosStorage

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
