"""Scheduled syncs and reconciliations keep to fixed periods: "every 900 s" is 96 a day however
late the ticks that start them come, and each tenant has its own phase within the period."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin._clock import due_on_schedule
from ambac_hubspot_plugin._reconcile import CHECKPOINT
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from ._clock import ManualClock
from ._world import plugin_settings

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EVERY = timedelta(seconds=900)


def _boundaries(key: str, start: datetime, span: timedelta) -> list[datetime]:
    """The moments from ``start`` over ``span`` at which a task of ``key`` that ran a second
    before becomes due: its periods' starts, found second by second."""
    found = []
    second = timedelta(seconds=1)
    at = start
    while at < start + span:
        if due_on_schedule(at - second, at, EVERY, key):
            found.append(at)
        at += second
    return found


def test_a_task_is_due_once_per_period_however_long_ago_it_ran():
    """Never run: due. Within its period: not due, even 899 s later. In the next period: due,
    even one second after the last run (the period changed), and only once."""
    key = "tenant-1"
    assert due_on_schedule(None, START, EVERY, key)
    (first, second, *_) = _boundaries(key, START, timedelta(hours=1))
    assert second - first == EVERY, "the periods are fixed, one interval apart"
    just_after = first + timedelta(seconds=1)
    assert not due_on_schedule(just_after, first + EVERY - timedelta(seconds=1), EVERY, key)
    assert due_on_schedule(first - timedelta(seconds=1), first, EVERY, key)
    assert due_on_schedule(just_after, second, EVERY, key)
    assert not due_on_schedule(second, second + timedelta(seconds=899), EVERY, key)


def test_tenants_have_their_own_phase_and_it_is_the_same_in_every_process():
    """Many tenants' periods start at different moments (not all on the quarter hour), and a
    tenant's phase does not depend on the process (Python's salted hash() would)."""
    hour = START.replace(minute=0)
    firsts = {key: _boundaries(key, hour, EVERY)[0] for key in ("1", "2", "3", "acme", "globex")}
    assert len(set(firsts.values())) == len(firsts), firsts
    code = ("import sys; from datetime import datetime, timedelta; "
            "from ambac_hubspot_plugin._clock import due_on_schedule; "
            "at = datetime.fromisoformat(sys.argv[1]); s = timedelta(seconds=1); "
            "print(due_on_schedule(at - s, at, timedelta(seconds=900), 'acme'))")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code, firsts["acme"].isoformat()],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert out.strip() == "True"


def test_a_day_of_irregular_ticks_runs_one_sync_and_one_reconciliation_per_period(tmp_path: Path):
    """Ticks come 30 s to 10 min apart for a simulated day: 96 scheduled syncs and 96
    reconciliations run after the first of each, one per 900 s period; counted from the last
    run instead, each would start up to a tick late and about 80 would run."""
    clock = ManualClock(START)
    rng = random.Random(16)
    with Sandbox(rate_limits=RateLimits.unlimited(), clock=clock) as hubspot, \
            ReferenceHost(tmp_path / "host", clock=clock) as host:
        plugin = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME)
        plugin.use_clock(clock)
        tenant = host.create_tenant("Acme")
        host.enable_plugin(tenant, "hubspot", plugin_settings(hubspot, sync_interval_seconds=900))
        runtime = plugin.runtime
        store = runtime.store_for(tenant)
        portal = runtime.tenant(tenant).portal_id
        runtime.tick()
        reconciled = [store.get_checkpoint(tenant, portal, CHECKPOINT).value]
        first = store.recent_runs(tenant, kind="incremental", limit=1)[0].started_at
        end = first + timedelta(days=1)  # (first, end] holds exactly 96 period starts
        while clock() < end:
            clock.advance(min(timedelta(seconds=rng.randint(30, 600)), end - clock()))
            runtime.tick()
            saved = store.get_checkpoint(tenant, portal, CHECKPOINT)
            if saved is not None and saved.value not in reconciled:
                reconciled.append(saved.value)
        runs = sorted(r.started_at for r in store.recent_runs(tenant, kind="incremental", limit=500)
                      if r.started_at > first)
    assert len(runs) == 96, f"{len(runs)} scheduled syncs in a day of 900 s periods"
    assert max(b - a for a, b in itertools.pairwise(runs)) < EVERY + timedelta(seconds=600)
    assert len(reconciled) - 1 == 96, f"{len(reconciled) - 1} reconciliations after the first"
