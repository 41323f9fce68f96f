"""Linking a chunk of deals' companies and contacts to host records: match, create, link.

For the deals of one chunk, :class:`RecordLinker` reads the associations (one batch read per
direction) and the companies and contacts not linked yet, resolves each to a host record
(linked, matched by domain, name or email, or created with an idempotent external id) and
queues its link; :meth:`RecordLinker.write_pending` writes a chunk's links in one transaction (and
:meth:`RecordLinker.write_log` its log lines in another).
It remembers, for the engine's lifetime (one run), which host record each HubSpot company and
contact resolved to, so each is read from HubSpot at most once per run.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ._chunk_claims import ChunkClaims
from ._field_sync import field_values
from ._host_ids import host_id_key
from ._merges import MERGED_PROPERTY, merged_ids
from .conflicts import to_json
from .errors import MappingError
from .host import CompanyDraft, ContactDraft, GroupsWrites, UserType
from .mapping import normalize_domain
from .store import CLAIM_WAIT, LogLevel

if TYPE_CHECKING:
    from ._engine_parts import EngineParts
    from .client import Association, Deal, HubSpotObject
    from .client import Company as HubSpotCompany
    from .client import Contact as HubSpotContact
    from .events import OrderCreated
    from .host import Company, Contact, HostServices
    from .mapping import MappingStrategy
    from .store import Link, StateStore

__all__ = ["PRIMARY_COMPANY", "Associations", "Chunk", "PendingLink", "RecordLinker", "company_external_id",
           "split_company_fields", "update_linked_company"]

PRIMARY_COMPANY = 5


def company_external_id(portal_id: str, company_id: str) -> str:
    """The external id that makes company creation idempotent."""
    return f"hubspot:{portal_id}:company:{company_id}"


def split_company_fields(fields: Mapping[str, Any], host_fields: Collection[str],
                         ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split mapped company fields into those the host keeps and those only the plugin keeps
    (in the link's synced values: e.g. the domain, phone and address of Ambac Tracker's
    companies, which have no such fields)."""
    kept_by_host = {k: v for k, v in fields.items() if k in host_fields}
    return kept_by_host, {k: v for k, v in fields.items() if k not in host_fields}


def update_linked_company(host: HostServices, store: StateStore, link: Link,
                          changes: Mapping[str, object]) -> Company:
    """Update a linked host company and return its current version.

    The host may answer with a new version under a new id (Ambac Tracker's companies are
    versioned): the link is then re-pointed to it, so the next sync finds the company.
    """
    company = host.update_company(link.host_id, changes)
    if company.id != link.host_id:
        store.move_link_host(link.id, company.id)
    return company


@attrs.frozen
class PendingLink:
    """A link to write at the end of the chunk (see :meth:`RecordLinker.write_pending`)."""

    object_type: str
    hubspot_id: str
    host_type: str
    host_id: str
    synced: dict[str, Any]
    created: OrderCreated | None


@attrs.define
class Chunk:
    """Associations and resolved records for one chunk of deals."""

    company_of: dict[str, str] = attrs.field(factory=dict)  # deal id -> HubSpot company id
    contacts_of: dict[str, list[str]] = attrs.field(factory=dict)  # deal id -> contact ids
    companies: dict[str, HubSpotCompany] = attrs.field(factory=dict)
    contacts: dict[str, HubSpotContact] = attrs.field(factory=dict)
    #: normalised domain -> host companies linked with it, read for the chunk's companies in
    #: one query (only where the host's companies have no website to ask for)
    domain_links: dict[str, list[str]] = attrs.field(factory=dict)
    #: (kind, HubSpot id) -> the mapping's fields of that record, or the MappingError it raised
    _mapped: dict[tuple[str, str], Mapping[str, Any] | MappingError] = attrs.field(factory=dict)

    def fields(self, mapping: MappingStrategy, record: HubSpotCompany | HubSpotContact) -> Mapping[str, Any]:
        """The mapping's fields of one of the chunk's companies or contacts, computed once per
        chunk (the linker asks for them up to three times); its MappingError each time."""
        key = ("company" if record.object_type == "companies" else "contact", record.id)
        found = self._mapped.get(key)
        if found is None:
            try:
                found = (mapping.company_fields(record) if key[0] == "company"  # type: ignore[arg-type]
                         else mapping.contact_fields(record))  # type: ignore[arg-type]
            except MappingError as exc:
                found = exc
            self._mapped[key] = found
        if isinstance(found, MappingError):
            raise found
        return found


