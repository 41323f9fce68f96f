"""The settings page in a real headless Chromium, at 375 and 1280 px: a save refused for a bad
value, then fixed and saved, by keyboard alone."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the [test] extra has it)")

# Without Chromium, importing the browser tests' module skips this one too, saying why.
from selenium.webdriver.common.by import By  # only once selenium is known to be there
from selenium.webdriver.common.keys import Keys

from ._pages_world import PAGES
from .test_admin_pages_browser import _fits, _notice, browse, width, world  # noqa: F401  # its fixtures, shared


def _type(element: Any, text: str) -> None:
    """Replace the field's value as a person would: select all, type."""
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.BACKSPACE, text)


def test_a_settings_error_fixed_and_saved_by_keyboard(world, browse, width):  # noqa: F811  # fixtures
    """Enter submits; the refused value's error sits beside the field it describes, the other typed
    value is kept; the summary's link leads to the field; fixed, Enter saves and the host keeps it."""
    driver = browse("admin")
    driver.get(f"{world.base_url}{PAGES}/settings")
    _fits(driver)
    _type(driver.find_element(By.ID, "field-alerts-failed_runs"), "7")
    interval = driver.find_element(By.ID, "field-sync_interval_seconds")
    _type(interval, "10")
    interval.send_keys(Keys.ENTER)

    summary = _notice(driver, "alert")
    assert "Nothing was saved: 1 problem" in summary.text
    error = driver.find_element(By.ID, "field-sync_interval_seconds-error")
    assert "at least 60" in error.text and error.is_displayed()
    interval = driver.find_element(By.ID, "field-sync_interval_seconds")
    assert "field-sync_interval_seconds-error" in interval.get_attribute("aria-describedby")
    assert driver.find_element(By.ID, "field-alerts-failed_runs").get_attribute("value") == "7"
    _fits(driver)
    assert world.runtime.tenant(world.tenant).settings.sync_interval_seconds == 900

    link = summary.find_element(By.TAG_NAME, "a")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    for _ in range(10):  # the skip link and the navigation come first
        if driver.switch_to.active_element == link:
            break
        driver.switch_to.active_element.send_keys(Keys.TAB)
    assert driver.switch_to.active_element == link, "the summary's link is reached by Tab"
    link.send_keys(Keys.ENTER)
    active = driver.switch_to.active_element
    assert active.get_attribute("id") == "field-sync_interval_seconds", "the link leads to the field"
    _type(active, "600")
    active.send_keys(Keys.ENTER)
    assert "Settings saved" in _notice(driver).text
    settings = world.runtime.tenant(world.tenant).settings
    assert (settings.sync_interval_seconds, settings.alerts.failed_runs) == (600, 7)
    saved = world.host.plugin_settings(world.tenant, "hubspot")
    assert saved is not None and saved["sync_interval_seconds"] == 600
    _fits(driver)
