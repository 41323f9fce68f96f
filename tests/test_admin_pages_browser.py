"""The admin pages in a real headless Chromium (Debian's chromium and chromium-driver, driven by
selenium), against the reference host on loopback: at 375 and 1280 px wide, with the keyboard."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._pages_world import PAGES, PagesWorld, open_pages_world

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTHS = (375, 1280)

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the [test] extra has it)")
if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip(f"no {CHROMIUM} or {CHROMEDRIVER}: install Debian's chromium and chromium-driver "
                "(.ci/run does when apt-get is available)", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402  # only once selenium is known to be there
from selenium.webdriver.common.keys import Keys  # noqa: E402


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PagesWorld]:
    """The pages' world, served over loopback."""
    with open_pages_world(tmp_path) as world:
        yield world


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def width(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def _browser(world: PagesWorld, who: str, width: int) -> Any:
    """Headless Chromium signed in as ``who`` (its bearer token on every request) at ``width`` px."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    # A headless window is at least 500 px wide: emulate the phone's viewport instead.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600})
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                           {"headers": {"Authorization": f"Bearer {world.tokens[who]}"}})
    return driver


@pytest.fixture
def browse(world: PagesWorld, width: int) -> Iterator[Any]:
    """Open a browser as a user: ``browse("admin")``; every browser is closed after the test."""
    drivers: list[Any] = []

    def open_as(who: str) -> Any:
        drivers.append(_browser(world, who, width))
        return drivers[-1]

    yield open_as
    for driver in drivers:
        driver.quit()


def _notice(driver: Any, role: str = "status") -> Any:
    """The notice (``role``: status, or alert for a refusal) of the page a form's submit leads
    to, once that page has loaded: a click returns before the browser has followed the answer
    on a loaded machine."""
    from selenium.webdriver.support.wait import WebDriverWait

    return WebDriverWait(driver, 15).until(lambda d: d.find_element(By.CSS_SELECTOR, f"[role={role}]"))


def _fits(driver: Any) -> None:
    """Nothing makes the page scroll sideways at this width."""
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the window"


def test_the_status_page_after_a_sync_with_failures(world, browse, width):
    """The cards, the chart and the runs show; the skip link is the first tab stop and works."""
    world.failing_sync()
    driver = browse("admin")
    driver.get(world.base_url + PAGES)
    assert driver.find_element(By.TAG_NAME, "h1").text == "Status"
    cards = {c.find_element(By.TAG_NAME, "h2").text: c.text for c in driver.find_elements(By.CSS_SELECTOR, ".card")}
    assert "Connected" in cards["Connection"]
    assert "Failing: 1" in cards["Records"]
    assert not cards["Errors, last 24 h"].startswith("Errors, last 24 h\n0")
    chart = driver.find_element(By.CSS_SELECTOR, ".chart svg")
    assert chart.is_displayed() and chart.size["width"] > 200
    assert chart.size["width"] <= width
    _fits(driver)
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    active = driver.switch_to.active_element
    assert active.text == "Skip to content" and active.is_displayed(), "the skip link shows when focused"
    active.send_keys(Keys.ENTER)
    assert driver.switch_to.active_element.get_attribute("id") == "main"


def test_a_conflict_resolved_by_clicking(world, browse, width):
    """Clicking "Use the HubSpot value" resolves the conflict on both sides and the page says who decided."""
    deal, conflict = world.held_conflict()
    driver = browse("admin")
    driver.get(f"{world.base_url}{PAGES}/conflicts")
    _fits(driver)
    article = driver.find_element(By.CSS_SELECTOR, f"article[aria-labelledby=conflict-{conflict.id}]")
    assert "Host name" in article.text and "HubSpot name" in article.text
    article.find_element(By.XPATH, ".//button[.='Use the HubSpot value']").click()
    notice = _notice(driver)
    assert f"Conflict {conflict.id} resolved" in notice.text and "admin@acme.example" in notice.text
    assert world.order_for(deal).name == "HubSpot name"
    assert world.hubspot.get_object("deals", deal)["dealname"] == "HubSpot name"
    _fits(driver)


def test_a_typed_value_resolves_a_conflict_with_the_keyboard_alone(world, browse, width):
    """The typed-value field has a label; typing and pressing Enter settles the conflict."""
    deal, conflict = world.held_conflict()
    driver = browse("admin")
    driver.get(f"{world.base_url}{PAGES}/conflicts")
    field = driver.find_element(By.ID, f"value-{conflict.id}")
    label = driver.find_element(By.CSS_SELECTOR, f"label[for=value-{conflict.id}]")
    assert label.text == "Or type the value for name"
    field.send_keys("Agreed name", Keys.ENTER)
    assert "resolved" in _notice(driver).text
    assert world.order_for(deal).name == "Agreed name"


def test_a_user_without_permission_sees_a_refusal_page_and_changes_nothing(world, browse, width):
    """A stranger is shown a refusal page; a viewer's buttons are disabled and clicking changes nothing."""
    _deal, conflict = world.held_conflict()
    stranger = browse("stranger")
    stranger.get(f"{world.base_url}{PAGES}/conflicts")
    assert stranger.find_element(By.TAG_NAME, "h1").text == "Not allowed"
    viewer = browse("viewer")
    viewer.get(f"{world.base_url}{PAGES}/conflicts")
    button = viewer.find_element(By.XPATH, "//button[.='Use the HubSpot value']")
    assert not button.is_enabled()
    assert {c.id for c in world.runtime.list_conflicts(world.tenant)} == {conflict.id}