@attrs.frozen
class Associations:
    """The primary company and the contacts of some deals, as HubSpot associates them."""

    deal_ids: frozenset[str]  # the deals read (one without associations is in neither map)
    company_of: dict[str, str] = attrs.field(factory=dict)  # deal id -> HubSpot company id
    contacts_of: dict[str, list[str]] = attrs.field(factory=dict)  # deal id -> contact ids


WRITE_GROUP = 100
"""Deals whose host writes commit together (see :meth:`RecordLinker.grouped_writes`): a
commit per 100 orders, not per record, while the host's locks are held only briefly."""


class RecordLinker:
    """Resolves one tenant's HubSpot companies and contacts to host records, and links them."""

    def __init__(self, parts: EngineParts) -> None:
        self.tenant_id = parts.tenant_id
        self.portal_id = parts.portal_id
        self.host = parts.host
        self.store: StateStore = parts.store
        self.client = parts.client
        self.mapping = parts.mapping
        # HubSpot id -> host id, for companies and contacts resolved in this engine's lifetime
        # (one run): each is read from HubSpot at most once per run.
        self._company_ids: dict[str, str | None] = {}
        self._contact_ids: dict[str, str | None] = {}
        self._pending: list[PendingLink] = []
        self._log_lines: list[tuple[LogLevel, str, str, str | None]] = []  # written with the chunk's links
        self._resolved_companies: set[str] = set()  # host companies some HubSpot company resolved to
        self._resolved_contacts: set[str] = set()  # host users some HubSpot contact resolved to
        self._domain_ids: dict[str, str] = {}  # normalised domain -> host company, resolved in this run
        # The chunk's claims on the emails and domains it may create users and companies for.
        self.claims = ChunkClaims(self.store, self.tenant_id)

    def read_associations(self, deals: Sequence[Deal]) -> Associations:
        """Read these deals' primary companies and contacts (one batch read per direction).
        It touches only HubSpot, so it may run ahead in another thread (see :mod:`._read_ahead`)."""
        found = Associations(frozenset(d.id for d in deals))
        if not deals:
            return found
        ids = [d.id for d in deals]
        for deal_id, assocs in self.client.read_associations("deals", "companies", ids).items():
            chosen = _primary_company(assocs)
            if chosen is not None:
                found.company_of[deal_id] = chosen
        for deal_id, assocs in self.client.read_associations("deals", "contacts", ids).items():
            found.contacts_of[deal_id] = sorted((a.to_id for a in assocs), key=_id_order)
        return found

    def load_related(self, deals: Sequence[Deal], ahead: Associations | None = None, *,
                     dry_run: bool = False) -> Chunk:
        """Read these deals' associations (those ``ahead`` has not read already), and the
        companies and contacts not resolved in this run yet that are not linked either. A
        company or contact HubSpot made by merging linked ones takes over their link
        (:meth:`_adopt_merged`; a dry run only says which host record it resolves to)."""
        chunk = Chunk()
        if not deals:
            return chunk
        ids = {d.id for d in deals}
        rest = [d for d in deals if ahead is None or d.id not in ahead.deal_ids]  # unread (a new stage?)
        for found in (ahead, self.read_associations(rest)):
            if found is not None:
                chunk.company_of.update((k, v) for k, v in found.company_of.items() if k in ids)
                chunk.contacts_of.update((k, v) for k, v in found.contacts_of.items() if k in ids)
        wanted_companies = {c for c in chunk.company_of.values() if c not in self._company_ids}
        linked = self.store.get_links_by_hubspot(self.tenant_id, self.portal_id, "company", wanted_companies)
        for hubspot_id, link in linked.items():
            self._company_ids[hubspot_id] = link.host_id
            self._resolved_companies.add(link.host_id)
        to_read = sorted(wanted_companies - set(linked), key=_id_order)
        chunk.companies = {c.id: c for c in self.client.read_companies(
            to_read, [*self.mapping.company_properties, MERGED_PROPERTY])}
        self._adopt_merged("company", chunk.companies, self._company_ids, self._resolved_companies, dry_run)
        if "website" not in self.host.capabilities().company_fields:
            domains = set()
            for company in chunk.companies.values():
                try:
                    domains.add(str(chunk.fields(self.mapping, company).get("website") or ""))
                except MappingError:
                    continue  # said when the company is resolved
            self._read_domain_links(domains, chunk)
        wanted_contacts = {c for ids_ in chunk.contacts_of.values() for c in ids_ if c not in self._contact_ids}
        linked = self.store.get_links_by_hubspot(self.tenant_id, self.portal_id, "contact", wanted_contacts)
        for hubspot_id, link in linked.items():
            self._contact_ids[hubspot_id] = link.host_id
            self._resolved_contacts.add(link.host_id)
        to_read = sorted(wanted_contacts - set(linked), key=_id_order)
        chunk.contacts = {c.id: c for c in self.client.read_contacts(
            to_read, [*self.mapping.contact_properties, MERGED_PROPERTY])}
        self._adopt_merged("contact", chunk.contacts, self._contact_ids, self._resolved_contacts, dry_run)
        return chunk

    def _adopt_merged(self, kind: str, records: Mapping[str, HubSpotObject], ids: dict[str, Any],
                      resolved: set[str], dry_run: bool) -> None:
        """Give the survivors of HubSpot merges among ``records`` the link of the records merged
        into them (``hs_merged_object_ids``), so they resolve to the same host record instead of
        a second one: one store query, none when nothing was merged (the usual case)."""
        merged = {old: record_id for record_id, record in records.items() for old in merged_ids(record)}
        if not merged:
            return
        found = self.store.get_links_by_hubspot(self.tenant_id, self.portal_id, kind, list(merged))
        for old, link in sorted(found.items(), key=lambda item: item[1].id):
            survivor = merged[old]
            if survivor in ids:  # another record merged into it was adopted first
                continue
            if not dry_run:
                self.store.move_link(link.id, survivor)
                self.store.log(self.tenant_id, LogLevel.INFO, f"inbound.{kind}",
                               f"HubSpot {kind} {old} was merged into {kind} {survivor}; host {kind} "
                               f"{link.host_id} follows it", record=f"{kind}:{survivor}")
            ids[survivor] = link.host_id
            resolved.add(link.host_id)

    def claim(self, object_type: str, hubspot_ids: Collection[str], *, wait: bool) -> set[str]:
        """Claim HubSpot records (``deal``, ``company``, ``contact``) about to be applied to the
        host; return the ids now held. With ``wait`` (holding nothing else, so no two holders
        wait for each other) all are taken, waiting up to 15 s, else ``ClaimTimeoutError``.
        Without, those another worker holds now are left out, for the caller to retry; taken
        so, they may be taken while other claims are held. :meth:`release_links` gives them up
        early, :meth:`release_claims` with the rest."""
        keys = {f"{object_type}:{hubspot_id}": hubspot_id for hubspot_id in hubspot_ids}
        if wait:
            self.claims.take_all(keys, CLAIM_WAIT)
            return set(keys.values())
        return {keys[key] for key in self.claims.take_free(keys)}

    def claim_links(self, object_type: str, links: Mapping[str, Link], *, wait: bool) -> dict[str, Link]:
        """:meth:`claim` linked records, and return their links read again under the claims:
        another worker that applied a newer version of one meanwhile has finished, and the
        record is read from HubSpot after it: never an older version over a newer one."""
        mine = self.claim(object_type, links, wait=wait)
        return self.store.get_links_by_hubspot(self.tenant_id, self.portal_id, object_type, mine) if mine else {}

    def release_links(self, object_type: str, hubspot_ids: Collection[str]) -> None:
        self.claims.release_keys([f"{object_type}:{hubspot_id}" for hubspot_id in hubspot_ids])

    def claim_new_records(self, chunk: Chunk) -> None:
        """Take, in one statement, the store's claims on the emails of the chunk's unlinked
        contacts (those it may create users for; asking the host which have a user already would
        cost a query each, and a claim on one that has is never waited for: only a creation
        needs it), and on the domains of its companies no host company has yet, instead of a
        claim taken around each creation; all of them or, while another holder has one, none
        (:meth:`~._chunk_claims.ChunkClaims.take_all` waits up to 15 s, then
        ``ClaimTimeoutError``). :meth:`release_claims` gives them up at the chunk's end
        (:class:`~._chunk_claims.ChunkClaims` renews them meanwhile)."""
        domains = {_domain_claim_key(domain): domain for domain in self._new_domains(chunk)}
        keys = list(domains)
        for hubspot_id, record in chunk.contacts.items():
            if hubspot_id in self._contact_ids:
                continue
            try:
                email = str(chunk.fields(self.mapping, record).get("email") or "")
            except MappingError:
                continue  # said when the contact is resolved
            if email:
                keys.append(_email_claim_key(email))
        self.claims.take_all(keys, CLAIM_WAIT)
        if domains:  # a worker that held one since the chunk read its links has linked it now
            self._read_domain_links(set(domains.values()), chunk)

    def _read_domain_links(self, domains: set[str], chunk: Chunk) -> None:
        chunk.domain_links.update({
            domain: [link.host_id for link in found] for domain, found in
            self.store.company_links_by_domains(self.tenant_id, self.portal_id, domains).items()})

    def _new_domains(self, chunk: Chunk) -> set[str]:
        """The domains of the chunk's unlinked companies that no company of this run or (with a
        host that keeps no website) no link of this portal has yet: companies it may create."""
        if "website" in self.host.capabilities().company_fields:
            return set()  # the host matches domains itself, on committed companies
        domains = set()
        for hubspot_id, record in chunk.companies.items():
            if hubspot_id in self._company_ids:
                continue
            try:
                domain = normalize_domain(str(chunk.fields(self.mapping, record).get("website") or ""))
            except MappingError:
                continue  # said when the company is resolved
            if domain and domain not in chunk.domain_links and domain not in self._domain_ids:
                domains.add(domain)
        return domains

    def _hold_domain(self, domain: str, chunk: Chunk) -> None:
        """Hold the claim on the domain of a company about to be created until the chunk's links
        are written: another worker resolving a company with that domain meanwhile waits, then
        finds this one's link instead of creating a second company. When another worker held it,
        the domain's links are read again once it is ours."""
        key = _domain_claim_key(domain)
        if key not in self.claims:
            self.claims.take_all([key], CLAIM_WAIT)
            self._read_domain_links({domain}, chunk)

    def release_claims(self) -> None:
        """Give up the chunk's claims (after its links are written)."""
        self.claims.release()

    def resolve_company(self, hubspot_id: str | None, chunk: Chunk, dry_run: bool) -> tuple[str | None, str]:
        """Return the host company id for a HubSpot company, linking or creating it."""
        if hubspot_id is None:
            return None, "the deal has no associated company"
        if hubspot_id in self._company_ids:
            return self._company_ids[hubspot_id], f"company {hubspot_id} already linked"
        record = chunk.companies.get(hubspot_id)
        if record is None:
            return None, f"company {hubspot_id} is not readable in HubSpot (deleted?)"
        fields = dict(chunk.fields(self.mapping, record))
        external = company_external_id(self.portal_id, hubspot_id)
        host_fields, _kept = split_company_fields(fields, self.host.capabilities().company_fields)
        match, how = self._match_company(fields, external, chunk, hold=not dry_run)
        if dry_run:
            return (match.id if match else None), (how if match else f"would create company {fields['name']!r}")
        if match is None:
            # Only the fields the host keeps; the others (a domain, phone, address the host has
            # no field for) stay in the link's synced values, the plugin's own record.
            match = self.host.create_company(CompanyDraft(external_id=external, **host_fields))
            how = f"created company {match.id}"
        self.link("company", hubspot_id, "company", match.id, {k: to_json(v) for k, v in fields.items()})
        self._company_ids[hubspot_id] = match.id
        self._resolved_companies.add(match.id)
        domain = normalize_domain(str(fields.get("website") or ""))
        if domain:
            self._domain_ids.setdefault(domain, match.id)
        return match.id, how

    def kept_values(self, hubspot_id: str | None, chunk: Chunk) -> dict[str, Any]:
        """The values of a HubSpot company the host has no field for (as JSON), which the
        plugin keeps: from its link when linked, else mapped from the chunk's record."""
        if hubspot_id is None:
            return {}
        link = self.store.get_link_by_hubspot(self.tenant_id, self.portal_id, "company", hubspot_id)
        if link is not None:
            values: Mapping[str, Any] = field_values(link.synced)
        elif hubspot_id in chunk.companies:
            values = {k: to_json(v) for k, v in chunk.fields(self.mapping, chunk.companies[hubspot_id]).items()}
        else:
            return {}
        return split_company_fields(values, self.host.capabilities().company_fields)[1]

    def _match_company(self, fields: Mapping[str, Any], external: str,
                       chunk: Chunk, *, hold: bool = False) -> tuple[Company | None, str]:
        """Normalised domain first, then case-insensitive name; prefer our own earlier creation.

        A domain names one customer: a HubSpot duplicate with the same domain reuses the host
        company even when another HubSpot company is linked to it. A name does not: companies
        called the same are distinct unless the host company is unlinked (or ours).

        A host whose companies have a website is asked for the domain; otherwise the plugin's
        own records answer: the host companies linked to a HubSpot company of this portal with
        the domain (the store's ``match_domain``), or resolved for one earlier in this run.
        """
        domain = normalize_domain(str(fields.get("website") or ""))
        by_domain = self._companies_with_domain(domain, chunk) if domain else []
        if domain and not by_domain and hold and "website" not in self.host.capabilities().company_fields:
            self._hold_domain(domain, chunk)  # ``hold``: it may be created; another may have been
            by_domain = self._companies_with_domain(domain, chunk)
        if by_domain:
            return self._best(by_domain, external, strict=False), f"matched by domain {domain}"
        found = self.host.find_companies_by_name(str(fields["name"]))
        best = self._best(found, external, strict=True) if found else None
        return best, ("matched by name" if best else "")

    def _companies_with_domain(self, domain: str, chunk: Chunk) -> list[Company]:
        if "website" in self.host.capabilities().company_fields:
            return list(self.host.find_companies_by_domain(domain))
        ids = list(chunk.domain_links.get(domain, ()))
        if domain in self._domain_ids:  # linked in this run, maybe not written yet
            ids.append(self._domain_ids[domain])
        found = (self.host.get_company(i) for i in dict.fromkeys(ids))
        return [c for c in found if c is not None]

    def _best(self, candidates: Sequence[Company], external: str, *, strict: bool) -> Company | None:
        """Our own earlier creation (a crash before linking), else a free one (not created for,
        linked to or just resolved for another HubSpot company), else (unless ``strict``) the
        oldest candidate."""
        ours = [c for c in candidates if c.external_id == external]
        if ours:
            return ours[0]
        free = [c for c in candidates
                if not (c.external_id or "").startswith(f"hubspot:{self.portal_id}:")
                and self.store.get_link_by_host(self.tenant_id, "company", c.id) is None
                and c.id not in self._resolved_companies]
        pool = free or ([] if strict else list(candidates))
        return min(pool, key=lambda c: host_id_key(c.id)) if pool else None

    def resolve_contacts(self, hubspot_ids: Sequence[str], chunk: Chunk, company_id: str | None,
                         dry_run: bool) -> list[str]:
        """Link or create every contact; return host ids in the documented order."""
        host_ids: list[str] = []
        for hubspot_id in hubspot_ids:
            if hubspot_id in self._contact_ids:
                known = self._contact_ids[hubspot_id]
                if known is not None:
                    host_ids.append(known)
                continue
            record = chunk.contacts.get(hubspot_id)
            if record is None:
                continue
            fields = dict(chunk.fields(self.mapping, record))
            email = str(fields.get("email") or "")
            if not email:
                self._contact_ids[hubspot_id] = None
                if not dry_run:
                    self.log(LogLevel.WARNING, "inbound.contact",
                             f"contact {hubspot_id} has no email, so no portal user can be made for it; "
                             "add an email in HubSpot", f"contact:{hubspot_id}")
                continue
            contact, users = self._find_or_create_contact(hubspot_id, email, fields, company_id, dry_run)
            if contact is None and users:
                # Only INTERNAL users (a sales rep on the deal): never the customer, never rewritten.
                self._contact_ids[hubspot_id] = None
                if not dry_run:
                    self.log(LogLevel.WARNING, "inbound.contact",
                             f"contact {hubspot_id} ({email}) is an internal user of this tenant; it is not "
                             "linked or used as the order's customer", f"contact:{hubspot_id}")
                continue
            if contact is None or dry_run:
                if contact is not None:
                    host_ids.append(contact.id)
                continue
            self.link("contact", hubspot_id, "contact", contact.id, {k: to_json(v) for k, v in fields.items()})
            self._contact_ids[hubspot_id] = contact.id
            self._resolved_contacts.add(contact.id)
            host_ids.append(contact.id)
        return host_ids

    def _find_or_create_contact(self, hubspot_id: str, email: str, fields: dict[str, Any],
                                company_id: str | None, dry_run: bool) -> tuple[Contact | None, list[Contact]]:
        """The portal user a contact resolves to, with the tenant's users of its email; one is
        created (not in a dry run) when no user has the email. Finding and creating hold the
        store's claim on the email (other processes' workers hold it too; a chunk took it with
        its others) and then the email's lock (this process's other threads), so no one else
        creates a user for it in between.

        Claim first, lock second, everywhere: no thread waits for a claim while it holds a lock
        that the claim's holder may need.
        """
        if not dry_run:
            # Held until the chunk's links are written: in a group, another worker could not
            # even see the new user before the commit, and would make a second one.
            self.claims.take_all([_email_claim_key(email)], CLAIM_WAIT)
        with _email_lock(self.tenant_id, email):
            users = list(self.host.find_contacts_by_email(email))
            contact = self._match_contact(hubspot_id, email, users, dry_run)
            if contact is None and not users and not dry_run:
                contact = self.host.create_contact(ContactDraft(parent_company_id=company_id, **fields))
            return contact, users

    def _match_contact(self, hubspot_id: str, email: str, users: Sequence[Contact],
                       dry_run: bool) -> Contact | None:
        """The PORTAL user to link a HubSpot contact to, of the tenant's users with its email.

        Emails are not unique in the host. Of several PORTAL users, a free one (not linked to
        another HubSpot contact, nor resolved for one in this run) with the lowest id wins, else
        the lowest id; the choice is logged. INTERNAL users never match.
        """
        portal = sorted((u for u in users if u.user_type is UserType.PORTAL), key=lambda u: host_id_key(u.id))
        if len(portal) <= 1:
            return portal[0] if portal else None
        free = [u for u in portal if u.id not in self._resolved_contacts
                and self.store.get_link_by_host(self.tenant_id, "contact", u.id) is None]
        chosen = (free or portal)[0]
        if not dry_run:
            others = ", ".join(str(u.id) for u in portal if u is not chosen)
            why = "the lowest id not linked to another HubSpot contact" if free else "the lowest id"
            self.log(LogLevel.INFO, "inbound.contact",
                     f"contact {hubspot_id} ({email}): {len(portal)} portal users have this email; "
                     f"chose user {chosen.id} ({why}), not {others}", f"contact:{hubspot_id}")
        return chosen

    def link(self, object_type: str, hubspot_id: str, host_type: str, host_id: str,
             synced: Mapping[str, Any], created: OrderCreated | None = None) -> None:
        """Queue a link; :meth:`write_pending` writes the chunk's links in one transaction.

        A crash before the flush loses nothing: the records carry external ids (orders,
        companies) or the contact's email (the rerun matches the user it created by email), and
        the rerun adopts them.
        """
        self._pending.append(PendingLink(object_type, hubspot_id, host_type, host_id, dict(synced), created))

    @contextlib.contextmanager
    def grouped_writes(self, grouped: bool = True) -> Iterator[None]:
        """The block's host writes in one host transaction, when ``grouped`` and the host can
        group them (:class:`~.host.GroupsWrites`); else each commits on its own.

        If the block raises, the host rolls the group back: the links and log lines it queued
        are dropped, and the host records resolved in this run forgotten (some may be gone).
        The claims taken for users and companies made in the group are held until the chunk's
        :meth:`release_claims`, after the commit.
        """
        if not grouped or not isinstance(self.host, GroupsWrites):
            yield
            return
        pending, lines = len(self._pending), len(self._log_lines)
        try:
            with self.host.grouped_writes():
                yield
        except BaseException:
            del self._pending[pending:], self._log_lines[lines:]
            for remembered in (self._company_ids, self._contact_ids, self._domain_ids,
                               self._resolved_companies, self._resolved_contacts):
                remembered.clear()
            raise

    def write_pending(self) -> list[tuple[PendingLink, Link | None]]:
        """Write the queued links in one transaction; pair each with its new link, or None
        when either unique key was taken (another writer linked it first)."""
        pending, self._pending = self._pending, []
        rows = [(p.object_type, p.hubspot_id, p.host_type, p.host_id, p.synced) for p in pending]
        return list(zip(pending, self.store.create_links(self.tenant_id, self.portal_id, rows), strict=True))

    def log(self, level: LogLevel, what: str, message: str, record: str | None) -> None:
        """Queue a line of the integration log; :meth:`write_log` writes the chunk's lines in one
        transaction (a crash before loses them, and the rerun of the chunk says them again)."""
        self._log_lines.append((level, what, message, record))

    def write_log(self) -> None:
        """Write the queued log lines in one transaction."""
        lines, self._log_lines = self._log_lines, []
        self.store.log_many(self.tenant_id, lines)


