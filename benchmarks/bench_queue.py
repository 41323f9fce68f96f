"""Queue throughput: enqueue, and claim+complete by N worker processes, on SQLite and PostgreSQL.

Run: ``python benchmarks/bench_queue.py [--jobs 2000] [--workers 4]``. Prints jobs per second;
PostgreSQL is skipped when 127.0.0.1:5432 does not answer.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _worker(url: str, start: multiprocessing.synchronize.Event) -> None:
    from ambac_hubspot_plugin.store import QueueRunner, open_store

    store = open_store(url)
    start.wait()
    QueueRunner(store, {"noop": lambda job: None}).drain()
    store.close()


def _urls() -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        yield "sqlite", f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
    except OSError:
        print("postgresql: skipped (127.0.0.1:5432 does not answer)")
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield ("postgresql",
               f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}")
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def bench(name: str, url: str, jobs: int, workers: int) -> None:
    from ambac_hubspot_plugin.store import open_store

    store = open_store(url)
    began = time.perf_counter()
    for n in range(jobs):
        store.enqueue(1, "noop", {"n": n}, dedupe_key=f"k{n}")
    enqueue_s = time.perf_counter() - began
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_worker, args=(url, start)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    time.sleep(2)  # let the workers import and connect; the timing covers draining only
    began = time.perf_counter()
    start.set()
    for proc in procs:
        proc.join()
    drain_s = time.perf_counter() - began
    assert store.depths() == {}, "jobs left behind"
    store.close()
    print(f"{name}: enqueue {jobs / enqueue_s:,.0f} jobs/s; claim+complete with {workers} "
          f"processes {jobs / drain_s:,.0f} jobs/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    for name, url in _urls():
        bench(name, url, args.jobs, args.workers)


if __name__ == "__main__":
    main()
