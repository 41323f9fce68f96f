"""The activity page over HTTP against the reference host on loopback: the log filtered and
paged, the known errors' fixes (the troubleshooting texts), dead letters replayed; refusals."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ambac_hubspot_plugin._pages._fixes import ERROR_FIXES, FIXES, fix_for
from ambac_hubspot_plugin.store import JobState, LogLevel

from ._pages_world import PAGES, PagesWorld, open_pages_world
from ._pages_world import visible_text as _text

_DOCS = Path(__file__).parent.parent / "docs" / "troubleshooting.md"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PagesWorld]:
    """The pages' world, served over loopback."""
    with open_pages_world(tmp_path) as world:
        yield world



def _dead(world: PagesWorld, deal: str = "1") -> int:
    """A job that failed its only attempt: a dead letter."""
    job_id = world.store.enqueue(world.tenant, "inbound.deal", {"deal_id": deal}, max_attempts=1)
    (job,) = world.store.claim("test-worker", kinds=["inbound.deal"])
    world.store.fail(job.id, "test-worker", f"mapping failed for deal {deal}")
    return int(job_id)


def test_every_fix_is_the_troubleshooting_text():
    """Each known error, its meaning and its fix are a row of the Alerts table of docs/troubleshooting.md."""
    rows = {line for line in _DOCS.read_text().splitlines() if line.startswith("| ")}
    for alert, meaning, fix in FIXES:
        assert f"| {alert} | {meaning} | {fix} |" in rows, alert
    assert len(FIXES) == len(rows) - 1  # every row but the header


def _sections() -> dict[str, str]:
    """docs/troubleshooting.md's text under each ``##`` heading, whitespace made single spaces."""
    sections: dict[str, str] = {}
    heading = ""
    for line in _DOCS.read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        else:
            sections[heading] = sections.get(heading, "") + " " + line.strip()
    return {k: " ".join(v.split()) for k, v in sections.items()}


def test_every_error_fix_is_the_text_of_its_troubleshooting_section():
    """Each known error's fix is word for word what its section of docs/troubleshooting.md says."""
    sections = _sections()
    for _words, section, fix in ERROR_FIXES:
        assert section in sections, section
        assert fix in sections[section], (section, fix)


@pytest.mark.parametrize(("what", "message", "section"), [
    ("sync.incremental", "incremental sync stopped: HubSpot refused the credentials: expired (HTTP 401)",
     "Check `token`"),
    ("outbound.push", "HubSpot answered HTTP 403: the token lacks crm.objects.deals.write", "Check `scopes`"),
    ("sync.incremental", "incremental sync stopped: could not talk to HubSpot at https://x: ConnectError",
     "Check `token`"),
    ("inbound.deal", "deal 7: budget_text='abc' must be a plain number", "Fields not mapping"),
    ("inbound.deal", "deal 8: the deal has no associated company", "Company not found"),
    ("inbound.deal", "deal 9: dealname is 260 characters; the host allows 200: shorten it", "Fields not mapping"),
])
def test_a_known_error_in_the_log_gets_its_fix(what, message, section):
    """A warning or error naming a known failure is matched to its troubleshooting section."""
    assert fix_for({"level": "error", "what": what, "message": message})[0] == section
    assert fix_for({"level": "info", "what": what, "message": message}) is None


def test_an_error_nobody_knows_gets_no_made_up_fix():
    """A warning that names no known failure shows no fix rather than a wrong one."""
    assert fix_for({"level": "warning", "what": "inbound.contact", "message": "two contacts share x@y.z"}) is None


def test_the_page_shows_the_log_newest_first_with_the_fixes(world):
    """The log's entries show newest first with a count, and every fix is on the page."""
    world.store.log(world.tenant, LogLevel.INFO, "sync.run", "first entry")
    world.store.log(world.tenant, LogLevel.ERROR, "inbound.deal", "second entry", record="deal:7")
    answer = world.get("/activity", "viewer")
    text = _text(answer.text)
    assert answer.status == 200
    assert text.index("second entry") < text.index("first entry")
    assert re.search(r"Showing \d+ log entries, newest first", text)
    for _alert, _meaning, fix in FIXES:
        assert fix in html.unescape(text)
    world.store.log(world.tenant, LogLevel.ERROR, "sync.incremental",
                    "incremental sync stopped: HubSpot refused the credentials: revoked (HTTP 401)")
    text = html.unescape(_text(world.get("/activity", "viewer").text))
    assert "paste it in `credentials.access_token`" in text and "(Troubleshooting: Check `token`)" in text


def test_filters_by_level_kind_and_record_are_kept_in_the_form(world):
    """Level, kind and record narrow the log and stay chosen in the form."""
    world.store.log(world.tenant, LogLevel.INFO, "sync.run", "quiet entry")
    world.store.log(world.tenant, LogLevel.ERROR, "inbound.deal", "loud entry", record="deal:7")
    world.store.log(world.tenant, LogLevel.ERROR, "outbound.order", "other loud entry", record="order:9")
    text = _text(world.get("/activity?level=warning", "viewer").text)
    assert "loud entry" in text and "quiet entry" not in text
    answer = world.get("/activity?what=inbound.deal", "viewer")
    assert "loud entry" in _text(answer.text) and "other loud entry" not in _text(answer.text)
    assert 'value="inbound.deal"' in answer.text
    answer = world.get("/activity?record=order%3A9&level=error", "viewer")
    assert "other loud entry" in _text(answer.text) and "quiet entry" not in _text(answer.text)
    assert '<option value="error" selected>' in answer.text


