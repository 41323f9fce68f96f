"""What a fresh HubSpot portal knows before anyone writes: object types, default properties,
association types and the default deal pipeline."""

from __future__ import annotations

from typing import Any

# Canonical plural names; HubSpot also accepts singular names and objectTypeIds in paths.
OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3", "notes": "0-46"}
_ALIASES = {
    **{name: name for name in OBJECT_TYPE_IDS},
    **{type_id: name for name, type_id in OBJECT_TYPE_IDS.items()},
    "contact": "contacts",
    "company": "companies",
    "deal": "deals",
    "note": "notes",
}
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal", "notes": "note"}


def canonical_type(name: str) -> str | None:
    """The canonical plural object type for a path segment, or None when unknown."""
    return _ALIASES.get(name.lower())


# The property that holds "last modified" differs for contacts (a HubSpot quirk).
LASTMOD = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
    "notes": "hs_lastmodifieddate",
}

# Properties returned when a read names none (observed HubSpot defaults).
DEFAULT_READ = {
    "deals": (
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "contacts": (
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    ),
    "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
}

# Properties every answer carries even when the caller asked for others (search included).
ALWAYS_READ = {
    "deals": ("createdate", "hs_lastmodifieddate", "hs_object_id"),
    "companies": ("createdate", "hs_lastmodifieddate", "hs_object_id"),
    "contacts": ("createdate", "lastmodifieddate", "hs_object_id"),
    "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
}

# Properties clients may not write; HubSpot answers READ_ONLY_VALUE.
READ_ONLY = frozenset(
    {
        "hs_object_id",
        "hs_lastmodifieddate",
        "lastmodifieddate",
        "hs_merged_object_ids",
        "hs_createdate",
    }
)

DEFAULT_GROUPS = {
    "deals": [("dealinformation", "Deal information")],
    "companies": [("companyinformation", "Company information")],
    "contacts": [("contactinformation", "Contact information")],
    "notes": [("engagement", "Engagement")],
}

# (name, type, fieldType, hasUniqueValue)
_PROPS: dict[str, list[tuple[str, str, str, bool]]] = {
    "deals": [
        ("dealname", "string", "text", False),
        ("amount", "number", "number", False),
        ("closedate", "datetime", "date", False),
        ("pipeline", "enumeration", "select", False),
        ("dealstage", "enumeration", "radio", False),
        ("deal_currency_code", "enumeration", "select", False),
        ("description", "string", "textarea", False),
        ("hubspot_owner_id", "enumeration", "select", False),
        ("dealtype", "enumeration", "select", False),
    ],
    "companies": [
        ("name", "string", "text", False),
        ("domain", "string", "text", False),
        ("website", "string", "text", False),
        ("phone", "string", "phonenumber", False),
        ("address", "string", "text", False),
        ("city", "string", "text", False),
        ("state", "string", "text", False),
        ("zip", "string", "text", False),
        ("country", "string", "text", False),
        ("industry", "enumeration", "select", False),
        ("hubspot_owner_id", "enumeration", "select", False),
    ],
    "contacts": [
        ("email", "string", "text", True),
        ("firstname", "string", "text", False),
        ("lastname", "string", "text", False),
        ("phone", "string", "phonenumber", False),
        ("company", "string", "text", False),
        ("jobtitle", "string", "text", False),
        ("hubspot_owner_id", "enumeration", "select", False),
    ],
    "notes": [
        ("hs_timestamp", "datetime", "date", False),
        ("hs_note_body", "string", "html", False),
        ("hubspot_owner_id", "enumeration", "select", False),
    ],
}
_COMMON = [
    ("hs_object_id", "number", "number", True),
    ("hs_merged_object_ids", "enumeration", "checkbox", False),
]
_CREATED = {"notes": "hs_createdate"}


def default_properties(object_type: str, created_ms: int) -> dict[str, dict[str, Any]]:
    """The HubSpot-defined property definitions of one object type, keyed by name."""
    from ._util import iso_ms

    group = DEFAULT_GROUPS[object_type][0][0]
    rows = [
        *_PROPS[object_type],
        *_COMMON,
        (_CREATED.get(object_type, "createdate"), "datetime", "date", False),
        (LASTMOD[object_type], "datetime", "date", False),
    ]
    result: dict[str, dict[str, Any]] = {}
    for order, (name, type_, field_type, unique) in enumerate(rows):
        result[name] = property_definition(
            name=name,
            label=name.replace("_", " ").title(),
            type_=type_,
            field_type=field_type,
            group_name=group,
            has_unique_value=unique,
            hubspot_defined=True,
            display_order=order,
            created_at=iso_ms(created_ms),
        )
    return result


def property_definition(
    *,
    name: str,
    label: str,
    type_: str,
    field_type: str,
    group_name: str,
    has_unique_value: bool = False,
    hubspot_defined: bool = False,
    display_order: int = -1,
    description: str = "",
    options: list[dict[str, Any]] | None = None,
    created_at: str,
) -> dict[str, Any]:
    """One property definition shaped like HubSpot's ``Property`` answer."""
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "groupName": group_name,
        "description": description,
        "options": list(options or []),
        "displayOrder": display_order,
        "hasUniqueValue": has_unique_value,
        "hidden": False,
        "formField": not hubspot_defined,
        "calculated": False,
        "externalOptions": False,
        "hubspotDefined": hubspot_defined,
        "archived": False,
        "createdAt": created_at,
        "updatedAt": created_at,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": name in READ_ONLY,
        },
    }


