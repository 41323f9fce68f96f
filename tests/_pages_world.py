"""The admin pages' test world: the sandbox, the reference host served over loopback with the
plugin enabled (conflicts held for a person), an admin, a viewer and a user without rights,
each with an API token, and helpers that make a failing sync and an open conflict."""

from __future__ import annotations

import contextlib
import http.client
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import attrs

from ambac_hubspot_plugin.host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS
from ambac_hubspot_plugin.sandbox import Sandbox

from ._clock import ManualClock
from ._world import EVERY_FIELD, PluginWorld, open_world, plugin_settings, serving

PUBLIC = "https://tracker.example.com"
PAGES = "/integrations/hubspot/admin"
#: Every page a GET shows, below PAGES.
PAGE_PATHS = ("", "/activity", "/history", "/conflicts", "/deals", "/settings")


def visible_text(page: str) -> str:
    """A page's visible words, one space apart (no style, no SVG, no tags)."""
    page = re.sub(r"<(style|svg)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


@attrs.frozen
class Answer:
    status: int
    headers: Mapping[str, str]
    text: str


@attrs.define
class PagesWorld(PluginWorld):
    """The plugin world on one manual clock, served over loopback, with three users."""

    clock: ManualClock = attrs.field(factory=ManualClock)
    users: dict[str, Any] = attrs.field(factory=dict)
    tokens: dict[str, str] = attrs.field(factory=dict)
    base_url: str = ""

    def request(self, method: str, path: str, who: str | None, body: bytes = b"",
                headers: Mapping[str, str] | None = None) -> Answer:
        """One request to the served host as ``who`` (None: anonymous), as a browser sends it."""
        split = urlsplit(self.base_url)
        conn = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
        sent = {"Accept": "text/html,application/xhtml+xml", **(headers or {})}
        if who is not None:
            sent["Authorization"] = f"Bearer {self.tokens[who]}"
        try:
            conn.request(method, PAGES + path, body=body, headers=sent)
            response = conn.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                          response.read().decode())
        finally:
            conn.close()

    def get(self, path: str, who: str | None) -> Answer:
        return self.request("GET", path, who)

    def post(self, path: str, who: str | None, form: Mapping[str, str]) -> Answer:
        return self.request("POST", path, who, urlencode(form).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def csrf(self, who: str, page: str = "/conflicts") -> str:
        """The CSRF token ``page`` gives ``who``'s forms ("" where the user may not act)."""
        found = re.search(r'name="csrf_token" value="([^"]*)"', self.get(page, who).text)
        assert found, f"the page {page or '/'} has a form with a CSRF token field"
        return found.group(1)

    def held_conflict(self, name: str = "Brackets", hubspot_name: str = "HubSpot name") -> tuple[str, Any]:
        """A linked deal and order renamed on both sides, held open for a person; returns the
        deal id and the open conflict."""
        deal = self.deal(dealname=name)
        self.runtime.run_sync(self.tenant)
        order = self.order_for(deal)
        self.clock.tick()
        self.services.update_order(order.id, {"name": "Host name"})
        self.clock.tick()
        self.hubspot.update_object("deals", deal, {"dealname": hubspot_name})
        self.clock.tick()
        self.runtime.run_sync(self.tenant)
        (conflict,) = [c for c in self.runtime.list_conflicts(self.tenant) if c.hubspot_id == deal]
        return deal, conflict

    def failing_sync(self) -> Any:
        """A sync of two good deals and one whose name the host refuses (over 200 characters)."""
        for name in ("Good one", "Good two", "x" * 300):
            self.deal(dealname=name)
        return self.runtime.run_sync(self.tenant)


def pages_settings(hubspot: Sandbox) -> dict[str, Any]:
    """Sandbox settings with a webhook secret (a second secret to keep off the pages) and
    conflicts held for a person."""
    return plugin_settings(hubspot, webhook_client_secret=hubspot.client_secret, public_base_url=PUBLIC,
                           conflicts={"default": "manual"})


@contextlib.contextmanager
def open_pages_world(tmp_path: Path) -> Iterator[PagesWorld]:
    """The world, served over loopback for the block."""
    clock = ManualClock()
    with open_world(tmp_path, PagesWorld, settings=pages_settings, on_clock=clock, check_enabled=False,
                    capabilities=EVERY_FIELD, clock=clock, close_runtime=True) as world:
        grants = {"admin": (MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS), "viewer": (VIEW_INTEGRATIONS,),
                  "stranger": (), "other_admin": (MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS)}
        for who, permissions in grants.items():
            user = world.host.create_user(world.tenant, f"{who}@acme.example")
            for permission in permissions:
                world.host.grant(user, permission)
            world.users[who] = user
            world.tokens[who] = world.host.create_api_token(user)
        with serving(world.host) as url:
            world.base_url = url
            yield world