def test_older_entries_are_paged_by_a_cursor(world):
    """Past a page of entries a link shows the older ones, and they are not the same."""
    for n in range(60):
        world.store.log(world.tenant, LogLevel.INFO, "sync.run", f"entry number {n:03d}")
    first = world.get("/activity", "viewer")
    assert "entry number 059" in first.text and "entry number 000" not in first.text
    assert "Showing 50 log entries" in _text(first.text)
    found = re.search(r'href="' + re.escape(PAGES) + r'/activity\?before=(\d+)"', first.text)
    assert found, "the page links to older entries"
    older = world.get(f"/activity?before={found.group(1)}", "viewer")
    assert older.status == 200 and "entry number 000" in older.text and "entry number 059" not in older.text


@pytest.mark.parametrize("query", ["level=loud", "before=abc", "before=-1", "what=" + "x" * 500,
                                   "record=%00bad", "before=99999999999999999999999"])
def test_malformed_query_values_answer_400_beside_the_field(world, query):
    """A bad filter value answers 400 with a message on the page, never a 500."""
    answer = world.get(f"/activity?{query}", "viewer")
    assert answer.status == 400, query
    assert 'class="bad"' in answer.text or 'role="alert"' in answer.text


def test_a_dead_letter_is_replayed_and_the_page_says_so(world):
    """Replay puts the job back in the queue and the page after the 303 names it."""
    job_id = _dead(world)
    assert "mapping failed for deal 1" in _text(world.get("/activity", "viewer").text)
    token = world.csrf("admin", "/activity")
    answer = world.post(f"/activity/dead-letters/{job_id}/replay", "admin", {"csrf_token": token})
    assert answer.status == 303
    assert world.store.get_job(job_id).state == JobState.PENDING
    after = world.get(answer.headers["location"][len(PAGES):].split("#")[0], "admin")
    assert f"Job {job_id} replayed" in _text(after.text)
    again = world.post(f"/activity/dead-letters/{job_id}/replay", "admin", {"csrf_token": token})
    assert again.status == 400 and "Nothing was replayed" in _text(again.text)


def test_replay_all_replays_every_dead_letter_and_counts_them(world):
    """Replay all puts every dead letter back and the notice says how many."""
    jobs = [_dead(world, "1"), _dead(world, "2")]
    answer = world.post("/activity/dead-letters/replay", "admin", {"csrf_token": world.csrf("admin", "/activity")})
    assert answer.status == 303
    assert all(world.store.get_job(j).state == JobState.PENDING for j in jobs)
    after = world.get(answer.headers["location"][len(PAGES):].split("#")[0], "admin")
    assert "2 dead letters replayed" in _text(after.text)


def test_a_forged_csrf_token_replays_nothing(world):
    """A missing, forged or another user's token is refused and the job stays dead."""
    job_id = _dead(world)
    for form in ({}, {"csrf_token": "forged"}, {"csrf_token": world.csrf("other_admin", "/activity")}):
        for path in (f"/activity/dead-letters/{job_id}/replay", "/activity/dead-letters/replay"):
            assert world.post(path, "admin", form).status == 403
    assert world.store.get_job(job_id).state == JobState.DEAD


def test_a_viewer_sees_disabled_buttons_and_cannot_replay(world):
    """A viewer's page has the replay buttons disabled, and a viewer's POST changes nothing."""
    job_id = _dead(world)
    page = world.get("/activity", "viewer")
    assert "needs the manage_integrations permission" in _text(page.text)
    assert re.search(r"<button[^>]*disabled[^>]*>Replay</button>", page.text)
    for path in (f"/activity/dead-letters/{job_id}/replay", "/activity/dead-letters/replay"):
        assert world.post(path, "viewer", {"csrf_token": world.csrf("viewer", "/activity")}).status == 403
    assert world.store.get_job(job_id).state == JobState.DEAD


def test_a_stranger_and_an_anonymous_user_are_refused(world):
    """Without view_integrations (or signed out) neither the page nor a replay is served."""
    job_id = _dead(world)
    assert world.get("/activity", "stranger").status == 403
    assert world.get("/activity", None).status in (401, 403)
    assert world.post(f"/activity/dead-letters/{job_id}/replay", "stranger", {}).status == 403
    assert world.store.get_job(job_id).state == JobState.DEAD


def test_no_secret_shows_even_when_logged(world):
    """A log entry or a dead letter carrying the access token shows it scrubbed."""
    secret = world.hubspot.access_token
    world.store.log(world.tenant, LogLevel.ERROR, "sync.run", f"failed with token {secret}")
    job_id = world.store.enqueue(world.tenant, "inbound.deal", {"deal_id": "3"}, max_attempts=1)
    (job,) = world.store.claim("test-worker", kinds=["inbound.deal"])
    world.store.fail(job.id, "test-worker", f"bad {secret}")
    for who in ("admin", "viewer"):
        page = world.get("/activity", who).text
        assert secret not in page and "failed with token" in page and f">{job_id}<" in page
