"""The sync history page over HTTP against the reference host on loopback: runs with their
counts, paged and filtered; a sync, a dry run and a backfill started from the page; refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ambac_hubspot_plugin._pages import _history
from ambac_hubspot_plugin.store import RunStatus

from ._pages_world import PAGES, Answer, PagesWorld, open_pages_world
from ._pages_world import visible_text as _text

_INCREMENTAL_CHECKPOINT = "deals.modified_since"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PagesWorld]:
    """The pages' world, served over loopback."""
    with open_pages_world(tmp_path) as world:
        yield world



def _start(world: PagesWorld, who: str = "admin", **form: str) -> Answer:
    return world.post("/history/sync", who, {"csrf_token": world.csrf("admin", "/history"), **form})


def _follow(world: PagesWorld, answer: Answer) -> Answer:
    """The page a 303 sends the browser to."""
    assert answer.status == 303, _text(answer.text)
    location = answer.headers["location"]
    assert location.startswith(PAGES + "/history?result=")
    return world.get(location[len(PAGES):].split("#")[0], "admin")


def _notice(answer: Answer) -> str:
    found = re.search(r'<div class="(?:notice|error)" role="status">(.*?)</div>', answer.text, flags=re.S)
    assert found, "the page shows a notice"
    return _text(found.group(1))


def _runs(world: PagesWorld) -> list[Any]:
    return list(world.store.recent_runs(world.tenant, limit=500))


def _deals(world: PagesWorld) -> list[str]:
    return [world.deal(dealname=name) for name in ("Good one", "Good two", "x" * 300)]


def test_the_runs_are_listed_with_their_counts_after_a_sync_with_a_failure(world):
    """A viewer sees each run's kind, outcome, counts and duration, and a disabled start form."""
    world.failing_sync()
    world.clock.tick()
    world.sync()
    answer = world.get("/history", "viewer")
    assert answer.status == 200
    text = _text(answer.text)
    assert re.search(r"incremental succeeded 2 0 \d+ 1 [\d.]+ s", text), "the failing sync's counts"
    assert text.index("incremental succeeded 0 0") < text.index("incremental succeeded 2 0"), "newest first"
    assert "starting a sync needs the manage_integrations permission" in text
    assert re.search(r'<button type="submit" name="mode" value="sync" disabled>Sync now</button>', answer.text)
    assert 'aria-current="page">Sync history<' in answer.text


def test_a_sync_started_from_the_page_runs_once_and_shows_its_counts(world):
    """The POST runs the sync and answers 303; the page shows the counts; a reload starts nothing."""
    good, _other, bad = _deals(world)
    answer = _start(world, mode="sync")
    (run,) = _runs(world)
    assert (run.kind, run.created, run.failed) == ("incremental", 2, 1)
    page = _follow(world, answer)
    assert _notice(page).startswith(f"Sync finished (run {run.id}): 2 created, 0 updated, 0 unchanged, "
                                    "0 skipped, 1 failed. The failed deals are in the log.")
    assert world.order_for(good) is not None and world.order_for(bad) is None
    assert _follow(world, answer).text.count("Sync finished") == 1
    assert len(_runs(world)) == 1, "showing the result again ran nothing"


def test_a_dry_run_from_the_page_changes_nothing(world):
    """A dry run shows what would happen; no order, run, link, checkpoint or HubSpot change follows."""
    deals = _deals(world)
    before = [world.hubspot.get_object("deals", d) for d in deals]
    portal = str(world.hubspot.portal_id)
    page = _follow(world, _start(world, mode="dry_run"))
    assert _notice(page).startswith("Dry run finished: 2 would be created, 0 would be updated, "
                                    "0 would be unchanged, 0 would be skipped, 1 would be failed. "
                                    "Nothing was written.")
    assert world.services.list_orders() == []
    assert _runs(world) == []
    assert world.store.get_links_by_hubspot(world.tenant, portal, "deal", deals) == {}
    assert world.store.get_checkpoint(world.tenant, portal, _INCREMENTAL_CHECKPOINT) is None
    assert [world.hubspot.get_object("deals", d) for d in deals] == before
    assert world.sync().created == 2, "the real sync still finds every deal"


def test_a_backfill_from_the_page_is_recorded_as_one(world):
    """Backfill ticked, with a start date, runs a backfill; the kind filter then shows only it."""
    _deals(world)
    world.sync()
    world.clock.tick()
    page = _follow(world, _start(world, mode="sync", backfill="on", since="2000-01-31"))
    assert _notice(page).startswith("Sync (backfill) finished")
    assert [r.kind for r in _runs(world)] == ["backfill", "incremental"]
    text = _text(world.get("/history?kind=backfill", "viewer").text)
    assert "backfill succeeded" in text and "incremental succeeded" not in text


def test_a_second_start_while_a_sync_runs_is_refused_and_says_so(world):
    """With a run going (the worker's), the page starts nothing and says which run is going."""
    _deals(world)
    going = world.store.start_run(world.tenant, "incremental", owner="worker-1")
    assert f"A sync is running now (run {going.id}, incremental" in _text(world.get("/history", "admin").text)
    page = _follow(world, _start(world, mode="sync"))
    assert _notice(page).startswith(f"Sync not started: a sync is already running (run {going.id}).")
    assert [r.id for r in _runs(world)] == [going.id]
    assert world.services.list_orders() == []


