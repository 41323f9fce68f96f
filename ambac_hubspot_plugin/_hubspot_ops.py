"""The HubSpot operations of the client adapter, over one request primitive.

:class:`HubSpotOperations` is what :class:`~ambac_hubspot_plugin.client.HubSpotClient` offers:
searches, batch reads, associations, pipelines, batch writes, notes and properties. Each
builds its request with ``_hubspot_wire``, sends it through ``_call`` (the route of the
``api_version``'s table, rate limited and retried) and reads the answer into
:mod:`ambac_hubspot_plugin.client` records. ``_call`` is the subclass's: ``_hubspot``'s
:class:`~._hubspot.SdkHubSpotClient` sends it through the SDK, the only module that imports it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from . import _hubspot_wire as wire
from ._api_paths import Route
from ._client_records import (
    Association,
    AssociationInput,
    BatchResult,
    ClientStats,
    Company,
    Contact,
    Deal,
    DealNote,
    HubSpotObject,
    ItemError,
    Note,
    NoteBatch,
    Pipeline,
    PropertySpec,
)
from ._search_plan import SEARCH_PAGE, SearchPlan, SearchRequest
from .errors import HubSpotApiError

__all__ = ["HubSpotOperations"]

# What reading an answer that is not what HubSpot sends raises (OverflowError and OSError: a
# timestamp out of range; decimal's InvalidOperation is an ArithmeticError).
_UNREADABLE: tuple[type[BaseException], ...] = (AttributeError, KeyError, TypeError, ValueError,
                                                ArithmeticError, OSError)


class HubSpotOperations:
    """The client's operations; a subclass sends the requests (``_call``) and owns ``_stats``,
    ``_paths`` (the ``api_version``'s routes) and ``_remote`` (an answer's text, secrets masked)."""

    _stats: ClientStats
    _paths: Mapping[str, Route]

    def _call(self, route_name: str, operation: str, path_params: Mapping[str, str], *,
              query: Mapping[str, Any] | None = None, body: Mapping[str, Any] | None = None,
              **policy: Any) -> Any:
        raise NotImplementedError

    def _remote(self, text: object) -> str:
        raise NotImplementedError

    def _malformed(self, operation: str, what: str) -> HubSpotApiError:
        self._stats.record_error()
        return HubSpotApiError(f"HubSpot's answer is malformed: {what}", operation=operation)

    # -- records ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self, operation: str, what: str) -> Iterator[None]:
        """Read ``what`` of an answer in this block: what HubSpot never sends is malformed."""
        try:
            yield
        except _UNREADABLE as exc:
            raise self._malformed(operation, f"{what} could not be read ({exc})") from exc

    def _record(self, object_type: str, item: Any, operation: str) -> HubSpotObject:
        try:  # _reading()'s job without its generator: this runs once per record read
            return wire.record(object_type, item)
        except _UNREADABLE as exc:
            raise self._malformed(operation, f"a {object_type} record could not be read ({exc})") from exc

    def _results(self, data: Mapping[str, Any], operation: str) -> list[Any]:
        results = data.get("results")
        if not isinstance(results, list):
            raise self._malformed(operation, "'results' is missing or not a list")
        return results

    # -- reads -----------------------------------------------------------------------------

    def test_connection(self) -> None:
        self.get_pipelines()

    def account_portal_id(self) -> str:
        operation = "account.details"
        data = self._call("account.details", operation, {}, retry=False)  # a probe: see client.py
        with self._reading(operation, "the account's portalId"):
            return wire.account_portal(data)

    def _iter_search(self, object_type: str, plan: SearchPlan) -> Iterator[HubSpotObject]:
        operation = f"{object_type}.search"
        request: SearchRequest | None = plan.first()
        while request is not None:
            body = request.body()
            data: Mapping[str, Any] = self._call(
                "objects.search", operation, {"objectType": object_type}, body=body, search=True
            )
            records = [
                self._record(object_type, item, operation)
                for item in self._results(data, operation)
            ]
            yield from plan.accept(records)
            with self._reading(operation, "the search's paging"):
                request = plan.next(records, wire.next_after(data))

    def iter_modified(
        self,
        object_type: str,
        since: datetime,
        properties: Sequence[str],
        *,
        until: datetime | None = None,
    ) -> Iterator[HubSpotObject]:
        plan = SearchPlan(
            modified_property=wire.modified_property(object_type),
            properties=tuple(properties),
            since=since,
            until=until,
            page_size=SEARCH_PAGE,
            window=SEARCH_PAGE,  # keyset paging: a record edited mid-read shifts no other one past us
        )
        return self._iter_search(object_type, plan)

    def iter_modified_deals(
        self, since: datetime, properties: Sequence[str], *, until: datetime | None = None
    ) -> Iterator[Deal]:
        return self.iter_modified("deals", since, properties, until=until)  # type: ignore[return-value]  # deals give Deal

    def iter_deals_in_stages(
        self, stage_ids: Sequence[str], properties: Sequence[str], since: datetime | None = None
    ) -> Iterator[Deal]:
        if not stage_ids:
            return iter(())
        plan = SearchPlan(
            modified_property="hs_lastmodifieddate",
            properties=tuple(properties),
            since=since,
            until=None,
            page_size=SEARCH_PAGE, window=SEARCH_PAGE,  # keyset paging, as iter_modified
            base_filters=(
                {"propertyName": "dealstage", "operator": "IN", "values": list(stage_ids)},
            ),
        )
        return self._iter_search("deals", plan)  # type: ignore[return-value]  # deals give Deal

    def get_deal(self, deal_id: str, properties: Sequence[str] = ()) -> Deal | None:
        operation = "deals.get"
        data = self._call(
            "objects.get",
            operation,
            {"objectType": "deals", "objectId": str(deal_id)},
            query={"properties": list(properties)} if properties else None,
            allow_status=(404,),
        )
        if isinstance(data, wire.StatusAnswer):
            return None
        return self._record("deals", data, operation)  # type: ignore[return-value]  # deals give Deal

    def read_objects(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str] = ()
    ) -> Iterator[HubSpotObject]:
        """Batch-read any object type, 100 ids per request, streaming the records."""
        operation = f"{object_type}.batch_read"
        unique = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(unique), wire.OBJECT_BATCH):
            chunk = unique[start : start + wire.OBJECT_BATCH]
            body = wire.batch_read_body(chunk, properties)
            data = self._call(
                "objects.batch_read", operation, {"objectType": object_type}, body=body
            )
            for item in self._results(data, operation):
                yield self._record(object_type, item, operation)

    def read_deals(self, ids: Sequence[str], properties: Sequence[str] = ()) -> Iterator[Deal]:
        return self.read_objects("deals", ids, properties)  # type: ignore[return-value]  # deals give Deal

    def read_companies(self, ids: Sequence[str], properties: Sequence[str] = ()) -> Iterator[Company]:
        return self.read_objects("companies", ids, properties)  # type: ignore[return-value]  # companies give Company

    def read_contacts(self, ids: Sequence[str], properties: Sequence[str] = ()) -> Iterator[Contact]:
        return self.read_objects("contacts", ids, properties)  # type: ignore[return-value]  # contacts give Contact

    def read_notes(self, ids: Sequence[str], properties: Sequence[str] = ()) -> Iterator[Note]:
        return self.read_objects("notes", ids, properties)  # type: ignore[return-value]  # notes give Note

    def read_associations(
        self, from_type: str, to_type: str, ids: Sequence[str]
    ) -> Mapping[str, list[Association]]:
        """Every link of each id, 1,000 ids per batch read.

        An input with more links than one result holds (500) carries a cursor: on 2026-09 it
        is resent to the batch read with its ``after``, together with the other inputs still
        to continue; on v3 its links are paged with v4's per-object GET.
        """
        operation = f"associations.{from_type}.{to_type}.batch_read"
        pager = self._paths.get("associations.page")
        out: dict[str, list[Association]] = {}
        pending: list[tuple[str, str | None]] = [
            (i, None) for i in dict.fromkeys(str(i) for i in ids)
        ]
        cursors: dict[str, set[str | None]] = {}  # per object, the cursors its links were read at
        while pending:
            batch, pending = pending[: wire.ASSOCIATION_BATCH], pending[wire.ASSOCIATION_BATCH :]
            sent = dict(batch)
            body = wire.association_read_body(batch)
            data = self._call(
                "associations.batch_read",
                operation,
                {"fromObjectType": from_type, "toObjectType": to_type},
                body=body,
            )
            for result in self._results(data, operation):
                try:  # once per object read: a plain try, not _reading()'s generator
                    from_id, page, after = wire.association_result(result)
                except _UNREADABLE as exc:
                    raise self._malformed(operation, f"an association result could not be read ({exc})") from exc
                links = out.setdefault(from_id, [])
                links.extend(page)
                if after is None:
                    continue
                self._check_cursor(operation, from_id, page, after, cursors.setdefault(from_id, {sent.get(from_id)}))
                if pager is None:
                    pending.append((from_id, after))
                else:
                    links.extend(self._more_associations(from_type, to_type, from_id, after, cursors[from_id]))
        return out

    def _check_cursor(self, operation: str, from_id: str, page: Sequence[Association], after: str,
                      seen: set[str | None]) -> None:
        """Refuse links that page without end: a page with none, or a cursor read before."""
        if not page or after in seen:
            raise self._malformed(operation, f"the links of {from_id} page to "
                                  + ("the cursor" if page else "a cursor after no links"))
        seen.add(after)

    def _more_associations(
        self, from_type: str, to_type: str, from_id: str, after: str, seen: set[str | None]
    ) -> Iterator[Association]:
        """Page the links of one object past a v4 batch result with v4's per-object GET."""
        operation = f"associations.{from_type}.{to_type}.page"
        cursor: str | None = after
        while cursor:
            data = self._call(
                "associations.page",
                operation,
                {"objectType": from_type, "objectId": from_id, "toObjectType": to_type},
                query={"after": cursor, "limit": wire.ASSOCIATION_PAGE},
            )
            with self._reading(operation, "an association page"):
                page = list(wire.associations(self._results(data, operation)))
                cursor = wire.next_after(data)
            yield from page
            if cursor is not None:
                self._check_cursor(operation, from_id, page, cursor, seen)

    def get_pipelines(self) -> list[Pipeline]:
        operation = "pipelines.get_all"
        data = self._call("pipelines.list", operation, {"objectType": "deals"})
        with self._reading(operation, "a pipeline"):
            return [wire.pipeline(p) for p in self._results(data, operation)]

    # -- writes ----------------------------------------------------------------------------

    def create_object(
        self,
        object_type: str,
        properties: Mapping[str, str | None],
        associations: Sequence[AssociationInput] = (),
    ) -> HubSpotObject:
        operation = f"{object_type}.create"
        body = wire.create_body(properties, associations)
        data = self._call(
            "objects.create", operation, {"objectType": object_type}, body=body, idempotent=False
        )
        return self._record(object_type, data, operation)

    def _batch_answers(
        self, object_type: str, kind: str, inputs: list[dict[str, Any]], *, idempotent: bool
    ) -> Iterator[tuple[int, list[Any], Mapping[str, Any]]]:
        """Send a batch write 100 inputs a call: (first input's index, results, answer) each."""
        operation = f"{object_type}.batch_{kind}"
        for start in range(0, len(inputs), wire.OBJECT_BATCH):
            body = {"inputs": inputs[start : start + wire.OBJECT_BATCH]}
            data = self._call(f"objects.batch_{kind}", operation, {"objectType": object_type},
                              body=body, idempotent=idempotent)
            yield start, self._results(data, operation), data

    def _batch_write(
        self, object_type: str, kind: str, inputs: list[dict[str, Any]], *, idempotent: bool
    ) -> BatchResult:
        operation = f"{object_type}.batch_{kind}"
        succeeded: list[HubSpotObject] = []
        failed: list[ItemError] = []
        for _start, results, data in self._batch_answers(object_type, kind, inputs, idempotent=idempotent):
            succeeded.extend(self._record(object_type, item, operation) for item in results)
            with self._reading(operation, "a batch's errors"):
                failed.extend(wire.item_errors(data.get("errors") or (), self._remote))
        return BatchResult(succeeded=succeeded, failed=failed)

    def create_objects(self, object_type: str, inputs: Sequence[Mapping[str, str | None]]) -> BatchResult:
        return self._batch_write(object_type, "create", wire.create_inputs(inputs), idempotent=False)

    def update_objects(self, object_type: str, updates: Mapping[str, Mapping[str, str | None]]) -> BatchResult:
        # Setting the same values twice leaves the same record: safe to retry.
        return self._batch_write(object_type, "update", wire.update_inputs(updates), idempotent=True)

    def upsert_objects(
        self, object_type: str, id_property: str, inputs: Mapping[str, Mapping[str, str | None]]
    ) -> BatchResult:
        # Keyed by a unique property, a re-sent upsert finds the record the first one made.
        return self._batch_write(
            object_type, "upsert", wire.upsert_inputs(id_property, inputs), idempotent=True
        )

    def create_note_on_deal(self, deal_id: str, body: str, when: datetime) -> str:
        if when.tzinfo is None:
            raise ValueError("when must be tz-aware")
        note = self.create_object(
            "notes",
            wire.note_properties(body, when),
            [AssociationInput(to_id=str(deal_id), type_id=wire.NOTE_TO_DEAL)],
        )
        return note.id

    def create_notes_on_deals(self, notes: Sequence[DealNote]) -> NoteBatch:
        created: dict[str, str] = {}
        failed: list[ItemError] = []
        keys, inputs = [n.key for n in notes], wire.note_inputs(notes)
        # idempotent=False: a re-sent create makes the notes twice.
        for start, results, data in self._batch_answers("notes", "create", inputs, idempotent=False):
            with self._reading("notes.batch_create", "a note result"):
                errors = wire.item_errors(data.get("errors") or (), self._remote)
                ids, refused = wire.note_batch(keys[start : start + wire.OBJECT_BATCH], results, errors)
            created.update(ids)
            failed.extend(refused)
        return NoteBatch(created=created, failed=failed)

    def ensure_property_group(self, object_type: str, name: str, label: str) -> bool:
        body = {"name": name, "label": label}
        data = self._call("property_groups.create", f"{object_type}.property_group.create",
                          {"objectType": object_type}, body=body,
                          allow_status=(409,))  # 409: already there, which is what we want
        return not isinstance(data, wire.StatusAnswer)

    def ensure_properties(self, object_type: str, specs: Sequence[PropertySpec]) -> list[str]:
        created: list[str] = []
        for spec in specs:
            # A re-sent create of a property that the first attempt made answers 409,
            # which we read as "exists": retrying is safe.
            data = self._call("properties.create", f"{object_type}.property.create", {"objectType": object_type},
                              body=wire.property_body(spec), allow_status=(409,))
            if not isinstance(data, wire.StatusAnswer):
                created.append(spec.name)
        return created

    def get_property(self, object_type: str, name: str) -> PropertySpec | None:
        data = self._call("properties.get", f"{object_type}.property.get",
                          {"objectType": object_type, "propertyName": name}, allow_status=(404,))
        with self._reading(f"{object_type}.property.get", f"property {name}"):
            return None if isinstance(data, wire.StatusAnswer) else wire.property_spec(data)

