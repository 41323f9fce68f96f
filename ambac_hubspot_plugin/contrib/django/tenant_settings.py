"""A tenant's plugin settings from its ``IntegrationConfig`` row, and where its store lives.

The row's JSON ``config`` holds the non-secret settings; the credentials come from its
encrypted fields only (the host encrypts them at rest):

- ``api_key`` -> ``credentials`` of kind ``private_app`` (or the token kind ``config`` names
  in ``credentials.kind``: ``project_app``, ``service_key``), its ``access_token``;
- ``oauth_refresh_token`` -> ``credentials`` of kind ``oauth``, with the client id from
  ``config["credentials"]["client_id"]`` or the ``HUBSPOT_CLIENT_ID`` setting and the client
  secret from the ``HUBSPOT_CLIENT_SECRET`` setting (never from ``config``);
- ``webhook_secret`` -> ``webhook_client_secret``.

A secret written into ``config`` is refused: ``config`` is stored in plain text.

Settings changed through the plugin (its settings page, ``PUT hubspot/settings``) are saved
back the same way (:func:`fields_to_save`): the secrets into the encrypted fields, the rest into
``config``, except a store or rate limiter URL this module derives from the host's settings
(it would put the host's database password into ``config``).

The rate limiter: ``rate_limit_backend`` from ``config`` when given, else the host's
``CELERY_BROKER_URL`` when that is a Redis URL, so all the host's processes share one HubSpot
budget per portal.

The store: ``store_url`` from ``config`` when given; else, when the host's database is
PostgreSQL, that same database (``DATABASES[alias]`` as a SQLAlchemy URL for psycopg 3, the
driver of the plugin's ``[postgres]`` extra, which ``[django]`` includes); else the plugin's
default SQLite file in ``AMBAC_PLUGIN_DATA_DIR``. The plugin creates and upgrades its own
``hubspot_*`` tables when it opens the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS, connections

from ...errors import ConfigError
from ...settings import RATE_LIMIT_BACKEND_SCHEMES, parse_settings, secret_values

__all__ = ["PROVIDER", "SECRET_FIELDS", "TOKEN_KINDS", "fields_to_save", "host_store_url", "row_fields",
           "row_secrets", "saved_settings", "scrub_row_secrets", "settings_for"]

PROVIDER = "hubspot"
"""The ``IntegrationConfig.provider`` of this plugin's configuration."""

SECRET_FIELDS = ("api_key", "oauth_refresh_token", "webhook_secret")
"""The row's encrypted fields this bridge reads."""
TOKEN_KINDS = ("private_app", "project_app", "service_key")
"""Credential kinds that are one access token (``api_key``)."""
_SECRET_CREDENTIALS = ("access_token", "client_secret", "refresh_token")
_URL_SETTINGS = ("store_url", "rate_limit_backend")  # the settings this module may derive
# libpq connection parameters a host may set in OPTIONS that the store's connections need too.
_LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "options", "target_session_attrs",
                  "application_name")


def row_secrets(row: Any) -> list[str]:
    """The row's secret values (and the OAuth client secret), to scrub from any text shown."""
    values = [str(getattr(row, field, "") or "") for field in SECRET_FIELDS]
    values.append(str(getattr(django_settings, "HUBSPOT_CLIENT_SECRET", "") or ""))
    return [value for value in values if value]


