"""The Sandbox: a HubSpot emulator on loopback, with knobs for every trap HubSpot sets."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from ._auth import App, Auth
from ._controls import Faults, RateLimiter, RateLimits, RequestRecord, Stats
from ._seed import seed_portal
from ._server import SandboxHTTPServer, Service
from ._state import UI, Portal
from ._util import Clock, SandboxHttpError, utc_now
from ._webhooks import Webhooks

AssociationTargets = Mapping[str, Sequence[str | tuple[str, int | Sequence[int]]]]


class Sandbox:
    """A HubSpot portal served over HTTP on 127.0.0.1, for tests, benchmarks and demos.

    Use it as a context manager; ``base_url`` and ``access_token`` are what a client needs.
    Direct helpers (``add_object``, ``update_object``, ...) change state as a user in the
    HubSpot UI would: no HTTP, no rate limits, but webhook events with ``changeSource``
    ``CRM_UI``.
    """

    def __init__(
        self,
        portal_id: int = 12345678,
        *,
        rate_limits: RateLimits | None = None,
        index_lag_seconds: float = 0.0,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        pipelines: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.portal_id = portal_id
        self.clock: Clock = clock or utc_now
        self.portal = Portal(portal_id, self.clock, index_lag_seconds)
        for pipeline in pipelines:
            self.add_pipeline(
                str(pipeline["label"]), pipeline.get("stages", ()), pipeline_id=pipeline.get("id")
            )
        self.auth = Auth(self.clock)
        self.private_app, self.access_token = self.auth.add_private_app()
        self.stats = Stats()
        self.faults = Faults()
        self._limiter = RateLimiter(rate_limits or RateLimits())
        self._requests: list[RequestRecord] = []
        self.webhooks = Webhooks(
            portal_id, self.clock, lambda: self.auth.apps, self.private_app.app_id
        )
        self.portal.listener = self.webhooks.on_changes
        self._service = Service(
            self.portal, self.auth, self._limiter, self.faults, self.stats, self._requests.append
        )
        self._host, self._port = host, port
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle
    def start(self) -> Sandbox:
        """Bind the port and serve in a background thread."""
        if self._server is not None:
            return self
        self._server = SandboxHTTPServer((self._host, self._port), self._service)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="hubspot-sandbox",
            daemon=True,
        )
        self._thread.start()
        self.webhooks.start()
        return self

    def stop(self) -> None:
        """Stop serving and delivering; pending webhook events are dropped."""
        self.webhooks.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, no trailing slash (what ``HubSpot(host=...)`` wants)."""
        if self._server is None:
            raise RuntimeError(
                "the sandbox is not running; use it as a context manager or call start()"
            )
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        return int(self._server.server_address[1])

    @property
    def app_id(self) -> int:
        """The private app's id (``sourceId`` of its API writes, ``appId`` of its webhooks)."""
        return self.private_app.app_id

    @property
    def client_secret(self) -> str:
        """The private app's client secret, which signs its webhook deliveries."""
        return self.private_app.client_secret

    # ------------------------------------------------------------------ data
    def seed(
        self, companies: int = 20, contacts: int = 50, deals: int = 100, seed: int = 1
    ) -> dict[str, list[str]]:
        """Fill the portal deterministically; returns the created ids per object type."""
        return seed_portal(
            self.portal, companies=companies, contacts=contacts, deals=deals, seed=seed
        )

    def add_object(
        self,
        object_type: str,
        properties: Mapping[str, Any],
        associations: AssociationTargets | None = None,
    ) -> str:
        """Create a record as a UI user would; returns its id.

        ``associations`` maps a target type to ids (default types; for deals the first company
        is primary) or ``(id, type id or ids)`` pairs.
        """
        object_type = self.portal.require_type(object_type)
        obj = self.portal.create(object_type, properties, UI, trusted=True)
        for to_name, targets in (associations or {}).items():
            self._associate_targets(object_type, obj.id, to_name, targets)
        return obj.id

    def _associate_targets(
        self,
        from_type: str,
        from_id: str,
        to_name: str,
        targets: Sequence[str | tuple[str, int | Sequence[int]]],
    ) -> None:
        from ._schema import DEFAULT_TYPE

        to_type = self.portal.require_type(to_name)
        for position, target in enumerate(targets):
            if isinstance(target, tuple):
                to_id, wanted = target
                type_ids = [wanted] if isinstance(wanted, int) else list(wanted)
            else:
                to_id = target
                primary = {("deals", "companies"): 5, ("contacts", "companies"): 1}.get(
                    (from_type, to_type)
                )
                type_ids = (
                    [primary] if primary and position == 0 else [DEFAULT_TYPE[(from_type, to_type)]]
                )
            for type_id in type_ids:
                self.portal.associate(from_type, from_id, to_type, str(to_id), type_id)

    def get_object(
        self, object_type: str, object_id: str, *, archived: bool = False
    ) -> dict[str, str] | None:
        """A copy of a record's properties, or None when it does not exist (or is archived)."""
        with self.portal.lock:
            obj = self.portal.find(
                self.portal.require_type(object_type), str(object_id), archived=archived
            )
            return None if obj is None else dict(obj.props)

    def update_object(
        self, object_type: str, object_id: str, properties: Mapping[str, Any]
    ) -> None:
        """Change properties as a UI user would (webhooks fire with ``changeSource`` CRM_UI)."""
        self.portal.update(object_type, str(object_id), properties, UI, trusted=True)

    def archive_object(self, object_type: str, object_id: str) -> None:
        """Delete (archive) a record as a UI user would."""
        if not self.portal.archive(object_type, str(object_id), UI):
            raise KeyError(f"no live {object_type} with id {object_id}")

    def restore_object(self, object_type: str, object_id: str) -> None:
        """Restore an archived record (as from HubSpot's recycle bin); fires ``*.restore``."""
        self.portal.restore(object_type, str(object_id), UI)

    def merge_objects(self, object_type: str, primary_id: str, merged_id: str) -> None:
        """Merge two records as a UI user would; the merged one disappears."""
        self.portal.merge(object_type, str(primary_id), str(merged_id), UI)

    def associate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int
    ) -> None:
        """Add one association (and its inverse) directly."""
        portal = self.portal
        portal.associate(
            portal.require_type(from_type),
            str(from_id),
            portal.require_type(to_type),
            str(to_id),
            type_id,
        )

    def disassociate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Remove every association between two records (both directions), as a UI user would."""
        portal = self.portal
        with portal.lock:
            portal._unlink(portal.require_type(from_type), str(from_id), portal.require_type(to_type), str(to_id))

    def associations(self, from_type: str, from_id: str, to_type: str) -> dict[str, set[int]]:
        """The ids linked to a record and the association type ids of each link."""
        portal = self.portal
        to_type = portal.require_type(to_type)
        with portal.lock:
            linked = portal.associations.get((portal.require_type(from_type), str(from_id)), {})
            return {
                other_id: set(types)
                for (kind, other_id), types in linked.items()
                if kind == to_type and types
            }

    def add_pipeline(
        self,
        label: str,
        stages: Sequence[Mapping[str, Any]] = (),
        *,
        pipeline_id: str | None = None,
    ) -> str:
        """Add a deal pipeline; stages are ``{"label", "probability", "isClosed"[, "id"]}``."""
        return self.portal.add_pipeline(label, stages, pipeline_id=pipeline_id)

    def add_property(
        self,
        object_type: str,
        name: str,
        *,
        label: str | None = None,
        type_: str = "string",
        field_type: str = "text",
        group_name: str | None = None,
        has_unique_value: bool = False,
        options: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Define a custom property directly (the HTTP API does the same via POST)."""
        from ._schema import DEFAULT_GROUPS

        object_type = self.portal.require_type(object_type)
        body = {
            "name": name,
            "label": label or name,
            "type": type_,
            "fieldType": field_type,
            "groupName": group_name or DEFAULT_GROUPS[object_type][0][0],
            "hasUniqueValue": has_unique_value,
            "options": [dict(o) for o in options],
        }
        try:
            return self.portal.create_property(object_type, body)
        except SandboxHttpError as exc:
            raise ValueError(exc.message) from exc

    # ---------------------------------------------------------------- knobs
    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served so far (method, path, query, status, duration, time)."""
        return list(self._requests)

    def clear_requests(self) -> None:
        self._requests.clear()

    @property
    def rate_limits(self) -> RateLimits:
        return self._limiter.limits

    def set_rate_limits(self, limits: RateLimits) -> None:
        """Replace the limits and forget the calls counted so far."""
        self._limiter.set_limits(limits)

    def add_oauth_app(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        access_token_ttl_seconds: int = 1800,
    ) -> App:
        """Install an OAuth app whose refresh token the token endpoints accept."""
        return self.auth.add_oauth_app(
            client_id, client_secret, refresh_token, access_token_ttl_seconds
        )

    def issue_access_token(self, app: App) -> str:
        """A fresh OAuth access token for ``app`` without an HTTP round trip."""
        return self.auth.issue_access_token(app)[0]

    def revoke_refresh_token(self, app: App) -> None:
        """Revoke ``app``'s refresh token (the app was uninstalled): refreshing gives 400."""
        self.auth.revoke_refresh_token(app)

    def expire_access_tokens(self) -> None:
        """Expire every OAuth access token now (the private app's static token stays valid)."""
        self.auth.expire_access_tokens()
