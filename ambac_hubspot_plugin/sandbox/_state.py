"""The portal's data and every CRM operation on it, independent of HTTP.

State lives in plain dicts guarded by one lock so that seeding tens of thousands of records
and paging through them stays fast. Operations return JSON-ready dicts or raise
SandboxHttpError with HubSpot's status and category.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import Any

from . import _schema
from ._search import _convert, compile_groups, parse_sorts, sort_key_for, sort_records, text_query_matcher
from ._util import Clock, SandboxHttpError, iso_ms, parse_time_ms, standard_error, to_ms

BATCH_LIMIT = 100
ASSOCIATION_BATCH_LIMIT = 1000
SEARCH_PAGE_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
LIST_PAGE_LIMIT = 100
_SEARCHABLE = {
    "deals": ("dealname",),
    "companies": ("name", "domain", "website", "phone"),
    "contacts": ("firstname", "lastname", "email", "phone", "company"),
    "notes": ("hs_note_body",),
}
_ID_BASE = {"companies": 1_000_001, "contacts": 2_000_001, "deals": 3_000_001, "notes": 4_000_001}


class Source:
    """Who made a change: drives webhook ``changeSource`` and ``sourceId``."""

    __slots__ = ("app_id", "change_source", "source_id")

    def __init__(
        self, change_source: str, source_id: str | None = None, app_id: int | None = None
    ) -> None:
        self.change_source = change_source
        self.source_id = source_id
        self.app_id = app_id


SEED = Source("SEED")
UI = Source("CRM_UI", "userId:1000001")


class StoredObject:
    """One CRM record; ``versions`` keeps what search may still see while the index lags."""

    __slots__ = (
        "archived",
        "archived_iso",
        "created_iso",
        "id",
        "props",
        "type",
        "updated_iso",
        "updated_ms",
        "versions",
    )

    def __init__(self, type_: str, id_: str, props: dict[str, str], now_ms: int) -> None:
        self.type = type_
        self.id = id_
        self.props = props
        self.created_iso = self.updated_iso = iso_ms(now_ms)
        self.updated_ms = now_ms
        self.archived = False
        self.archived_iso: str | None = None
        self.versions: list[tuple[int, dict[str, str] | None]] | None = None


Listener = Callable[[list[dict[str, Any]]], None]


class Portal:
    """All records, definitions and associations of one sandbox portal."""

    def __init__(self, portal_id: int, clock: Clock, index_lag_seconds: float = 0.0) -> None:
        self.portal_id = portal_id
        self.clock = clock
        self.index_lag_ms = int(index_lag_seconds * 1000)
        self.lock = threading.RLock()
        self.listener: Listener | None = None
        now = self.now_ms()
        self.objects: dict[str, dict[str, StoredObject]] = {t: {} for t in _schema.OBJECT_TYPE_IDS}
        self._id_order: dict[str, list[int]] = {t: [] for t in _schema.OBJECT_TYPE_IDS}
        self._next_id = dict(_ID_BASE)
        self.properties = {t: _schema.default_properties(t, now) for t in _schema.OBJECT_TYPE_IDS}
        self.groups: dict[str, dict[str, dict[str, Any]]] = {
            t: {
                name: {"name": name, "label": label, "displayOrder": -1, "archived": False}
                for name, label in groups
            }
            for t, groups in _schema.DEFAULT_GROUPS.items()
        }
        # unique property values: (type, property) -> normalised value -> object id
        self._unique: dict[tuple[str, str], dict[str, str]] = {
            (object_type, name): {}
            for object_type, definitions in self.properties.items()
            for name, definition in definitions.items()
            if definition["hasUniqueValue"] and name != "hs_object_id"
        }
        # (type, id) -> (other type, other id) -> association type ids
        self.associations: dict[tuple[str, str], dict[tuple[str, str], set[int]]] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}
        self._pipeline_counter = 75_000_000
        self._stage_counter = 1_100_000_000
        self._versions = {t: 0 for t in _schema.OBJECT_TYPE_IDS}
        self._search_cache: dict[tuple[str, str], tuple[int, list[StoredObject]]] = {}
        self._sort_cache: dict[tuple[str, str], tuple[int, list[StoredObject]]] = {}
        # Anchored searches (keyset paging): the records passing the other filters, with their
        # first sort property's keys, per filters, sorts and version.
        self._anchored_cache: dict[tuple[str, str], tuple[int, list[StoredObject], list[tuple[bool, Any]]]] = {}
        self._add_default_pipeline(now)

    # ----------------------------------------------------------------- basics
    def now_ms(self) -> int:
        return to_ms(self.clock())

    def require_type(self, name: str) -> str:
        object_type = _schema.canonical_type(name)
        if object_type is None:
            raise SandboxHttpError(
                400, f"Unable to infer object type from: {name}", "VALIDATION_ERROR"
            )
        return object_type

    def _emit(self, events: list[dict[str, Any]]) -> None:
        if events and self.listener is not None:
            self.listener(events)

    def _event(
        self, obj: StoredObject, kind: str, source: Source, now: int, **extra: Any
    ) -> dict[str, Any]:
        event = {
            "objectType": obj.type,
            "subscriptionType": f"{_schema.SINGULAR[obj.type]}.{kind}",
            "objectId": int(obj.id),
            "occurredAt": now,
            "changeSource": source.change_source,
            "sourceAppId": source.app_id,
        }
        if source.source_id is not None:
            event["sourceId"] = source.source_id
        event.update(extra)
        return event

    # ------------------------------------------------------------- pipelines
    def _add_default_pipeline(self, now: int) -> None:
        stages = [
            {
                "id": sid,
                "label": label,
                "metadata": {"isClosed": str(closed).lower(), "probability": prob},
            }
            for sid, label, prob, closed in _schema.DEFAULT_PIPELINE_STAGES
        ]
        self.add_pipeline("Sales Pipeline", stages, pipeline_id="default", created_ms=0)

    def add_pipeline(
        self,
        label: str,
        stages: Sequence[Mapping[str, Any]],
        *,
        pipeline_id: str | None = None,
        created_ms: int | None = None,
    ) -> str:
        """Add a deal pipeline; stages without an ``id`` get numeric ids as custom stages do."""
        with self.lock:
            created = iso_ms(self.now_ms() if created_ms is None else created_ms)
            if pipeline_id is None:
                self._pipeline_counter += 1
                pipeline_id = str(self._pipeline_counter)
            if pipeline_id in self.pipelines:
                raise ValueError(f"pipeline {pipeline_id!r} already exists")
            built = []
            for order, stage in enumerate(stages):
                stage_id = stage.get("id")
                if stage_id is None:
                    self._stage_counter += 1
                    stage_id = str(self._stage_counter)
                metadata = {str(k): str(v) for k, v in dict(stage.get("metadata") or {}).items()}
                if "isClosed" in stage:
                    metadata["isClosed"] = str(stage["isClosed"]).lower()
                if "probability" in stage:
                    metadata["probability"] = str(stage["probability"])
                metadata.setdefault("isClosed", "false")
                metadata.setdefault("probability", "0.5")
                built.append(
                    {
                        "id": str(stage_id),
                        "label": str(stage.get("label", stage_id)),
                        "displayOrder": order,
                        "metadata": metadata,
                        "archived": False,
                        "createdAt": created,
                        "updatedAt": created,
                        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                    }
                )
            self.pipelines[pipeline_id] = {
                "id": pipeline_id,
                "label": label,
                "displayOrder": len(self.pipelines),
                "stages": built,
                "archived": False,
                "createdAt": created,
                "updatedAt": created,
            }
            return pipeline_id

    def account_details(self) -> dict[str, Any]:
        """The account-details answer (``/account-info/.../details``): every field HubSpot
        always sends; the sandbox's settings are those of a fresh US account."""
        return {"portalId": self.portal_id, "accountType": "STANDARD", "timeZone": "US/Eastern",
                "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18_000_000, "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1"}

    def list_pipelines(self, object_type: str) -> dict[str, Any]:
        if self.require_type(object_type) != "deals":
            return {"results": []}
        return {"results": list(self.pipelines.values())}

    def get_pipeline(self, object_type: str, pipeline_id: str) -> dict[str, Any]:
        pipeline = (
            self.pipelines.get(pipeline_id) if self.require_type(object_type) == "deals" else None
        )
        if pipeline is None:
            raise SandboxHttpError(
                404, f"Unable to find pipeline {pipeline_id}", "OBJECT_NOT_FOUND"
            )
        return pipeline

    # ------------------------------------------------------------ properties
    def list_properties(self, object_type: str) -> dict[str, Any]:
        return {"results": list(self.properties[self.require_type(object_type)].values())}

    def get_property(self, object_type: str, name: str) -> dict[str, Any]:
        found = self.properties[self.require_type(object_type)].get(name)
        if found is None:
            raise SandboxHttpError(
                404, f"Unable to find property with name {name}", "OBJECT_NOT_FOUND"
            )
        return found

    def create_property(self, object_type: str, body: Mapping[str, Any]) -> dict[str, Any]:
        object_type = self.require_type(object_type)
        missing = [
            key for key in ("name", "label", "type", "fieldType", "groupName") if not body.get(key)
        ]
        if missing:
            raise SandboxHttpError(400, f"Missing required fields: {', '.join(missing)}")
        name = str(body["name"])
        with self.lock:
            if name in self.properties[object_type]:
                raise SandboxHttpError(
                    409,
                    f"A property named '{name}' already exists.",
                    "OBJECT_ALREADY_EXISTS",
                    context={"name": [name]},
                )
            if body["groupName"] not in self.groups[object_type]:
                raise SandboxHttpError(400, f"No property group named {body['groupName']} exists.")
            definition = _schema.property_definition(
                name=name,
                label=str(body["label"]),
                type_=str(body["type"]),
                field_type=str(body["fieldType"]),
                group_name=str(body["groupName"]),
                has_unique_value=bool(body.get("hasUniqueValue", False)),
                display_order=int(body.get("displayOrder", -1)),
                description=str(body.get("description", "")),
                options=[
                    {"hidden": False, "displayOrder": i, **dict(o)}
                    for i, o in enumerate(body.get("options") or [])
                ],
                created_at=iso_ms(self.now_ms()),
            )
            self.properties[object_type][name] = definition
            if definition["hasUniqueValue"]:
                self._unique[(object_type, name)] = {}
            return definition

    def list_groups(self, object_type: str) -> dict[str, Any]:
        return {"results": list(self.groups[self.require_type(object_type)].values())}

    def get_group(self, object_type: str, name: str) -> dict[str, Any]:
        found = self.groups[self.require_type(object_type)].get(name)
        if found is None:
            raise SandboxHttpError(404, f"Unable to find property group {name}", "OBJECT_NOT_FOUND")
        return found

    def create_group(self, object_type: str, body: Mapping[str, Any]) -> dict[str, Any]:
        object_type = self.require_type(object_type)
        if not body.get("name") or not body.get("label"):
            raise SandboxHttpError(400, "A property group needs a name and a label.")
        name = str(body["name"])
        with self.lock:
            if name in self.groups[object_type]:
                raise SandboxHttpError(
                    409,
                    f"A property group named '{name}' already exists.",
                    "OBJECT_ALREADY_EXISTS",
                    context={"name": [name]},
                )
            group = {
                "name": name,
                "label": str(body["label"]),
                "displayOrder": int(body.get("displayOrder", -1)),
                "archived": False,
            }
            self.groups[object_type][name] = group
            return group

    # ---------------------------------------------------------- validation
    def _normalise(
        self,
        object_type: str,
        values: Mapping[str, Any],
        current: Mapping[str, str] | None,
        *,
        trusted: bool = False,
    ) -> dict[str, str]:
        """Check and normalise property values the way HubSpot does on write."""
        definitions = self.properties[object_type]
        result: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        for name, raw in values.items():
            definition = definitions.get(name)
            if definition is None:
                if trusted:
                    result[name] = "" if raw is None else str(raw)
                    continue
                problems.append(
                    {
                        "message": f'Property "{name}" does not exist',
                        "code": "PROPERTY_DOESNT_EXIST",
                        "context": {"propertyName": [name]},
                    }
                )
                continue
            if name in _schema.READ_ONLY and not trusted:
                problems.append(
                    {
                        "message": f'"{name}" is a read only property; its value cannot be set.',
                        "code": "READ_ONLY_VALUE",
                        "context": {"propertyName": [name]},
                    }
                )
                continue
            value = "" if raw is None else str(raw)
            problem, value = self._check_value(object_type, definition, value, values, current)
            if problem:
                problems.append(
                    {"message": problem[1], "code": problem[0], "context": {"propertyName": [name]}}
                )
            else:
                result[name] = value
        if problems:
            details = json.dumps(
                [
                    {
                        "isValid": False,
                        "message": p["message"],
                        "error": p["code"],
                        "name": p["context"]["propertyName"][0],
                    }
                    for p in problems
                ]
            )
            raise SandboxHttpError(
                400,
                f"Property values were not valid: {details}",
                "VALIDATION_ERROR",
                extra={"errors": problems},
            )
        return result

    def _check_value(
        self,
        object_type: str,
        definition: Mapping[str, Any],
        value: str,
        values: Mapping[str, Any],
        current: Mapping[str, str] | None,
    ) -> tuple[tuple[str, str] | None, str]:
        type_ = definition["type"]
        if value == "":
            return None, value
        if type_ == "number":
            try:
                float(value)
            except ValueError:
                return ("INVALID_FLOAT", f"{value} was not a valid number."), value
        elif type_ == "datetime":
            ms = parse_time_ms(value)
            if ms is None:
                return ("INVALID_DATETIME", f"{value} was not a valid datetime."), value
            return None, iso_ms(ms)
        elif type_ == "date":
            ms = parse_time_ms(value + "T00:00:00Z" if len(value) == 10 else value)
            if ms is None:
                return ("INVALID_DATE", f"{value} was not a valid date."), value
            if ms % 86_400_000:
                return (
                    "INVALID_DATE",
                    f"{value} is at not midnight! Dates must be set to midnight UTC.",
                ), value
            return None, iso_ms(ms)[:10]
        elif object_type == "deals" and definition["name"] in ("pipeline", "dealstage"):
            pipeline_id = str(
                values.get("pipeline") or (current or {}).get("pipeline") or "default"
            )
            pipeline = self.pipelines.get(pipeline_id)
            if pipeline is None:
                return ("INVALID_OPTION", f"{pipeline_id} is not a valid pipeline."), value
            if definition["name"] == "dealstage" and value not in {
                s["id"] for s in pipeline["stages"]
            }:
                return (
                    "INVALID_OPTION",
                    f"{value} was not one of the allowed options for pipeline {pipeline_id}.",
                ), value
        elif (
            type_ == "enumeration"
            and definition["options"]
            and definition["fieldType"] != "checkbox"
        ):
            allowed = {o["value"] for o in definition["options"]}
            if value not in allowed:
                return (
                    "INVALID_OPTION",
                    f"{value} was not one of the allowed options: {sorted(allowed)}",
                ), value
        return None, value

    def _unique_key(self, name: str, value: str) -> str:
        return value.lower() if name == "email" else value

    def _check_unique(self, object_type: str, props: Mapping[str, str], own_id: str | None) -> None:
        for name, value in props.items():
            index = self._unique.get((object_type, name))
            if index is None or value == "":
                continue
            holder = index.get(self._unique_key(name, value))
            if holder is not None and holder != own_id:
                label = _schema.SINGULAR[object_type].capitalize()
                raise SandboxHttpError(
                    409,
                    f"{label} already exists. Existing ID: {holder}",
                    "CONFLICT",
                    context={"propertyName": [name], "existingId": [holder]},
                )

    def _index_unique(self, obj: StoredObject, old: Mapping[str, str], add: bool = True) -> None:
        for (object_type, name), index in self._unique.items():
            if object_type != obj.type:
                continue
            before, after = old.get(name), obj.props.get(name)
            if before and index.get(self._unique_key(name, before)) == obj.id:
                del index[self._unique_key(name, before)]
            if add and after:
                index[self._unique_key(name, after)] = obj.id

    # ------------------------------------------------------------- writing
    def _touch(self, obj: StoredObject, now: int) -> None:
        obj.updated_ms = now
        obj.updated_iso = iso_ms(now)
        obj.props[_schema.LASTMOD[obj.type]] = obj.updated_iso
        self._versions[obj.type] += 1
        if self.index_lag_ms:
            self._remember_version(obj, now)

    def _keep_indexed(self, obj: StoredObject) -> None:
        """Before changing a long-indexed record, keep what search sees of it while it lags."""
        if self.index_lag_ms and obj.versions is None:
            obj.versions = [(0, None if obj.archived else dict(obj.props))]

    def _remember_version(self, obj: StoredObject, now: int) -> None:
        if obj.versions is None:
            obj.versions = []
        horizon = now - self.index_lag_ms
        # keep only the newest version search can already see, plus the ones still lagging
        visible = [i for i, (at, _) in enumerate(obj.versions) if at <= horizon]
        if visible:
            obj.versions = obj.versions[visible[-1] :]
        obj.versions.append((now, None if obj.archived else dict(obj.props)))

    def create(
        self,
        object_type: str,
        properties: Mapping[str, Any],
        source: Source,
        associations: Sequence[Mapping[str, Any]] = (),
        *,
        trusted: bool = False,
    ) -> StoredObject:
        """Create one record (HTTP create, batch create, upsert, add_object, seeding)."""
        object_type = self.require_type(object_type)
        with self.lock:
            props = self._normalise(object_type, properties, None, trusted=trusted)
            self._check_unique(object_type, props, None)
            planned = self._plan_associations(object_type, associations)
            obj = self._insert(object_type, props)
            for to_type, to_id, type_id in planned:
                self.associate(object_type, obj.id, to_type, to_id, type_id)
            if source is not SEED:
                now = obj.updated_ms
                events = [self._event(obj, "creation", source, now)]
                events += [
                    self._event(obj, "propertyChange", source, now, propertyName=k, propertyValue=v)
                    for k, v in props.items()
                ]
                self._emit(events)
            return obj

    def _insert(self, object_type: str, props: dict[str, str]) -> StoredObject:
        now = self.now_ms()
        object_id = self._next_id[object_type]
        self._next_id[object_type] = object_id + 1
        id_text = str(object_id)
        obj = StoredObject(object_type, id_text, props, now)
        created_name = "hs_createdate" if object_type == "notes" else "createdate"
        props.setdefault(created_name, obj.created_iso)
        props["hs_object_id"] = id_text
        if object_type == "deals":
            props.setdefault("pipeline", "default")
        self.objects[object_type][id_text] = obj
        self._id_order[object_type].append(object_id)
        self._touch(obj, now)
        self._index_unique(obj, {})
        return obj

    def update(
        self,
        object_type: str,
        object_id: str,
        properties: Mapping[str, Any],
        source: Source,
        *,
        id_property: str | None = None,
        trusted: bool = False,
    ) -> StoredObject:
        object_type = self.require_type(object_type)
        with self.lock:
            obj = self.find(object_type, object_id, id_property)
            if obj is None:
                raise SandboxHttpError(
                    404, f"Object {object_id} of type {object_type} not found.", "OBJECT_NOT_FOUND"
                )
            props = self._normalise(object_type, properties, obj.props, trusted=trusted)
            self._check_unique(object_type, props, obj.id)
            self._apply(obj, props, source)
            return obj

    def _apply(self, obj: StoredObject, props: Mapping[str, str], source: Source) -> None:
        changed = {k: v for k, v in props.items() if obj.props.get(k, "") != v}
        for name, value in props.items():
            if value == "" and name not in obj.props:
                obj.props[name] = value  # clearing an unset property: no change, no event
        if not changed:
            return
        self._keep_indexed(obj)
        old = dict(obj.props)
        obj.props.update(changed)
        now = self.now_ms()
        self._touch(obj, now)
        self._index_unique(obj, old)
        if source is not SEED:
            self._emit(
                [
                    self._event(obj, "propertyChange", source, now, propertyName=k, propertyValue=v)
                    for k, v in changed.items()
                ]
            )

    def archive(self, object_type: str, object_id: str, source: Source) -> bool:
        object_type = self.require_type(object_type)
        with self.lock:
            obj = self.find(object_type, object_id)
            if obj is None:
                return False
            self._keep_indexed(obj)
            obj.archived = True
            now = self.now_ms()
            obj.archived_iso = iso_ms(now)
            self._index_unique(obj, obj.props, add=False)
            self._touch(obj, now)
            self._emit([self._event(obj, "deletion", source, now)])
            return True

    def restore(self, object_type: str, object_id: str, source: Source) -> StoredObject:
        object_type = self.require_type(object_type)
        with self.lock:
            obj = self.objects[object_type].get(object_id)
            if obj is None or not obj.archived:
                raise KeyError(f"no archived {object_type} with id {object_id}")
            self._check_unique(object_type, obj.props, obj.id)
            obj.archived = False
            obj.archived_iso = None
            now = self.now_ms()
            self._touch(obj, now)
            self._index_unique(obj, {})
            self._emit([self._event(obj, "restore", source, now)])
            return obj

    def merge(
        self, object_type: str, primary_id: str, merged_id: str, source: Source
    ) -> StoredObject:
        object_type = self.require_type(object_type)
        with self.lock:
            primary = self.find(object_type, str(primary_id))
            merged = self.find(object_type, str(merged_id))
            if primary is None or merged is None:
                missing = primary_id if primary is None else merged_id
                raise SandboxHttpError(
                    404, f"Object {missing} of type {object_type} not found.", "OBJECT_NOT_FOUND"
                )
            if primary is merged:
                raise SandboxHttpError(400, "Cannot merge an object with itself.")
            self._keep_indexed(primary)
            old_primary = dict(primary.props)
            system = {
                "hs_object_id",
                "createdate",
                "hs_createdate",
                _schema.LASTMOD[object_type],
                "hs_merged_object_ids",
            }
            for name, value in merged.props.items():
                if name not in system and value != "" and primary.props.get(name, "") == "":
                    primary.props[name] = value
            merged_ids = [i for i in primary.props.get("hs_merged_object_ids", "").split(";") if i]
            merged_ids += [i for i in merged.props.get("hs_merged_object_ids", "").split(";") if i]
            merged_ids.append(merged.id)
            primary.props["hs_merged_object_ids"] = ";".join(merged_ids)
            self._index_unique(merged, merged.props, add=False)
            for (other_type, other_id), type_ids in list(
                self.associations.get((object_type, merged.id), {}).items()
            ):
                for type_id in sorted(type_ids):
                    self._unlink(object_type, merged.id, other_type, other_id)
                    if self.find(other_type, other_id) is not None:
                        self.associate(
                            object_type,
                            primary.id,
                            other_type,
                            other_id,
                            type_id,
                            keep_primary=True,
                        )
            self.associations.pop((object_type, merged.id), None)
            del self.objects[object_type][merged.id]
            self._versions[object_type] += 1
            now = self.now_ms()
            self._touch(primary, now)
            self._index_unique(primary, old_primary)
            self._emit(
                [
                    self._event(
                        primary,
                        "merge",
                        source,
                        now,
                        primaryObjectId=int(primary.id),
                        mergedObjectIds=[int(merged.id)],
                        newObjectId=int(primary.id),
                    )
                ]
            )
            return primary

    # ------------------------------------------------------------- reading
    def find(
        self,
        object_type: str,
        object_id: str,
        id_property: str | None = None,
        archived: bool = False,
    ) -> StoredObject | None:
        """The live (or, with ``archived``, the archived) record by id or unique property."""
        if id_property and id_property != "hs_object_id":
            index = self._unique.get((object_type, id_property))
            if index is None:
                raise SandboxHttpError(
                    400,
                    f"{id_property} is not a unique property of {object_type}; use a property with "
                    "hasUniqueValue as idProperty.",
                    "VALIDATION_ERROR",
                )
            found_id = index.get(self._unique_key(id_property, object_id))
            if found_id is None:
                return None
            object_id = found_id
        obj = self.objects[object_type].get(object_id)
        if obj is None or obj.archived != archived:
            return None
        return obj

    def render(
        self,
        obj: StoredObject,
        wanted: Sequence[str] | None,
        props: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The ``SimplePublicObject`` answer for a record, with only the asked-for properties.

        Asked-for properties that exist but hold no value answer null, as HubSpot does (the
        legacy family's write answers leave them out: see ``_families.legacy_write``).
        """
        source = obj.props if props is None else props
        definitions = self.properties[obj.type]
        names: Iterable[str] = (*wanted, *_schema.ALWAYS_READ[obj.type]) if wanted else _schema.DEFAULT_READ[obj.type]
        out_props: dict[str, str | None] = {}
        for name in names:
            if name in source:
                out_props[name] = source[name]
            elif name in definitions:
                out_props[name] = None
        result: dict[str, Any] = {
            "id": obj.id,
            "properties": out_props,
            "createdAt": obj.created_iso,
            "updatedAt": obj.updated_iso,
            "archived": obj.archived,
        }
        if obj.archived_iso:
            result["archivedAt"] = obj.archived_iso
        return result

    def list_page(
        self,
        object_type: str,
        *,
        limit: int,
        after: str | None,
        wanted: Sequence[str] | None,
        archived: bool,
        association_types: Sequence[str] = (),
    ) -> dict[str, Any]:
        object_type = self.require_type(object_type)
        if limit < 1 or limit > LIST_PAGE_LIMIT:
            raise SandboxHttpError(
                400, f"limit must be between 1 and {LIST_PAGE_LIMIT}; got {limit}."
            )
        with self.lock:
            order = self._id_order[object_type]
            start = 0
            if after:
                if not after.isdigit():
                    raise SandboxHttpError(400, f"Invalid paging cursor after={after!r}.")
                start = bisect.bisect_right(order, int(after))
            records = self.objects[object_type]
            page: list[dict[str, Any]] = []
            next_after = None
            for position in range(start, len(order)):
                obj = records.get(str(order[position]))
                if obj is None or obj.archived != archived:
                    continue
                if len(page) == limit:
                    next_after = page[-1]["id"]
                    break
                rendered = self.render(obj, wanted)
                if association_types:
                    rendered["associations"] = self.legacy_associations(obj, association_types)
                page.append(rendered)
            result: dict[str, Any] = {"results": page}
            if next_after is not None:
                result["paging"] = {"next": {"after": next_after, "link": f"?after={next_after}"}}
            return result

    def legacy_associations(self, obj: StoredObject, to_types: Sequence[str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name in to_types:
            to_type = _schema.canonical_type(name)
            if to_type is None:
                continue
            items = []
            for (other_type, other_id), type_ids in self.associations.get(
                (obj.type, obj.id), {}
            ).items():
                if other_type != to_type or self.find(other_type, other_id) is None:
                    continue
                for type_id in sorted(type_ids):
                    label = _schema.ASSOCIATION_TYPES[type_id][2]
                    base = f"{_schema.SINGULAR[obj.type]}_to_{_schema.SINGULAR[to_type]}"
                    items.append(
                        {
                            "id": other_id,
                            "type": base if label is None else f"{base}_{label.lower()}",
                        }
                    )
            if items:
                result[name] = {"results": items}
        return result

    # --------------------------------------------------------------- batches
    @staticmethod
    def check_batch(inputs: object, limit: int = BATCH_LIMIT) -> list[Mapping[str, Any]]:
        if not isinstance(inputs, list):
            raise SandboxHttpError(400, "Invalid input JSON: 'inputs' must be a list.")
        if len(inputs) > limit:
            raise SandboxHttpError(
                400,
                f"Batch input must contain at most {limit} inputs; got {len(inputs)}.",
                "VALIDATION_ERROR",
                context={"inputs": [str(len(inputs))]},
            )
        for item in inputs:
            if not isinstance(item, Mapping):
                raise SandboxHttpError(400, "Invalid input JSON: each input must be an object.")
        return inputs

    def batch_read(
        self, object_type: str, body: Mapping[str, Any], archived: bool
    ) -> tuple[int, dict[str, Any]]:
        object_type = self.require_type(object_type)
        inputs = self.check_batch(body.get("inputs"))
        wanted = body.get("properties") or None
        id_property = body.get("idProperty")
        started = iso_ms(self.now_ms())
        results, missing = [], []
        with self.lock:
            seen = set()
            for item in inputs:
                key = str(item.get("id", ""))
                obj = self.find(object_type, key, id_property, archived=archived)
                if obj is None:
                    missing.append(key)
                elif obj.id not in seen:
                    seen.add(obj.id)
                    results.append(self.render(obj, wanted))
        errors = []
        if missing:
            errors.append(self.not_found_error(object_type, missing))
        return self.batch_answer(results, errors, started)

    def not_found_error(self, object_type: str, ids: list[str]) -> dict[str, Any]:
        label = _schema.SINGULAR[object_type].upper()
        return standard_error(
            f"Could not get some {label} objects, they may be deleted or not exist. "
            "Check that ids are valid.",
            "OBJECT_NOT_FOUND",
            {"ids": ids},
        )

    def batch_answer(
        self,
        results: list[dict[str, Any]],
        errors: list[dict[str, Any]],
        started: str,
        ok_status: int = 200,
    ) -> tuple[int, dict[str, Any]]:
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": iso_ms(self.now_ms()),
        }
        if errors:
            answer["errors"] = errors
            answer["numErrors"] = len(errors)
            return 207, answer
        return ok_status, answer

    def batch_create(
        self, object_type: str, body: Mapping[str, Any], source: Source
    ) -> tuple[int, dict[str, Any]]:
        object_type = self.require_type(object_type)
        inputs = self.check_batch(body.get("inputs"))
        started = iso_ms(self.now_ms())
        with self.lock:
            # validate everything first: HubSpot rejects the whole batch on a bad value
            for item in inputs:
                trace = item.get("objectWriteTraceId")
                if trace is not None and not isinstance(trace, str):
                    raise SandboxHttpError(
                        400, "Invalid input JSON: objectWriteTraceId must be a string."
                    )
                props = self._normalise(object_type, item.get("properties") or {}, None)
                self._check_unique(object_type, props, None)
                self._plan_associations(object_type, item.get("associations") or ())
            created = [
                self.create(
                    object_type,
                    item.get("properties") or {},
                    source,
                    item.get("associations") or (),
                )
                for item in inputs
            ]
            results = [
                _traced(self.render(obj, list(item.get("properties") or ()) or None), item)
                for obj, item in zip(created, inputs, strict=True)
            ]
        return self.batch_answer(results, [], started, ok_status=201)

    def batch_update(
        self, object_type: str, body: Mapping[str, Any], source: Source
    ) -> tuple[int, dict[str, Any]]:
        object_type = self.require_type(object_type)
        inputs = self.check_batch(body.get("inputs"))
        started = iso_ms(self.now_ms())
        results, missing = [], []
        with self.lock:
            targets = []
            for item in inputs:
                obj = self.find(object_type, str(item.get("id", "")), item.get("idProperty"))
                if obj is None:
                    missing.append(str(item.get("id", "")))
                    continue
                props = self._normalise(object_type, item.get("properties") or {}, obj.props)
                self._check_unique(object_type, props, obj.id)
                targets.append((obj, props))
            for obj, props in targets:
                self._apply(obj, props, source)
                results.append(self.render(obj, list(props) or None))
        errors = [self.not_found_error(object_type, missing)] if missing else []
        return self.batch_answer(results, errors, started)

    def batch_upsert(
        self, object_type: str, body: Mapping[str, Any], source: Source
    ) -> tuple[int, dict[str, Any]]:
        object_type = self.require_type(object_type)
        inputs = self.check_batch(body.get("inputs"))
        started = iso_ms(self.now_ms())
        results = []
        with self.lock:
            for item in inputs:
                id_property = item.get("idProperty")
                if not id_property:
                    raise SandboxHttpError(
                        400, "Each upsert input needs an idProperty with unique values."
                    )
                value = str(item.get("id", ""))
                obj = self.find(object_type, value, str(id_property))
                properties = dict(item.get("properties") or {})
                if obj is None:
                    properties[str(id_property)] = value
                    created = self.create(object_type, properties, source)
                    results.append(
                        {**self.render(created, list(properties)), "new": True}
                    )
                else:
                    props = self._normalise(object_type, properties, obj.props)
                    self._check_unique(object_type, props, obj.id)
                    self._apply(obj, props, source)
                    results.append(
                        {**self.render(obj, list(properties) or None), "new": False}
                    )
        return self.batch_answer(results, [], started)

    def batch_archive(self, object_type: str, body: Mapping[str, Any], source: Source) -> None:
        object_type = self.require_type(object_type)
        inputs = self.check_batch(body.get("inputs"))
        with self.lock:
            for item in inputs:
                self.archive(object_type, str(item.get("id", "")), source)

    # ---------------------------------------------------------------- search
    def search(self, object_type: str, body: Mapping[str, Any]) -> dict[str, Any]:
        object_type = self.require_type(object_type)
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or limit < 0 or limit > SEARCH_PAGE_LIMIT:
            raise SandboxHttpError(
                400, f"limit must be between 0 and {SEARCH_PAGE_LIMIT}; got {limit}."
            )
        after_text = str(body.get("after") or "0")
        if not after_text.isdigit():
            raise SandboxHttpError(400, f"Invalid paging cursor after={after_text!r}.")
        after = int(after_text)
        if after + limit > SEARCH_RESULT_CAP:
            raise SandboxHttpError(
                400,
                f"Search can only page through the first {SEARCH_RESULT_CAP} results "
                f"(after={after}, limit={limit}); narrow the filters, e.g. by hs_lastmodifieddate.",
                "VALIDATION_ERROR",
            )
        wanted = body.get("properties") or None
        with self.lock:
            matches, seen = self._matches(object_type, body)
            page = matches[after : after + limit]
            results = [self.render(obj, wanted, seen.get(obj.id) if seen else None) for obj in page]
        answer: dict[str, Any] = {"total": len(matches), "results": results}
        if after + limit < len(matches) and limit:
            answer["paging"] = {
                "next": {"after": str(after + limit), "link": f"?after={after + limit}"}
            }
        return answer

    def _matches(
        self, object_type: str, body: Mapping[str, Any]
    ) -> tuple[list[StoredObject], dict[str, dict[str, str]] | None]:
        """Matching records in order, and what search still sees of each while the index lags."""
        definitions = self.properties[object_type]
        lagging = self.index_lag_ms > 0
        cache_key = (
            object_type,
            json.dumps(
                [body.get("filterGroups"), body.get("sorts"), body.get("query")],
                sort_keys=True,
                default=str,
            ),
        )
        if not lagging:
            cached = self._search_cache.get(cache_key)
            if cached is not None and cached[0] == self._versions[object_type]:
                return cached[1], None
        predicate = compile_groups(body.get("filterGroups") or [], definitions)
        sorts = parse_sorts(body.get("sorts") or [], definitions)
        query = body.get("query")
        text = text_query_matcher(str(query), _SEARCHABLE[object_type]) if query else None
        if lagging:
            horizon = self.now_ms() - self.index_lag_ms
            candidates: list[tuple[StoredObject, dict[str, str]]] = []
            for obj in self.objects[object_type].values():
                props = obj.props
                if obj.versions:
                    seen = next((p for at, p in reversed(obj.versions) if at <= horizon), None)
                    if seen is None:
                        continue
                    props = seen
                elif obj.archived:
                    continue
                if (predicate is None or predicate(props)) and (text is None or text(props)):
                    candidates.append((obj, props))
            sort_records(candidates, sorts, itemgetter(1))
            return [obj for obj, _ in candidates], {obj.id: props for obj, props in candidates}
        # Filtering the records in sort order keeps that order (the sorts are stable), so the
        # order is worked out once per sort and version: paging through a portal of 50,000
        # deals anchors a new query every page, and each sorted them all again.
        anchored = self._anchored(object_type, body, sorts, text)
        if anchored is not None:
            return anchored, None
        ordered = _passing(self._sorted(object_type, body.get("sorts"), sorts), predicate, text)
        self._search_cache[cache_key] = (self._versions[object_type], ordered)
        if len(self._search_cache) > 64:
            self._search_cache.pop(next(iter(self._search_cache)))
        return ordered, None

    def _anchored(
        self, object_type: str, body: Mapping[str, Any], sorts: list[tuple[str, str, bool]],
        text: Callable[[Mapping[str, str]], bool] | None,
    ) -> list[StoredObject] | None:
        """The matches of a query anchored by a ``GT``/``GTE`` filter on its first (ascending)
        sort property in a single filter group, or None for any other query.

        Keyset paging sends such a query for every page, each with a new anchor: the records
        that pass the group's other filters are found once (per filters, sorts and version,
        with their keys of that property), and each page bisects them to its anchor, instead
        of testing every record after it again (which made paging a large portal quadratic).
        """
        groups = body.get("filterGroups") or []
        if not sorts or sorts[0][2] or len(groups) != 1:
            return None
        name, kind, _descending = sorts[0]
        filters = list(groups[0].get("filters") or [])
        anchors = [f for f in filters if f.get("propertyName") == name and f.get("operator") in ("GT", "GTE")]
        value = _convert(kind, str(anchors[0].get("value"))) if len(anchors) == 1 else None
        if value is None:
            return None
        rest = [f for f in filters if f is not anchors[0]]
        cache = (object_type, json.dumps([rest, body.get("sorts"), body.get("query")], sort_keys=True, default=str))
        version = self._versions[object_type]
        cached = self._anchored_cache.get(cache)
        if cached is None or cached[0] != version:
            predicate = compile_groups([{"filters": rest}] if rest else [], self.properties[object_type])
            matching = _passing(self._sorted(object_type, body.get("sorts"), sorts), predicate, text)
            key = sort_key_for(name, kind)
            cached = (version, matching, [key(obj.props) for obj in matching])
            self._anchored_cache[cache] = cached
            if len(self._anchored_cache) > 16:
                self._anchored_cache.pop(next(iter(self._anchored_cache)))
        _version, matching, keys = cached
        cut = bisect.bisect_left if anchors[0]["operator"] == "GTE" else bisect.bisect_right
        # Records without a value sort last and never pass the anchor: the slice ends before them.
        return matching[cut(keys, (False, value)):bisect.bisect_left(keys, (True,))]

    def _sorted(
        self, object_type: str, spec: object, sorts: list[tuple[str, str, bool]]
    ) -> list[StoredObject]:
        """All records of a type (archived too) in the order of ``sorts``, cached per version."""
        key = (object_type, json.dumps(spec, sort_keys=True, default=str))
        version = self._versions[object_type]
        cached = self._sort_cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        ordered = list(self.objects[object_type].values())
        sort_records(ordered, sorts, attrgetter("props"))
        self._sort_cache[key] = (version, ordered)
        if len(self._sort_cache) > 16:
            self._sort_cache.pop(next(iter(self._sort_cache)))
        return ordered

    # ---------------------------------------------------------- associations
    def _plan_associations(
        self, from_type: str, specs: Iterable[Mapping[str, Any]]
    ) -> list[tuple[str, str, int]]:
        planned = []
        for spec in specs:
            to_id = str((spec.get("to") or {}).get("id", ""))
            for type_spec in spec.get("types") or []:
                type_id = int(type_spec.get("associationTypeId", -1))
                known = _schema.ASSOCIATION_TYPES.get(type_id)
                if known is None or known[0] != from_type:
                    raise SandboxHttpError(
                        400,
                        f"{type_id} is not a valid association type id for {from_type}.",
                        "VALIDATION_ERROR",
                    )
                if self.find(known[1], to_id) is None:
                    raise SandboxHttpError(
                        400,
                        f"Could not create association: {known[1]} {to_id} does not exist.",
                        "VALIDATION_ERROR",
                    )
                planned.append((known[1], to_id, type_id))
        return planned

    def associate(
        self,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        type_id: int,
        *,
        keep_primary: bool = False,
    ) -> None:
        """Link two records with one type (and its unlabelled base), both directions."""
        known = _schema.ASSOCIATION_TYPES.get(type_id)
        if known is None or known[0] != from_type or known[1] != to_type:
            raise SandboxHttpError(
                400, f"{type_id} is not a valid association type between {from_type} and {to_type}."
            )
        with self.lock:
            base = known[3]
            inverse = _schema.INVERSE_TYPE[type_id]
            if type_id in _schema.INVERSE_PRIMARY:
                # company->deal 6 / company->contact 2: the primary is owned by the other side
                self.associate(
                    to_type, to_id, from_type, from_id, inverse, keep_primary=keep_primary
                )
                return
            if type_id in _schema.FORWARD_PRIMARY:
                for (other_type, other_id), types in self.associations.get(
                    (from_type, from_id), {}
                ).items():
                    if type_id in types and (other_type, other_id) != (to_type, to_id):
                        if keep_primary:
                            return self.associate(
                                from_type, from_id, to_type, to_id, base or type_id
                            )
                        types.discard(type_id)
                        self.associations[(other_type, other_id)][(from_type, from_id)].discard(
                            inverse
                        )
            forward = self.associations.setdefault((from_type, from_id), {}).setdefault(
                (to_type, to_id), set()
            )
            backward = self.associations.setdefault((to_type, to_id), {}).setdefault(
                (from_type, from_id), set()
            )
            forward.add(type_id)
            backward.add(inverse)
            if base is not None:
                forward.add(base)
                backward.add(_schema.INVERSE_TYPE[base])
        return None

    def _unlink(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self.associations.get((from_type, from_id), {}).pop((to_type, to_id), None)
        self.associations.get((to_type, to_id), {}).pop((from_type, from_id), None)

    def association_types(self, from_type: str, to_type: str) -> list[dict[str, Any]]:
        return [
            {
                "category": "HUBSPOT_DEFINED",
                "typeId": type_id,
                **({"label": label} if label else {}),
            }
            for type_id, (f, t, label, _b) in _schema.ASSOCIATION_TYPES.items()
            if f == from_type and t == to_type
        ]

    def read_associations(
        self, from_name: str, to_name: str, body: Mapping[str, Any], page_size: int
    ) -> tuple[int, dict[str, Any]]:
        """Each input's links, at most ``page_size`` of them; the rest are paged by resending
        the input with the ``paging.next.after`` its result carried, or by
        :meth:`association_page` from that cursor."""
        from_type, to_type = self.require_type(from_name), self.require_type(to_name)
        inputs = self.check_batch(body.get("inputs"), ASSOCIATION_BATCH_LIMIT)
        started = iso_ms(self.now_ms())
        results, errors = [], []
        with self.lock:
            for item in inputs:
                from_id = str(item.get("id", ""))
                start = self._link_offset(item.get("after"))
                if self.find(from_type, from_id) is None:
                    errors.append(
                        standard_error(
                            f"{_schema.SINGULAR[from_type]} {from_id} does not exist.",
                            "OBJECT_NOT_FOUND",
                            {"fromObjectId": [from_id]},
                        )
                    )
                    continue
                linked = self._links(from_type, from_id, to_type)
                if not linked:
                    errors.append(
                        standard_error(
                            f"No {to_type} is associated with "
                            f"{_schema.SINGULAR[from_type]} {from_id}.",
                            "OBJECT_NOT_FOUND",
                            {"fromObjectId": [from_id]},
                        )
                    )
                    continue
                page, paging = self._link_page(linked, start, page_size)
                results.append({"from": {"id": from_id}, "to": page, **paging})
        return self.batch_answer(results, errors, started)

    def association_page(
        self, from_name: str, from_id: str, to_name: str, *, after: str | None, limit: int
    ) -> dict[str, Any]:
        """One page of a record's links to ``to_name``: the v4 per-object GET. Its cursor is
        the one a batch read's result carries, so it continues where that result stopped."""
        from_type, to_type = self.require_type(from_name), self.require_type(to_name)
        start = self._link_offset(after)
        with self.lock:
            if self.find(from_type, from_id) is None:
                raise SandboxHttpError(
                    404,
                    f"{_schema.SINGULAR[from_type]} {from_id} does not exist.",
                    "OBJECT_NOT_FOUND",
                )
            page, paging = self._link_page(self._links(from_type, from_id, to_type), start, limit)
        return {"results": page, **paging}

    @staticmethod
    def _link_offset(after: object) -> int:
        """The position an association cursor (an offset into the record's links) names."""
        text = str(after or "0")
        if not (text.isascii() and text.isdigit()):
            raise SandboxHttpError(400, f"Invalid paging cursor after={text!r}.")
        return int(text)

    @staticmethod
    def _link_page(
        linked: list[dict[str, Any]], start: int, size: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``size`` links from ``start``, and the ``paging`` that continues them if more remain."""
        end = start + size
        paging = {"paging": {"next": {"after": str(end)}}} if end < len(linked) else {}
        return linked[start:end], paging

    def _links(self, from_type: str, from_id: str, to_type: str) -> list[dict[str, Any]]:
        """A record's live links to ``to_type``, each with all its types, unlabelled first."""
        linked = []
        for (other_type, other_id), type_ids in self.associations.get(
            (from_type, from_id), {}
        ).items():
            if other_type != to_type or not type_ids or self.find(other_type, other_id) is None:
                continue
            linked.append(
                {
                    "toObjectId": other_id,
                    "associationTypes": [
                        {
                            "category": "HUBSPOT_DEFINED",
                            "typeId": t,
                            **(
                                {"label": _schema.ASSOCIATION_TYPES[t][2]}
                                if _schema.ASSOCIATION_TYPES[t][2]
                                else {}
                            ),
                        }
                        for t in sorted(
                            type_ids,
                            key=lambda t: (_schema.ASSOCIATION_TYPES[t][2] is not None, t),
                        )
                    ],
                }
            )
        return linked

    def create_associations(
        self, from_name: str, to_name: str, body: Mapping[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        from_type, to_type = self.require_type(from_name), self.require_type(to_name)
        inputs = self.check_batch(body.get("inputs"), ASSOCIATION_BATCH_LIMIT)
        started = iso_ms(self.now_ms())
        results, errors = [], []
        with self.lock:
            for item in inputs:
                from_id = str((item.get("from") or {}).get("id", ""))
                to_id = str((item.get("to") or {}).get("id", ""))
                if self.find(from_type, from_id) is None or self.find(to_type, to_id) is None:
                    errors.append(
                        standard_error(
                            f"One of {from_type} {from_id} / {to_type} {to_id} does not exist.",
                            "OBJECT_NOT_FOUND",
                            {"fromObjectId": [from_id], "toObjectId": [to_id]},
                        )
                    )
                    continue
                labels = []
                for spec in item.get("types") or []:
                    type_id = int(spec.get("associationTypeId", -1))
                    self.associate(from_type, from_id, to_type, to_id, type_id)
                    label = _schema.ASSOCIATION_TYPES[type_id][2]
                    if label:
                        labels.append(label)
                results.append(
                    {
                        "fromObjectTypeId": _schema.OBJECT_TYPE_IDS[from_type],
                        "fromObjectId": from_id,
                        "toObjectTypeId": _schema.OBJECT_TYPE_IDS[to_type],
                        "toObjectId": to_id,
                        "labels": labels,
                    }
                )
        return self.batch_answer(results, errors, started, ok_status=201)

    def associate_default(
        self, from_name: str, from_id: str, to_name: str, to_id: str
    ) -> dict[str, Any]:
        from_type, to_type = self.require_type(from_name), self.require_type(to_name)
        type_id = _schema.DEFAULT_TYPE.get((from_type, to_type))
        started = iso_ms(self.now_ms())
        with self.lock:
            if type_id is None:
                raise SandboxHttpError(
                    400, f"No default association type between {from_type} and {to_type}."
                )
            for object_type, object_id in ((from_type, from_id), (to_type, to_id)):
                if self.find(object_type, object_id) is None:
                    raise SandboxHttpError(
                        404,
                        f"{_schema.SINGULAR[object_type]} {object_id} does not exist.",
                        "OBJECT_NOT_FOUND",
                    )
            self.associate(from_type, from_id, to_type, to_id, type_id)
        spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
        _, answer = self.batch_answer(
            [{"from": {"id": from_id}, "to": {"id": to_id}, "associationSpec": spec}], [], started
        )
        return answer


def _traced(rendered: dict[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    """A batch result naming its input's ``objectWriteTraceId``, as HubSpot's do."""
    trace = item.get("objectWriteTraceId")
    if trace is not None:
        rendered["objectWriteTraceId"] = trace
    return rendered


def _passing(
    records: Iterable[StoredObject],
    predicate: Callable[[Mapping[str, str]], bool] | None,
    text: Callable[[Mapping[str, str]], bool] | None,
) -> list[StoredObject]:
    """The live records (in their order) that pass the filters and the text query."""
    return [
        obj
        for obj in records
        if not obj.archived
        and (predicate is None or predicate(obj.props))
        and (text is None or text(obj.props))
    ]