def test_a_sync_past_the_time_bound_stops_and_is_handed_to_the_worker(world, monkeypatch):
    """Past the bound the run stops between deals, says so, and an incremental sync is queued."""
    _deals(world)
    monkeypatch.setattr(_history, "BOUND_SECONDS", 0.0)
    page = _follow(world, _start(world, mode="sync"))
    assert "stopped after 0 s to keep this page responsive: 1 created" in _notice(page)
    assert "The worker goes on from there (queued)." in _notice(page)
    (run,) = _runs(world)
    assert run.status is RunStatus.FAILED and "PageTimeBound" in (run.error or "")
    assert sum(n for (state, kind), n in world.store.depths(world.tenant).items()
               if str(state) == "pending" and kind == "sync.incremental") == 1


def test_older_runs_are_reached_by_the_cursor(world):
    """Fifty runs a page, newest first; "Older runs" shows the rest, "Newest runs" goes back."""
    ids = []
    for _ in range(53):
        world.clock.tick()
        run = world.store.start_run(world.tenant, "incremental")
        ids.append(world.store.finish_run(run.id, RunStatus.SUCCEEDED, created=1).id)
    first = world.get("/history", "viewer")
    assert first.text.count("<td>incremental</td>") == 50
    older = re.search(r'<a href="([^"]+)">Older runs</a>', first.text)
    assert older and older.group(1) == f"{PAGES}/history?before={ids[3]}"
    second = world.get(older.group(1)[len(PAGES):], "viewer")
    assert second.status == 200 and second.text.count("<td>incremental</td>") == 3
    assert ">Older runs</a>" not in second.text and f'href="{PAGES}/history">Newest runs' in second.text


@pytest.mark.parametrize(("query", "field"), [
    ("?kind=%3Cscript%3E", "kind"), ("?kind=a%00b", "kind"), ("?kind=" + "k" * 300, "kind"),
    ("?before=abc", "before"), ("?before=-1", "before"), ("?before=" + "9" * 30, "before"),
    ("?before=%EF%BC%91", "before"),
])
def test_malformed_query_values_are_refused_beside_their_field(world, query, field):
    """A bad filter or cursor gives 400 with the reason, the newest runs and nothing unescaped."""
    world.failing_sync()
    answer = world.get("/history" + query, "viewer")
    assert answer.status == 400
    assert "<script>" not in answer.text
    if field == "kind":
        assert 'id="kind-error"' in answer.text and 'aria-invalid="true"' in answer.text
    else:
        assert "That link to older runs is broken" in _text(answer.text)
    assert "incremental succeeded 2 0" in _text(answer.text)


def test_an_unknown_result_shows_no_notice(world):
    """A made-up or another user's result id shows the page without a notice."""
    _start(world, mode="dry_run")
    for query in ("?result=nope", "?result=%3Cscript%3E", "?result="):
        answer = world.get("/history" + query, "admin")
        assert answer.status == 200 and 'role="status"' not in answer.text
    theirs = _start(world, mode="dry_run").headers["location"][len(PAGES):].split("#")[0]
    assert 'role="status"' not in world.get(theirs, "other_admin").text


@pytest.mark.parametrize(("form", "said"), [
    ({"mode": "everything"}, "Choose Dry run or Sync now."),
    ({}, "Choose Dry run or Sync now."),
    ({"mode": "sync", "since": "2026-01-01"}, "A start date goes with a backfill"),
    ({"mode": "sync", "backfill": "on", "since": "31/01/2026"}, "Give the date as YYYY-MM-DD"),
])
def test_a_malformed_form_is_refused_beside_the_field_and_runs_nothing(world, form, said):
    """A bad mode or date answers 400 with the reason on the page; no sync runs."""
    _deals(world)
    answer = _start(world, **form)
    assert answer.status == 400 and said in _text(answer.text)
    assert _runs(world) == [] and world.services.list_orders() == []


def test_a_viewer_post_is_refused_and_runs_nothing(world):
    """A viewer holding an admin's token is refused by permission before anything runs."""
    _deals(world)
    assert world.csrf("viewer", "/history") == ""
    answer = world.post("/history/sync", "viewer", {"csrf_token": world.csrf("admin", "/history"), "mode": "sync"})
    assert answer.status == 403 and "manage_integrations" in _text(answer.text)
    assert _runs(world) == [] and world.services.list_orders() == []


def test_a_forged_or_missing_csrf_token_is_refused_and_runs_nothing(world):
    """Without a valid token (missing, forged, another user's) nothing runs."""
    _deals(world)
    window, _, mac = world.csrf("admin", "/history").partition(".")
    for token in (None, f"{window}.{'0' * len(mac)}", "not-a-token", world.csrf("other_admin", "/history")):
        form = {"mode": "sync"} if token is None else {"mode": "sync", "csrf_token": token}
        answer = world.post("/history/sync", "admin", form)
        assert answer.status == 403 and "Nothing was changed" in _text(answer.text)
    assert _runs(world) == [] and world.services.list_orders() == []


def test_a_stranger_is_refused_the_page_and_the_action(world):
    """Without view_integrations: 403 for the page and for a POST; nothing runs."""
    _deals(world)
    assert world.get("/history", "stranger").status == 403
    token = world.csrf("admin", "/history")
    assert world.post("/history/sync", "stranger", {"csrf_token": token, "mode": "sync"}).status == 403
    assert world.post("/history/sync", None, {"mode": "sync"}).status == 401
    assert _runs(world) == [] and world.services.list_orders() == []


def test_a_sync_hubspot_refuses_says_why_and_shows_no_secret(world):
    """HubSpot failing mid-sync (echoing the token) gives a notice with the reason and no token."""
    _deals(world)
    world.hubspot.faults.fail_next(100, status=401, echo_request=True)
    page = _follow(world, _start(world, mode="sync"))
    assert _notice(page).startswith("Sync stopped:")
    assert "401" in _notice(page)
    assert world.hubspot.access_token not in page.text
    assert world.services.list_orders() == []
