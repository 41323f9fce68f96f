"""The deal review page in a real headless Chromium against the reference host on loopback, at
375 and 1280 px wide: a deal looked up with the keyboard, reviewed and created by click."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._pages_world import PAGES, PagesWorld, open_pages_world

# Its import skips this module too when selenium or Chromium is missing.
from .test_admin_pages_browser import By, Keys, _browser, _fits

WebDriverWait = pytest.importorskip("selenium.webdriver.support.wait").WebDriverWait


def _wait(driver: Any, selector: str) -> Any:
    """The element ``selector`` finds, once the page navigated to has it (up to 10 s)."""
    found = WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))
    return found[0]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PagesWorld]:
    """The pages' world, served over loopback."""
    with open_pages_world(tmp_path) as world:
        yield world


@pytest.mark.parametrize("width", [375, 1280], ids=["375px", "1280px"])
def test_a_deal_reviewed_with_the_keyboard_and_created_by_click(world, width):
    """Typing the id and pressing Enter shows the review; clicking create makes one order and the
    page then shows it instead of the button (a reload creates nothing); nothing scrolls sideways."""
    company = world.company(name="Acme Tools", domain="acme.example")
    contact = world.contact(firstname="Ada", email="ada@acme.example")
    deal = world.deal(stage="contractsent", companies=[company], contacts=[contact], dealname="Brackets")
    driver: Any = _browser(world, "admin", width)
    try:
        driver.get(f"{world.base_url}{PAGES}/deals")
        assert driver.find_element(By.CSS_SELECTOR, "nav a[aria-current=page]").text == "Deal review"
        field = driver.find_element(By.ID, "deal")
        assert driver.find_element(By.CSS_SELECTOR, "label[for=deal]").text == "HubSpot deal id"
        field.send_keys(deal, Keys.ENTER)
        assert _wait(driver, "#deal-title").text == f"HubSpot deal {deal}"
        tables = driver.find_element(By.TAG_NAME, "main").text
        assert "Brackets" in tables and "Acme Tools" in tables and "ada@acme.example" in tables
        _fits(driver)
        driver.find_element(By.XPATH, "//button[.='Create the order in Ambac Tracker']").click()
        notice = _wait(driver, "[role=status]")
        order = world.order_for(deal)
        assert f"Order {order.order_number} created from deal {deal}" in notice.text
        assert not driver.find_elements(By.XPATH, "//button[.='Create the order in Ambac Tracker']")
        driver.refresh()  # a reload of the 303's page posts nothing
        assert [o.id for o in world.services.list_orders()] == [order.id]
        _fits(driver)
    finally:
        driver.quit()
