"""The sync history page in a real headless Chromium at 375 and 1280 px: a dry run started with
the keyboard, the result shown, nothing written, nothing scrolling sideways."""

from __future__ import annotations

from ._pages_world import PAGES
from .test_admin_pages_browser import By, Keys, _fits, browse, width, world  # noqa: F401  # fixtures by name

_WAIT_SECONDS = 30


def test_a_dry_run_started_by_keyboard_shows_its_counts_and_writes_nothing(world, browse, width):  # noqa: F811  # the imported fixtures
    """The start form's labelled fields and buttons work by keyboard; the dry run's notice follows."""
    from selenium.webdriver.support.wait import WebDriverWait  # here: the import above skips without selenium

    world.failing_sync()
    for name in ("New one", "New two"):
        world.deal(dealname=name)
    orders = len(world.services.list_orders())
    driver = browse("admin")
    driver.get(f"{world.base_url}{PAGES}/history")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Sync history"
    assert driver.find_element(By.CSS_SELECTOR, "label[for=backfill]").is_displayed()
    assert "succeeded" in driver.find_element(By.CSS_SELECTOR, ".table").text
    _fits(driver)
    button = driver.find_element(By.XPATH, "//button[.='Dry run (changes nothing)']")
    assert button.size["height"] >= 44
    button.send_keys(Keys.ENTER)  # a key press does not wait for the page it loads: wait here
    notice = WebDriverWait(driver, _WAIT_SECONDS).until(lambda d: d.find_element(By.CSS_SELECTOR, "[role=status]"))
    assert notice.text.startswith("Dry run finished: 2 would be created") and "Nothing was written" in notice.text
    assert driver.current_url.split("#")[0].startswith(f"{world.base_url}{PAGES}/history?result=")
    assert len(world.services.list_orders()) == orders
    _fits(driver)
