"""The webhook split's speed with a long history of processed events, against empty tables.

Run: ``python benchmarks/bench_webhook_history.py [--history 1000000] [--pairs 5]
[--deliveries 100] [--store-url sqlite|postgresql|URL]``.

Two stores: one empty, one seeded (with bulk SQL, in seconds) with ``--history`` processed
events of the kind the split stores: random 64-hex dedupe keys, as the sha256 keys are, over
the past 30 days. Each pair then stores ``--deliveries`` deliveries of 100 new events in each
store and times the ``webhook.inbox`` split of them, the two stores taking turns (which goes
first alternates too), so a change of load hits both alike. After each run the events and jobs
it added are deleted again, so every run starts from the same tables. Prints both rates and
the ratio history/empty per pair, their median and range. Target: at least 0.9.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _webhook_bench import fresh_store_url, load, spread, store_name, store_url_option

from ambac_hubspot_plugin._webhooks import INBOX_JOB_KIND, WebhookInboxSplitter
from ambac_hubspot_plugin.store import open_store

TENANT, PORTAL = "1", "62515"
DAY_MS = 86_400_000

_SQLITE_SEED = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO hubspot_webhook_events (tenant_id, portal_id, dedupe_key, event_id,
    subscription_type, object_type, object_id, property_name, occurred_at_ms, payload,
    received_at, processed_at, outcome)
SELECT :tenant, :portal, lower(hex(randomblob(32))), i, 'deal.propertyChange', 'deal',
    CAST(1000000000 + i AS TEXT), 'dealstage', :start + i * :step, :payload,
    '2026-01-01 00:00:00.000000', '2026-01-01 00:00:01.000000', 'applied'
FROM n
"""

_PG_SEED = """
INSERT INTO hubspot_webhook_events (tenant_id, portal_id, dedupe_key, event_id,
    subscription_type, object_type, object_id, property_name, occurred_at_ms, payload,
    received_at, processed_at, outcome)
SELECT :tenant, :portal, md5(random()::text) || md5(random()::text), i, 'deal.propertyChange',
    'deal', (1000000000 + i)::text, 'dealstage', :start + i::bigint * :step, :payload,
    now() - interval '1 day', now() - interval '1 day', 'applied'
FROM generate_series(1, :count) AS i
"""


def _batch(counter: Any, size: int) -> bytes:
    now = int(time.time() * 1000)
    events = []
    for _ in range(size):
        n = next(counter)
        events.append({"eventId": n, "subscriptionId": 1, "portalId": int(PORTAL), "appId": 1,
                       "occurredAt": now, "subscriptionType": "deal.propertyChange",
                       "attemptNumber": 0, "objectId": n, "propertyName": "dealstage",
                       "propertyValue": "closedwon", "changeSource": "CRM_UI"})
    return json.dumps(events, separators=(",", ":")).encode()


def seed(store: Any, count: int) -> float:
    """Add ``count`` processed events to ``store``; the seconds it took."""
    import sqlalchemy as sa

    began = time.perf_counter()
    payload = json.dumps({"portalId": int(PORTAL), "subscriptionType": "deal.propertyChange",
                          "propertyName": "dealstage", "propertyValue": "closedwon"})
    sql = _SQLITE_SEED if store.engine.dialect.name == "sqlite" else _PG_SEED
    start = int(time.time() * 1000) - 30 * DAY_MS
    with store.engine.begin() as conn:
        conn.execute(sa.text(sql), {"count": count, "tenant": TENANT, "portal": PORTAL,
                                    "start": start, "step": 30 * DAY_MS // max(count, 1),
                                    "payload": payload})
    with store.engine.connect() as conn:  # fresh statistics, as autovacuum would have made
        if store.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE hubspot_webhook_events")
    return time.perf_counter() - began


def split_rate(store: Any, counter: Any, deliveries: int) -> float:
    """Store ``deliveries`` deliveries of 100 new events, split them; events/s of the split.
    Then delete what the run added."""
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        floor = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM hubspot_webhook_events")).scalar()
    for _ in range(deliveries):
        store.receive_webhook_batch(TENANT, PORTAL, _batch(counter, 100), events=100,
                                    latest_occurred_ms=int(time.time() * 1000),
                                    job_kind=INBOX_JOB_KIND)
    splitter = WebhookInboxSplitter(lambda _tenant: store, rounds=10**9, pause=0)
    [job] = store.claim("bench", kinds=[INBOX_JOB_KIND])
    began = time.perf_counter()
    splitter.handle_job(job)
    took = time.perf_counter() - began
    store.complete(job.id, "bench")
    with store.engine.begin() as conn:
        added = conn.execute(sa.text("DELETE FROM hubspot_webhook_events WHERE id > :floor"),
                             {"floor": floor}).rowcount
        conn.execute(sa.text("DELETE FROM hubspot_jobs"))
    assert added == deliveries * 100, added
    return deliveries * 100 / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--deliveries", type=int, default=100, help="of 100 events, per run")
    parser.add_argument("--store-url", type=store_url_option, default="sqlite",
                        help="sqlite (temp file), postgresql (db test on 127.0.0.1:5432) or a URL")
    args = parser.parse_args()
    counter = itertools.count(1)
    with ExitStack() as stack:
        empty = open_store(stack.enter_context(fresh_store_url(args.store_url)))
        stack.callback(empty.close)
        full = open_store(stack.enter_context(fresh_store_url(args.store_url)))
        stack.callback(full.close)
        took = seed(full, args.history)
        print(f"split with {args.history:,} processed events in history vs empty tables on "
              f"{store_name(args.store_url)} ({args.deliveries} deliveries x 100 events per run); "
              f"seeded in {took:.1f} s")
        split_rate(empty, counter, 10)  # warm-up: imports, first pages, prepared statements
        split_rate(full, counter, 10)
        ratios, rates_empty, rates_full = [], [], []
        for n in range(args.pairs):
            order = [("empty", empty), ("history", full)]
            if n % 2:
                order.reverse()
            rates = {name: split_rate(store, counter, args.deliveries) for name, store in order}
            rates_empty.append(rates["empty"])
            rates_full.append(rates["history"])
            ratios.append(rates["history"] / rates["empty"])
            print(f"  pair {n + 1}: empty {rates['empty']:,.0f} events/s, history "
                  f"{rates['history']:,.0f} events/s, ratio {ratios[-1]:.2f}; {load()}")
    print(f"  empty:   {spread(rates_empty, unit=' events/s')}")
    print(f"  history: {spread(rates_full, unit=' events/s')}")
    print(f"  ratio history/empty: {spread(ratios, '.2f')} (median of the pairs: "
          f"{statistics.median(ratios):.2f}); {load()}")


if __name__ == "__main__":
    main()
