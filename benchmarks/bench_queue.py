"""Queue throughput: enqueue, and claim+complete by N worker processes, on SQLite and PostgreSQL.

Run: ``python benchmarks/bench_queue.py [--jobs 1000] [--workers 4] [--pairs 5]
[--store-url URL] [--skip-workers]``. Without ``--store-url`` it runs on a SQLite file in a
temporary directory and on PostgreSQL (127.0.0.1:5432, database ``test``, in a schema of its
own that is dropped afterwards); PostgreSQL is skipped when it does not answer. With
``--store-url`` it runs on that store only (its queue must be empty).

Figures printed for each store, each with ``os.getloadavg()`` beside it (the machine may be
shared; a loaded machine makes every figure worse, and ratios noisier):

- enqueue jobs/s, and claim+complete jobs/s with ``--workers`` processes (median of 3 runs);
- the Python overhead of one claim+complete, median and range of 5 runs of ``--jobs`` jobs
  each, claimed one at a time in this process. *Method*: the dialect's driver entry points
  (``do_execute``, ``do_execute_no_params``, ``do_executemany``, ``do_commit``,
  ``do_rollback``, ``do_ping``, ``do_begin``) are wrapped with timers; everything else in
  the loop is the overhead: our code and SQLAlchemy's statement handling, connection pool,
  events and result processing. Driver time includes the SQL itself (SQLite runs it
  in-process) and the round trips (PostgreSQL), so the overhead does not depend on how fast
  the database is. Two variants: *wall* (elapsed minus time in the driver) and *CPU* (this
  thread's CPU time minus its CPU time in the driver), the latter less disturbed by other
  processes. SQLite's ``BEGIN IMMEDIATE`` goes to the driver directly and counts as overhead
  (a few microseconds), so the figure errs high. Also printed: the Python function calls per
  job (counted with cProfile, so independent of load);
- jobs/s with 1 and 2 worker processes, from ``--pairs`` alternating pairs (1 then 2, then 2
  then 1, ...), each pair's 2-vs-1 ratio with the load, and the median ratio; and jobs/s
  with 4 processes (median of 3). Each run drains ``--jobs`` no-op jobs with
  :class:`QueueRunner` (a lease keeper per job included, as in production); the time runs
  from the start signal, given once every worker has opened the store, until the last
  worker found the queue empty.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _pg import pg_schema  # benchmarks/ is on the path when a script in it runs

_DRIVER_CALLS = ("do_execute", "do_execute_no_params", "do_executemany", "do_commit",
                 "do_rollback", "do_ping", "do_begin")


def _load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _worker(url: str, ready: Any, start: Any, finished: Any) -> None:
    from ambac_hubspot_plugin.store import QueueRunner, open_store

    store = open_store(url)
    ready.wait()
    start.wait()
    QueueRunner(store, {"noop": lambda job: None}).drain()
    finished.put(time.monotonic())  # system-wide clock: comparable across processes
    store.close()


def _urls(store_url: str | None) -> Iterator[tuple[str, str]]:
    if store_url is not None:
        yield store_url.split(":", 1)[0].split("+", 1)[0], store_url
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield "sqlite", f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
    with pg_schema("bench") as url:
        if url is None:
            print("postgresql: skipped (127.0.0.1:5432 does not answer)")
            return
        yield "postgresql", url


def _fill(store: Any, jobs: int, *, dedupe: bool = False) -> float:
    """Queue ``jobs`` no-op jobs; returns enqueues per second."""
    began = time.perf_counter()
    for n in range(jobs):
        store.enqueue("1", "noop", {"n": n}, dedupe_key=f"k{n}" if dedupe else None)
    return jobs / (time.perf_counter() - began)


def drain_rate(url: str, jobs: int, workers: int) -> float:
    """Jobs per second that ``workers`` processes drain ``jobs`` queued jobs at."""
    from ambac_hubspot_plugin.store import open_store

    store = open_store(url)
    _fill(store, jobs)
    ctx = multiprocessing.get_context("spawn")
    ready, start, finished = ctx.Barrier(workers + 1), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, ready, start, finished))
             for _ in range(workers)]
    for proc in procs:
        proc.start()
    ready.wait(timeout=120)
    began = time.monotonic()
    start.set()
    ended: float = max(finished.get(timeout=600) for _ in procs)
    for proc in procs:
        proc.join()
    left = store.depths()
    store.close()
    if left:
        raise RuntimeError(f"jobs left behind: {left}")
    return jobs / (ended - began)


def _timed_driver(store: Any) -> Callable[[], tuple[float, float]]:
    """Wrap the dialect's driver calls with timers; returns a reader of (wall, cpu) spent."""
    dialect = store.engine.dialect
    spent = [0.0, 0.0]

    def wrap(call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - wall
                spent[1] += time.thread_time() - cpu
        return timed

    for name in _DRIVER_CALLS:
        setattr(dialect, name, wrap(getattr(dialect, name)))
    return lambda: (spent[0], spent[1])


def _claim_complete(store: Any, jobs: int) -> None:
    for _ in range(jobs):
        for job in store.claim("bench", limit=1):
            store.complete(job.id, "bench")


def overhead(url: str, jobs: int, runs: int = 5) -> dict[str, list[float]]:
    """Per-job milliseconds of claim+complete: wall, driver wall, and overhead (wall and CPU)."""
    from ambac_hubspot_plugin.store import open_store

    store = open_store(url)
    spent = _timed_driver(store)
    figures: dict[str, list[float]] = {"wall": [], "driver": [], "overhead": [],
                                       "overhead_cpu": []}
    try:
        _fill(store, 20)
        _claim_complete(store, 20)  # warm the pool, the compiled cache, prepared statements
        for _ in range(runs):
            _fill(store, jobs)
            before = spent()
            wall, cpu = time.perf_counter(), time.thread_time()
            _claim_complete(store, jobs)
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            driver_wall, driver_cpu = (a - b for a, b in zip(spent(), before, strict=True))
            figures["wall"].append(wall / jobs * 1000)
            figures["driver"].append(driver_wall / jobs * 1000)
            figures["overhead"].append((wall - driver_wall) / jobs * 1000)
            figures["overhead_cpu"].append((cpu - driver_cpu) / jobs * 1000)
        if store.depths():
            raise RuntimeError("jobs left behind")
    finally:
        store.close()
    return figures


def calls_per_job(url: str, jobs: int = 200) -> float:
    """Python function calls per claim+complete, counted by cProfile (load-independent)."""
    from ambac_hubspot_plugin.store import open_store

    store = open_store(url)
    try:
        _fill(store, jobs + 20)
        _claim_complete(store, 20)
        profile = cProfile.Profile()
        profile.runcall(_claim_complete, store, jobs)
        calls: int = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]  # set by Stats, not in typeshed
        return calls / jobs
    finally:
        store.close()


