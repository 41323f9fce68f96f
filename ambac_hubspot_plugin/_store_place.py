"""Where a tenant's store may live, and which store an enabled tenant is bound to.

A SQLite ``store_url`` must name a file inside the plugin's data directory (after resolving
``..`` and symlinks) unless ``store_outside_data_dir`` says a path elsewhere is meant; the
store itself refuses a file holding another application's tables (the host's database).

While a tenant is enabled its store cannot change (docs/settings.md): switching to an empty
store would forget every link, and the next backfill would create every order again. The
binding is a small file in the plugin's data directory, so it holds across processes (a CLI
``setup`` in a fresh process sees it too); enabling writes it, disabling removes it. It holds
the URL without its password, so rotating a database password is not a change of store, and a
SQLite file inside the data directory by its place there, so moving or restoring the whole
directory (a new server, a backup) is not a change of store either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ._host_ids import as_host_id
from ._secrets import redact_url
from .errors import ConfigError

if TYPE_CHECKING:
    from .host import HostServices
    from .settings import Settings

__all__ = ["bind", "check_binding", "is_bound", "store_url_for", "unbind"]

PLUGIN_ID = "hubspot"
STORE_FILE = "hubspot.sqlite3"


def _data_dir(host: HostServices) -> Path:
    return host.plugin_data_dir(PLUGIN_ID)


def _sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, resolved; None for other URLs (or ones the store refuses)."""
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except Exception:  # malformed: opening the store names the problem
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def store_url_for(host: HostServices, settings: Settings) -> str:
    """The tenant's store URL: ``store_url``, checked, or the file in the plugin's data dir."""
    data_dir = _data_dir(host)
    if not settings.store_url:
        return f"sqlite:///{data_dir / STORE_FILE}"
    path = _sqlite_file(settings.store_url)
    inside = data_dir.resolve()
    if path is not None and not settings.store_outside_data_dir and not path.is_relative_to(inside):
        raise ConfigError.from_problems([(
            "store_url",
            f"the SQLite file {path} is outside the plugin's data directory {inside}; put the "
            "store there (or leave store_url empty for the default file), or set "
            "store_outside_data_dir to true to use this path on purpose")])
    return settings.store_url


def _binding_file(host: HostServices, tenant_id: str) -> Path:
    # A host id is letters, digits, '-', '_' and '.' (never first): a safe file name part.
    return _data_dir(host) / f"tenant-{as_host_id(tenant_id, 'tenant_id')}.store.json"


#: How a binding names a SQLite file inside the plugin's data directory (whose path may move).
_IN_DATA_DIR = "sqlite:///{data_dir}/"


def _identity(url: str, data_dir: Path | None) -> str:
    """Which database ``url`` names, without its password: one spelling for one store
    (``postgres://`` and ``postgresql+psycopg://``, a SQLite path through ``..`` or a link; a
    file inside ``data_dir`` by its place there, None: by its absolute path)."""
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except Exception:  # malformed: opening the store names the problem
        return redact_url(url)
    path = _sqlite_file(url)
    if path is not None:
        inside = None if data_dir is None else data_dir.resolve()
        if inside is not None and path.is_relative_to(inside):
            return _IN_DATA_DIR + path.relative_to(inside).as_posix()
        return f"sqlite:///{path}"
    postgres = parsed.get_backend_name() in ("postgres", "postgresql")
    return sa.engine.URL.create(
        "postgresql" if postgres else parsed.get_backend_name(), username=parsed.username,
        host=parsed.host, port=parsed.port or (5432 if postgres else None), database=parsed.database,
        query={k: v for k, v in parsed.query.items() if k.lower() != "password"},
    ).render_as_string()


def check_binding(host: HostServices, tenant_id: str, url: str) -> None:
    """Refuse ``url`` when the tenant is enabled with another store (ConfigError on store_url)."""
    try:
        bound = json.loads(_binding_file(host, tenant_id).read_text(encoding="utf-8"))["store"]
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError):
        return  # unreadable: written by nobody we know; the next bind() replaces it
    # A binding written before files in the data directory were named by their place there
    # holds the absolute path: it still matches the same file, and is rewritten in the new
    # form, so that the directory can move from then on.
    current = _identity(url, _data_dir(host))
    if bound != current and bound == _identity(url, None):
        bind(host, tenant_id, url)
        return
    if bound != current:
        raise ConfigError.from_problems([(
            "store_url",
            f"cannot change while the plugin is enabled (its store is {bound}); disable the "
            "plugin first, move the data, then enable it with the new store_url")])


def is_bound(host: HostServices, tenant_id: str) -> bool:
    """Whether the tenant is enabled in some process (enabling bound it to its store)."""
    return _binding_file(host, tenant_id).exists()


def bind(host: HostServices, tenant_id: str, url: str) -> None:
    """Record ``url`` as the store of the enabled tenant."""
    import tempfile

    target = _binding_file(host, tenant_id)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent, prefix=".binding-",
                                     delete=False) as scratch:
        json.dump({"store": _identity(url, _data_dir(host))}, scratch)
    Path(scratch.name).replace(target)  # atomic: a reader sees the old binding or the new one


def unbind(host: HostServices, tenant_id: str) -> None:
    """Forget the tenant's store binding (it was disabled)."""
    _binding_file(host, tenant_id).unlink(missing_ok=True)
