"""Shared fixtures for the dos-py test suite.

The class under test is chosen with the environment variable ``DOS_PY_IMPL``:

* ``dos`` (the default): ``dos_objectstore.Container``. If that package cannot be imported, every test
  that needs it FAILS (it is never skipped), so a broken build cannot pass silently.
* ``upstream``: ``disk_objectstore.Container`` itself. The differential tests then compare the real
  library with itself; this checks the harness while ``dos_objectstore`` does not exist yet.

Tests for behaviour where disk-objectstore 1.5 has a documented bug branch on ``impl_name``: with
``upstream`` they assert that the bug is still there (so the claim in the reference file stays checked),
with ``dos`` they assert the fixed behaviour.
"""

from __future__ import annotations

import os
import traceback

import pytest

import disk_objectstore

IMPL_ENV_VAR = 'DOS_PY_IMPL'
KNOWN_IMPLS = ('dos', 'upstream')


def selected_impl_name() -> str:
    """Return the implementation named by ``DOS_PY_IMPL`` (``dos`` if unset)."""
    return os.environ.get(IMPL_ENV_VAR, 'dos').strip().lower() or 'dos'


def _load_impl():
    """Return ``(name, Container class, None)`` or ``(name, None, error message)``."""
    name = selected_impl_name()
    if name not in KNOWN_IMPLS:
        return name, None, f'{IMPL_ENV_VAR}={name!r} is not one of {KNOWN_IMPLS}'
    if name == 'upstream':
        return name, disk_objectstore.Container, None
    try:
        import dos_objectstore  # pylint: disable=import-outside-toplevel
    except Exception:  # noqa: BLE001 - any import problem must be reported, not only ImportError
        return (
            name,
            None,
            f'{IMPL_ENV_VAR}=dos (the default) but `import dos_objectstore` failed; build and install '
            'crates/dos-py (e.g. `maturin develop` in the venv), or run with '
            f'{IMPL_ENV_VAR}=upstream to check the harness against disk_objectstore alone.\n'
            + traceback.format_exc(),
        )
    cls = getattr(dos_objectstore, 'Container', None)
    if cls is None:
        return name, None, 'dos_objectstore has no attribute `Container`'
    if not isinstance(cls, type) or not issubclass(cls, disk_objectstore.Container):
        return name, None, f'dos_objectstore.Container ({cls!r}) is not a subclass of disk_objectstore.Container'
    if cls is disk_objectstore.Container:
        return (
            name,
            None,
            'dos_objectstore.Container IS disk_objectstore.Container: the differential tests would compare '
            'upstream with itself; use DOS_PY_IMPL=upstream for that',
        )
    return name, cls, None


_IMPL_NAME, _IMPL_CLS, _IMPL_ERROR = _load_impl()


def pytest_report_header(config):  # pylint: disable=unused-argument
    """Show in the header which implementation is under test."""
    if _IMPL_ERROR:
        return f'dos-py: {IMPL_ENV_VAR}={_IMPL_NAME}: NOT AVAILABLE ({_IMPL_ERROR.splitlines()[0]})'
    return f'dos-py: {IMPL_ENV_VAR}={_IMPL_NAME}: class under test {_IMPL_CLS.__module__}.{_IMPL_CLS.__qualname__}'


def get_impl_class():
    """Return the class under test, failing the calling test loudly when it is not available."""
    if _IMPL_ERROR:
        pytest.fail(_IMPL_ERROR, pytrace=False)
    return _IMPL_CLS


@pytest.fixture(scope='session')
def impl_name() -> str:
    """``'dos'`` or ``'upstream'``."""
    get_impl_class()
    return _IMPL_NAME


@pytest.fixture(scope='session')
def impl_cls():
    """The Container class under test (fails, never skips, if it cannot be imported)."""
    return get_impl_class()


@pytest.fixture
def new_impl_container(impl_cls, tmp_path):
    """Factory: ``new_impl_container(name='c', **init_kwargs)`` -> initialised container of the class under test.

    All containers made by the factory are closed at teardown.
    """
    made = []

    def _make(name='c', **init_kwargs):
        container = impl_cls(tmp_path / name)
        container.init_container(**init_kwargs)
        made.append(container)
        return container

    yield _make
    for container in made:
        container.close()