def _spread(values: list[float], fmt: str = "{:.3f}") -> str:
    middle = fmt.format(statistics.median(values))
    return f"{middle} (range {fmt.format(min(values))}-{fmt.format(max(values))}, {len(values)} runs)"


def bench(name: str, url: str, jobs: int, workers: int, pairs: int, skip_workers: bool) -> None:
    from ambac_hubspot_plugin.store import open_store

    store = open_store(url)
    enqueue = _fill(store, jobs, dedupe=True)
    _claim_complete(store, jobs)  # the runs below start from an empty queue
    store.close()
    if not skip_workers:
        rates = [drain_rate(url, jobs, workers) for _ in range(3)]
        print(f"{name}: enqueue {enqueue:,.0f} jobs/s; claim+complete with {workers} "
              f"processes {statistics.median(rates):,.0f} jobs/s "
              f"(range {min(rates):,.0f}-{max(rates):,.0f}, 3 runs; {_load()})")
    else:
        print(f"{name}: enqueue {enqueue:,.0f} jobs/s ({_load()})")
    figures = overhead(url, jobs)
    print(f"{name}: Python overhead of claim+complete {_spread(figures['overhead'])} ms/job "
          f"wall, {_spread(figures['overhead_cpu'])} ms/job CPU; elapsed "
          f"{statistics.median(figures['wall']):.3f} ms/job of which driver "
          f"{statistics.median(figures['driver']):.3f} ({_load()})")
    print(f"{name}: Python function calls per claim+complete {calls_per_job(url):,.0f}")
    if skip_workers:
        return
    one: list[float] = []
    two: list[float] = []
    for pair in range(pairs):
        order = (1, 2) if pair % 2 == 0 else (2, 1)
        got = {n: drain_rate(url, jobs, n) for n in order}
        one.append(got[1])
        two.append(got[2])
        print(f"{name}:   pair {pair + 1} ({order[0]} then {order[1]}): 1 worker {got[1]:,.0f} "
              f"jobs/s, 2 workers {got[2]:,.0f} jobs/s, ratio {got[2] / got[1]:.2f}x ({_load()})")
    ratios = [b / a for a, b in zip(one, two, strict=True)]
    four = [drain_rate(url, jobs, 4) for _ in range(3)]
    print(f"{name}: jobs/s with 1 worker {_spread(one, '{:,.0f}')}, 2 workers "
          f"{_spread(two, '{:,.0f}')}, 4 workers {_spread(four, '{:,.0f}')} ({_load()})")
    print(f"{name}: 2 vs 1 workers {_spread(ratios, '{:.2f}')}x, median of alternating pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per run")
    parser.add_argument("--workers", type=int, default=4,
                        help="processes of the first throughput figure")
    parser.add_argument("--pairs", type=int, default=5, help="alternating 1-vs-2-worker pairs")
    parser.add_argument("--store-url", help="run on this store only (default: SQLite and PostgreSQL)")
    parser.add_argument("--skip-workers", action="store_true",
                        help="only the in-process overhead figures (fast)")
    args = parser.parse_args()
    for name, url in _urls(args.store_url):
        bench(name, url, args.jobs, args.workers, args.pairs, args.skip_workers)


if __name__ == "__main__":
    main()