# Emails are not unique in the host, so nothing there stops two workers from each creating a
# user for one new HubSpot contact (two deals sharing it, processed at once). Finding and
# creating hold a lock per tenant and email (striped, so the set stays bounded) for the worker
# threads of one process, and the store's claim on the email (see ``_find_or_create_contact``;
# taken before the lock) for the workers of other processes sharing the store. A chunk takes the
# claims of the emails it may create users for at once (``claim_new_records``) and gives them up
# once its links are written.
_EMAIL_LOCKS = tuple(threading.Lock() for _ in range(64))


def _email_lock(tenant_id: str, email: str) -> threading.Lock:
    return _EMAIL_LOCKS[hash((tenant_id, email.strip().casefold())) % len(_EMAIL_LOCKS)]


def _domain_claim_key(domain: str) -> str:
    digest = hashlib.sha256(domain.encode()).hexdigest()
    return f"company-domain:{digest}"


def _email_claim_key(email: str) -> str:
    # Hashed: a key of bounded length whatever HubSpot sends as an email.
    digest = hashlib.sha256(email.strip().casefold().encode()).hexdigest()
    return f"contact-email:{digest}"


def _primary_company(assocs: Sequence[Association]) -> str | None:
    """The primary company (type 5); else the lowest company id (the documented rule)."""
    primary = [a.to_id for a in assocs if PRIMARY_COMPANY in a.type_ids]
    candidates = primary or [a.to_id for a in assocs]
    return min(candidates, key=_id_order) if candidates else None


def _id_order(hubspot_id: str) -> tuple[int, str]:
    return (int(hubspot_id), "") if hubspot_id.isdigit() else (2**63, hubspot_id)