# typeId -> (from type, to type, label or None, unlabelled base typeId or None)
ASSOCIATION_TYPES: dict[int, tuple[str, str, str | None, int | None]] = {
    3: ("deals", "contacts", None, None),
    4: ("contacts", "deals", None, None),
    341: ("deals", "companies", None, None),
    342: ("companies", "deals", None, None),
    5: ("deals", "companies", "Primary", 341),
    6: ("companies", "deals", "Primary", 342),
    279: ("contacts", "companies", None, None),
    280: ("companies", "contacts", None, None),
    1: ("contacts", "companies", "Primary", 279),
    2: ("companies", "contacts", "Primary", 280),
    214: ("notes", "deals", None, None),
    213: ("deals", "notes", None, None),
    202: ("notes", "contacts", None, None),
    201: ("contacts", "notes", None, None),
    190: ("notes", "companies", None, None),
    189: ("companies", "notes", None, None),
}
INVERSE_TYPE = {
    3: 4,
    4: 3,
    341: 342,
    342: 341,
    5: 6,
    6: 5,
    279: 280,
    280: 279,
    1: 2,
    2: 1,
    214: 213,
    213: 214,
    202: 201,
    201: 202,
    190: 189,
    189: 190,
}
# A deal (or contact) has at most one primary company; 6 and 2 are the same links seen back.
FORWARD_PRIMARY = frozenset({5, 1})
INVERSE_PRIMARY = frozenset({6, 2})
# The association PUT .../associations/default/... creates (HubSpot's "default" type).
DEFAULT_TYPE = {
    (from_type, to_type): type_id
    for type_id, (from_type, to_type, label, _base) in ASSOCIATION_TYPES.items()
    if label is None
}

DEFAULT_PIPELINE_STAGES = [
    ("appointmentscheduled", "Appointment scheduled", "0.2", False),
    ("qualifiedtobuy", "Qualified to buy", "0.4", False),
    ("presentationscheduled", "Presentation scheduled", "0.6", False),
    ("decisionmakerboughtin", "Decision maker bought-in", "0.8", False),
    ("contractsent", "Contract sent", "0.9", False),
    ("closedwon", "Closed won", "1.0", True),
    ("closedlost", "Closed lost", "0.0", True),
]
