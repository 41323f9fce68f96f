"""A deterministic, realistic portal: companies, contacts and deals with the usual mess."""

from __future__ import annotations

import random
from typing import Any

from ._state import Portal, StoredObject
from ._util import iso_ms

_ADJECTIVES = (
    "Acme",
    "Northwind",
    "Blue Ridge",
    "Precision",
    "Summit",
    "Ironclad",
    "Pioneer",
    "Apex",
    "Cascade",
    "Keystone",
    "Silverline",
    "Redwood",
    "Harbor",
    "Granite",
    "Vertex",
    "Lakeside",
)
_NOUNS = (
    "Machining",
    "Fabrication",
    "Components",
    "Tooling",
    "Metalworks",
    "Plastics",
    "Castings",
    "Aerospace",
    "Robotics",
    "Hydraulics",
    "Assemblies",
    "Industries",
)
_SUFFIXES = ("Inc", "LLC", "Co", "Corp", "Ltd", "GmbH")
_FIRST = (
    "Ana",
    "Ben",
    "Chloe",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jamal",
    "Kara",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pedro",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
)
_LAST = (
    "Smith",
    "Garcia",
    "Nguyen",
    "Müller",
    "Okafor",
    "Rossi",
    "Kowalski",
    "Tanaka",
    "Dubois",
    "Andersen",
    "Silva",
    "Cohen",
    "Patel",
    "O'Brien",
    "Schmidt",
    "Jones",
)
_CITIES = (
    ("Cleveland", "OH", "44101", "United States"),
    ("Austin", "TX", "73301", "United States"),
    ("Stuttgart", "BW", "70173", "Germany"),
    ("Leeds", "", "LS1 1UR", "United Kingdom"),
    ("Monterrey", "NL", "64000", "Mexico"),
    ("Toronto", "ON", "M5H 2N2", "Canada"),
)
_PARTS = (
    "bracket",
    "housing",
    "shaft",
    "valve body",
    "gear set",
    "manifold",
    "enclosure",
    "fixture",
)
_CURRENCIES = ("USD", "USD", "USD", "USD", "EUR", "GBP", "CAD")
CUSTOM_PIPELINE_LABEL = "Manufacturing orders"
_CUSTOM_STAGES = (
    ("Quote requested", "0.1", False),
    ("Quote sent", "0.3", False),
    ("Negotiation", "0.6", False),
    ("Won - release to production", "1.0", True),
    ("Lost", "0.0", True),
)
_DAY_MS = 86_400_000


def _seeded(
    portal: Portal, object_type: str, props: dict[str, str], modified_ms: int, created_ms: int
) -> StoredObject:
    obj = portal._insert(object_type, props)
    obj.created_iso = iso_ms(created_ms)
    obj.updated_ms = modified_ms
    obj.updated_iso = iso_ms(modified_ms)
    created_name = "hs_createdate" if object_type == "notes" else "createdate"
    props[created_name] = obj.created_iso
    props["hs_lastmodifieddate" if object_type != "contacts" else "lastmodifieddate"] = (
        obj.updated_iso
    )
    obj.versions = None  # a seeded record has been indexed long ago
    return obj


