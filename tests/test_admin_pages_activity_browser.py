"""The activity page in a real headless Chromium at 375 and 1280 px: a dead letter replayed with
the keyboard, the rest replayed by click, the notices shown, nothing scrolling sideways."""

from __future__ import annotations

from ambac_hubspot_plugin.store import JobState, LogLevel

from ._pages_world import PAGES
from .test_admin_pages_activity import _dead
from .test_admin_pages_browser import By, Keys, _fits, browse, width, world  # noqa: F401  # fixtures by name

_WAIT_SECONDS = 30


def test_dead_letters_are_replayed_by_keyboard_and_by_click(world, browse, width):  # noqa: F811  # the imported fixtures
    """One dead letter replayed by Enter on its button, the other by clicking Replay all; each notice follows."""
    from selenium.webdriver.support.wait import WebDriverWait  # here: the import above skips without selenium

    world.store.log(world.tenant, LogLevel.ERROR, "inbound.deal", "a long message " * 20, record="deal:1")
    first, second = _dead(world, "1"), _dead(world, "2")
    driver = browse("admin")
    driver.get(f"{world.base_url}{PAGES}/activity")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Activity and errors"
    assert driver.find_element(By.CSS_SELECTOR, "label[for=level]").is_displayed()
    _fits(driver)
    button = driver.find_element(By.CSS_SELECTOR, f"button[aria-label='Replay job {first}']")
    assert button.size["height"] >= 44
    button.send_keys(Keys.ENTER)  # a key press does not wait for the page it loads: wait here
    notice = WebDriverWait(driver, _WAIT_SECONDS).until(lambda d: d.find_element(By.CSS_SELECTOR, "[role=status]"))
    assert notice.text == f"Job {first} replayed: it is back in the queue."
    assert world.store.get_job(first).state == JobState.PENDING
    assert world.store.get_job(second).state == JobState.DEAD
    _fits(driver)
    driver.find_element(By.XPATH, "//button[starts-with(., 'Replay all')]").click()
    notice = WebDriverWait(driver, _WAIT_SECONDS).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "[role=status]") if "replayed_all" in d.current_url else None)
    assert notice.text.startswith("1 dead letter replayed")
    assert world.store.get_job(second).state == JobState.PENDING
    _fits(driver)
