"""The webhook receiver's group commit: a delivery the database refuses fails alone, while a
store that cannot be written at all fails every queued delivery after one wait, not one per
halving (HubSpot gives up on an answer after 5 s, and each wait may be the busy timeout)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
import sqlalchemy as sa

from ambac_hubspot_plugin.store._group_commit import GroupCommit, Received


def _item(n: int) -> Received:
    return Received("t", "1", str(n).encode(), events=1, latest_ms=0, job_kind="split", attempts=1)


def _submit_all(commit: GroupCommit, items: Sequence[Received], first_in: threading.Event,
                ) -> dict[bytes, object]:
    """Submit ``items[0]``, then, once its write has begun, the rest at once; each one's
    result or error."""
    outcomes: dict[bytes, object] = {}

    def submit(item: Received) -> None:
        try:
            outcomes[item.body] = commit.submit(item)
        except Exception as exc:
            outcomes[item.body] = exc

    threads = [threading.Thread(target=submit, args=(items[0],))]
    threads[0].start()
    assert first_in.wait(10)
    threads += [threading.Thread(target=submit, args=(item,)) for item in items[1:]]
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(10)
    return outcomes


def test_a_store_that_cannot_be_written_fails_the_queued_group_in_one_write() -> None:
    writes: list[int] = []
    first_in = threading.Event()
    items = [_item(n) for n in range(8)]

    def write(group: Sequence[Received]) -> list[int]:
        writes.append(len(group))
        first_in.set()
        deadline = time.monotonic() + 10
        while len(commit._queue) < len(items) and time.monotonic() < deadline:
            time.sleep(0.005)  # the others queue behind the first write meanwhile, however late
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    commit = GroupCommit(write)
    outcomes = _submit_all(commit, items, first_in)
    assert all(isinstance(outcomes[item.body], sa.exc.OperationalError) for item in items)
    assert writes == [1, 7]  # halving would have tried 13 times for the 7


@pytest.mark.parametrize("refusal", [sa.exc.IntegrityError, sa.exc.DataError])
def test_a_delivery_the_database_refuses_fails_alone_and_the_others_commit(refusal: type[sa.exc.DBAPIError]) -> None:
    first_in = threading.Event()

    def write(group: Sequence[Received]) -> list[int]:
        first_in.set()
        if len(group) == 1 and group[0].body == b"0":
            threading.Event().wait(0.2)  # the others queue behind the first write meanwhile
        if any(item.body == b"3" for item in group):
            raise refusal("INSERT", {}, Exception("value refused"))
        return [int(item.body) * 10 for item in group]

    items = [_item(n) for n in range(6)]
    outcomes = _submit_all(GroupCommit(write), items, first_in)
    assert isinstance(outcomes[b"3"], refusal)
    assert {body: result for body, result in outcomes.items() if body != b"3"} == {
        b"0": 0, b"1": 10, b"2": 20, b"4": 40, b"5": 50}
