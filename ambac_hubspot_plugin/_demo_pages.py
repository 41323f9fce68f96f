"""``ambac-hubspot demo --screenshots DIR``: give the demo's tenant what the admin pages are for
(a failed record, a conflict held for a person, a dead letter), then take a full-height PNG of
every page of the pages' navigation at a phone's and a desktop's width.

The pictures are taken by Debian's headless Chromium driven by selenium (the ``[screenshots]``
extra). Selenium is imported here only, and this module only when screenshots are asked for,
so the package never needs it at runtime.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["WIDTHS", "browser_missing", "conflict_settings", "page_file", "stage_pages", "take_screenshots"]

#: A phone's and a desktop's viewport width, in CSS px.
WIDTHS = (375, 1280)
_HEIGHT = 900
_LONG_NAME = "Replacement housings and brackets for the north assembly line, phase two " * 4


def browser_missing() -> str | None:
    """What to install before screenshots can be taken, or None when nothing is missing."""
    missing = []
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium (pip install 'ambac-hubspot-plugin[screenshots]', or the [test] extra)")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        missing.append("Chromium and its driver on PATH (Debian: apt-get install chromium chromium-driver)")
    return "; ".join(missing) or None


def conflict_settings() -> dict[str, Any]:
    """The demo's conflict setting when it stages the pages: order names held for a person."""
    return {"per_field": {"order.name": "manual"}}


def page_file(label: str, width: int) -> str:
    """The PNG's file name for the nav entry ``label`` at ``width``: ``sync-history-375.png``."""
    return f"{'-'.join(label.lower().split())}-{width}.png"


def stage_pages(host: Any, hubspot: Any, runtime: Any, tenant: str) -> dict[str, Any]:
    """Make a sync fail for one deal, hold one conflict open and dead-letter one push; return
    what was made."""
    from ._job_kinds import host_event_job

    services = host.services(tenant)
    store = runtime.store_for(tenant)
    linked = [o for o in services.list_orders() if o.external_id]
    # The host refuses an order name over 200 characters: the deal fails and is retried later.
    hubspot.add_object("deals", {"dealname": _LONG_NAME.strip(), "pipeline": "default", "dealstage": "closedwon"})
    failing = runtime.run_sync(tenant)
    # Both sides rename the same order between two syncs: the name waits for a person.
    renamed = linked[0]
    deal_id = renamed.external_id.rsplit(":", 1)[1]
    hubspot.update_object("deals", deal_id, {"dealname": f"{renamed.name} (HubSpot)"})
    services.update_order(renamed.id, {"name": f"{renamed.name} (Ambac)"})
    runtime.run_sync(tenant)
    # A push to a deal archived in HubSpot, allowed one attempt: a dead letter at once.
    gone = linked[-1]
    hubspot.archive_object("deals", gone.external_id.rsplit(":", 1)[1])
    kind, payload, _dedupe = host_event_job("order", gone.id, "updated", {})
    job_id = store.enqueue(tenant, kind, payload, max_attempts=1)
    runtime.wake()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(j.id == job_id for j in store.dead_letters(tenant)):
        time.sleep(0.05)
    return {"failed_deals": failing.failed, "open_conflicts": len(runtime.list_conflicts(tenant)),
            "dead_letters": len(store.dead_letters(tenant))}


@contextmanager
def _chromium(token: str) -> Iterator[Any]:
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(shutil.which("chromedriver"))))
    try:
        # The reference host signs in by API token only: send it with every request.
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {token}"}})
        yield driver
    finally:
        driver.quit()


def _viewport(driver: Any, width: int, height: int) -> None:
    # A headless window is at least 500 px wide: the phone's viewport is emulated instead.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def take_screenshots(pages_url: str, token: str, directory: Path,
                     widths: tuple[int, ...] = WIDTHS) -> list[Path]:
    """A full-height PNG of every nav page at each width, in one browser; returns the files."""
    from ._pages._layout import NAV

    directory.mkdir(parents=True, exist_ok=True)
    taken = []
    with _chromium(token) as driver:
        for width in widths:
            for label, path in NAV:
                _viewport(driver, width, _HEIGHT)
                driver.get(pages_url + path)
                height = int(driver.execute_script("return document.documentElement.scrollHeight"))
                _viewport(driver, width, max(height, 1))
                target = directory / page_file(label, width)
                target.write_bytes(driver.get_screenshot_as_png())
                taken.append(target)
    return taken