def seed_portal(
    portal: Portal, *, companies: int, contacts: int, deals: int, seed: int
) -> dict[str, list[str]]:
    """Fill ``portal`` deterministically (same seed, same data); returns the new ids per type."""
    counts = {"companies": companies, "contacts": contacts, "deals": deals}
    negative = {name: count for name, count in counts.items() if count < 0}
    if negative:
        raise ValueError(f"seed counts cannot be negative: {negative}")
    rng = random.Random(seed)  # noqa: S311  # reproducible test data, not secrets
    now = portal.now_ms()
    created: dict[str, list[str]] = {"companies": [], "contacts": [], "deals": []}

    def stamps() -> tuple[int, int]:
        created_ms = now - rng.randrange(30 * _DAY_MS, 730 * _DAY_MS)
        modified_ms = created_ms + rng.randrange(0, 400 * _DAY_MS)
        if modified_ms >= now - 1000:
            # Spread records "modified recently" over the last week rather than stacking them on
            # one millisecond, which no real portal does (ties are tested on purpose elsewhere).
            modified_ms = now - 1000 - rng.randrange(0, 7 * _DAY_MS)
        return max(modified_ms, created_ms), created_ms

    with portal.lock:
        custom = next(
            (p for p in portal.pipelines.values() if p["label"] == CUSTOM_PIPELINE_LABEL), None
        )
        if custom is None:
            portal.add_pipeline(
                CUSTOM_PIPELINE_LABEL,
                [
                    {"label": label, "probability": prob, "isClosed": closed}
                    for label, prob, closed in _CUSTOM_STAGES
                ],
            )
            custom = next(
                p for p in portal.pipelines.values() if p["label"] == CUSTOM_PIPELINE_LABEL
            )
        default = portal.pipelines["default"]

        company_rows: list[tuple[str, str]] = []
        for index in range(companies):
            if company_rows and rng.random() < 0.06:
                name, slug = company_rows[rng.randrange(len(company_rows))]  # a duplicate by name
            else:
                name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {rng.choice(_SUFFIXES)}"
                slug = "".join(ch for ch in name.lower().rsplit(" ", 1)[0] if ch.isalnum()) + str(
                    index % 7 or ""
                )
            domain = f"{slug}.com"
            variant = rng.random()
            if variant < 0.1:
                domain = f"www.{domain}"
            elif variant < 0.18:
                domain = f"https://www.{domain}/"
            elif variant < 0.22:
                domain = domain.upper()
            city, state, zip_code, country = rng.choice(_CITIES)
            props = {
                "name": name,
                "domain": domain,
                "website": f"https://www.{slug}.com",
                "phone": f"+1 555-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
                "address": f"{rng.randrange(1, 9999)} "
                f"{rng.choice(('Industrial', 'Main', 'Harbor', 'Mill'))} "
                f"{rng.choice(('Rd', 'St', 'Ave', 'Pkwy'))}",
                "city": city,
                "state": state,
                "zip": zip_code,
                "country": country,
            }
            if rng.random() < 0.05:
                del props["domain"]
            obj = _seeded(portal, "companies", props, *stamps())
            company_rows.append((name, slug))
            created["companies"].append(obj.id)

        company_ids = created["companies"]
        for index in range(contacts):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            position = rng.randrange(len(company_ids)) if company_ids else -1
            company_id = company_ids[position] if company_ids else None
            company_props = portal.objects["companies"][company_id].props if company_id else {}
            host = company_rows[position][1] + ".com" if company_id else "example.org"
            local = "".join(ch for ch in f"{first}.{last}".lower() if ch.isalnum() or ch == ".")
            email = f"{local}{index}@{host}"
            if rng.random() < 0.1:
                email = email.title()
            props = {
                "firstname": first,
                "lastname": last,
                "email": email,
                "phone": f"+1 555-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
                "company": company_props.get("name", ""),
            }
            obj = _seeded(portal, "contacts", props, *stamps())
            if company_id:
                portal.associate("contacts", obj.id, "companies", company_id, 1)
            created["contacts"].append(obj.id)

        contact_ids = created["contacts"]
        for index in range(deals):
            pipeline = custom if rng.random() < 0.3 else default
            stages = pipeline["stages"]
            won = [
                s
                for s in stages
                if s["metadata"]["isClosed"] == "true" and s["metadata"]["probability"] == "1.0"
            ]
            stage = won[0] if rng.random() < 0.35 else rng.choice(stages)
            modified_ms, created_ms = stamps()
            close_ms = created_ms + rng.randrange(5, 120) * _DAY_MS
            props = {
                "dealname": f"{rng.randrange(10, 5000)} x {rng.choice(_PARTS)} #{index + 1}",
                "pipeline": pipeline["id"],
                "dealstage": stage["id"],
                "closedate": iso_ms(
                    close_ms - close_ms % _DAY_MS + rng.choice((0, 0, 14, 17, 23)) * 3_600_000
                ),
                "deal_currency_code": rng.choice(_CURRENCIES),
            }
            amount_roll = rng.random()
            if amount_roll < 0.06:
                props["amount"] = ""
            elif amount_roll > 0.04 + 0.06:
                props["amount"] = (
                    f"{rng.randrange(500, 250_000)}.{rng.choice(('00', '50', '99', '25'))}"
                )
            obj = _seeded(portal, "deals", props, modified_ms, created_ms)
            if company_ids:
                portal.associate(
                    "deals", obj.id, "companies", company_ids[rng.randrange(len(company_ids))], 5
                )
                if rng.random() < 0.1:
                    portal.associate(
                        "deals",
                        obj.id,
                        "companies",
                        company_ids[rng.randrange(len(company_ids))],
                        341,
                    )
            for _ in range(rng.choice((0, 1, 1, 2))):
                if contact_ids:
                    portal.associate(
                        "deals", obj.id, "contacts", contact_ids[rng.randrange(len(contact_ids))], 3
                    )
            created["deals"].append(obj.id)
        return created


def seed_summary(created: dict[str, list[str]]) -> dict[str, Any]:
    """How many records of each type a seed created."""
    return {name: len(ids) for name, ids in created.items()}