def scrub_row_secrets(text: str, row: Any) -> str:
    """``text`` with each of ``row``'s secret values replaced by ``***``."""
    for secret in sorted(row_secrets(row), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def settings_for(row: Any, *, using: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    """The plugin's raw settings of one ``IntegrationConfig`` row (see the module docstring).

    :param using: the database alias whose server holds the store by default.
    :raises ConfigError: ``config`` holds a secret, or the credentials are ambiguous; the
        message names fields, never values.
    """
    config: dict[str, Any] = dict(row.config or {})
    credentials = config.pop("credentials", None) or {}
    if not isinstance(credentials, Mapping):
        raise ConfigError.from_problems([("config.credentials", "must be an object (kind, client_id)")])
    problems = [(f"config.credentials.{key}", "is a secret: keep it in the integration's encrypted "
                 "fields (API key, OAuth refresh token), not in its plain config")
                for key in _SECRET_CREDENTIALS if credentials.get(key)]
    if config.get("webhook_client_secret"):
        problems.append(("config.webhook_client_secret", "is a secret: keep it in the "
                         "integration's encrypted webhook secret, not in its plain config"))
    api_key, refresh_token = row.api_key or "", row.oauth_refresh_token or ""
    if api_key and refresh_token:
        problems.append(("api_key", "give either an API key (private app access token) or an "
                         "OAuth refresh token, not both"))
    if problems:
        raise ConfigError.from_problems(problems)
    kind = credentials.get("kind")
    if api_key:
        config["credentials"] = {"kind": kind if kind in TOKEN_KINDS else "private_app",
                                 "access_token": api_key}
    elif refresh_token:
        client_id = credentials.get("client_id") or getattr(django_settings, "HUBSPOT_CLIENT_ID", "")
        config["credentials"] = {"kind": "oauth", "client_id": client_id,
                                 "client_secret": getattr(django_settings, "HUBSPOT_CLIENT_SECRET", ""),
                                 "refresh_token": refresh_token}
    if row.webhook_secret:
        config["webhook_client_secret"] = row.webhook_secret
    derived = _derived(using)
    if not config.get("store_url") and derived["store_url"] is not None:
        config["store_url"] = derived["store_url"]
    if config.get("rate_limit_backend") is None and derived["rate_limit_backend"] is not None:
        config["rate_limit_backend"] = derived["rate_limit_backend"]
    return config


def _derived(using: str) -> dict[str, str | None]:
    """The store and rate limiter URLs a row without them gets from the host's settings."""
    broker = getattr(django_settings, "CELERY_BROKER_URL", None)
    # The host's Redis: every worker and web process counts one HubSpot budget per portal.
    limiter = broker if isinstance(broker, str) and broker.startswith(RATE_LIMIT_BACKEND_SCHEMES) else None
    return {"store_url": host_store_url(using), "rate_limit_backend": limiter}


def row_fields(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``IntegrationConfig`` fields that hold the plugin's raw ``settings``, so that
    :func:`settings_for` gives them back: the access token, the refresh token and the webhook
    client secret in the encrypted fields, the rest in ``config``.

    :raises ConfigError: an OAuth client secret other than the host's ``HUBSPOT_CLIENT_SECRET``
        (the row has no field for it).
    """
    config = dict(settings)
    credentials = config.pop("credentials", None) or {}
    if not isinstance(credentials, Mapping):
        raise ConfigError.from_problems([("credentials", "must be an object")])
    fields: dict[str, Any] = {"api_key": "", "oauth_refresh_token": "",
                              "webhook_secret": config.pop("webhook_client_secret", None) or ""}
    kind = credentials.get("kind")
    if kind == "oauth":
        fields["oauth_refresh_token"] = credentials.get("refresh_token") or ""
        client_secret = credentials.get("client_secret")
        if client_secret and client_secret != getattr(django_settings, "HUBSPOT_CLIENT_SECRET", ""):
            raise ConfigError.from_problems([("credentials.client_secret", "the OAuth client secret "
                                              "is the host's HUBSPOT_CLIENT_SECRET setting: set it there")])
        kept = {key: credentials[key] for key in ("kind", "client_id") if credentials.get(key)}
    else:
        fields["api_key"] = credentials.get("access_token") or ""
        kept = {"kind": kind} if kind else {}
    if kept:
        config["credentials"] = kept
    fields["config"] = config
    return fields


def fields_to_save(row: Any, settings: Mapping[str, Any], *, using: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    """The fields to set on ``row`` so that it holds ``settings`` (:func:`row_fields`), without
    the URLs :func:`settings_for` derives (``settings`` read back from the row include them,
    with the host's passwords) unless ``row``'s ``config`` already names its own.

    :raises ConfigError: a URL with a password that ``config`` does not hold already (it would
        be stored in plain text: put it there yourself, or use the host's settings), or an OAuth
        client secret other than the host's; the message names fields, never values.
    """
    fields = row_fields(settings)
    config, before, derived = fields["config"], dict(row.config or {}), _derived(using)
    secrets = secret_values(parse_settings(settings))
    problems = []
    for name in _URL_SETTINGS:
        value = config.get(name)
        if name not in before and value is not None and value == derived[name]:
            del config[name]
        elif (isinstance(value, str) and value != before.get(name)
              and any(secret in value for secret in secrets)):
            problems.append((name, "holds a password, and the integration's config is stored in "
                             "plain text: set this URL in the integration's config on the host"))
    if problems:
        raise ConfigError.from_problems(problems)
    return fields


def saved_settings(row: Any, *, using: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    """The settings saved in ``row`` (:func:`settings_for` without the store and rate limiter it
    derives from the host's settings), for a change that keeps the settings not given."""
    built = settings_for(row, using=using)
    for derived in ("store_url", "rate_limit_backend"):
        if derived not in (row.config or {}):
            built.pop(derived, None)
    return built


def host_store_url(using: str = DEFAULT_DB_ALIAS) -> str | None:
    """The host's database ``using`` as the store's SQLAlchemy URL, when it is PostgreSQL.

    None for another database (SQLite: the store never shares the host's file). The URL names
    the psycopg 3 driver whatever Django uses (psycopg2 in Ambac Tracker): both reach the same
    server, and the store is written for psycopg 3.
    """
    import sqlalchemy as sa

    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    params = connection.settings_dict
    options = params.get("OPTIONS") or {}
    query = {key: str(options[key]) for key in _LIBPQ_OPTIONS if options.get(key) not in (None, "")}
    url = sa.URL.create(
        "postgresql+psycopg", username=params.get("USER") or None,
        password=params.get("PASSWORD") or None, host=params.get("HOST") or None,
        port=int(params["PORT"]) if params.get("PORT") else None,
        database=params.get("NAME") or None, query=query)
    return url.render_as_string(hide_password=False)
