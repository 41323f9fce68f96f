"""Which search request comes next: reading past HubSpot's 10,000-result search cap.

Pure logic, no SDK: :class:`SearchPlan` decides each request (filters, sorts, cursor) from the
records of the page before, and :class:`SearchRequest` is one request's JSON body. The adapter
(``_hubspot``) sends them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from ._client_records import HubSpotObject

__all__ = ["FIRST_PAGE", "SEARCH_CAP", "SEARCH_PAGE", "SearchPlan", "SearchRequest"]

#: Search page size (HubSpot's maximum).
SEARCH_PAGE = 200
#: HubSpot answers 400 when ``after + limit`` passes this.
SEARCH_CAP = 10_000
#: The cursor of a first search page: the specs require ``after``, and search cursors are offsets.
FIRST_PAGE = "0"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@attrs.frozen
class SearchRequest:
    """One search request: filter groups (OR of ANDs), sorts, the page cursor and size.

    ``sorts`` are property names, ascending, as the specs' ``PublicObjectSearchRequest`` has them
    (strings; a leading ``-`` would mean descending, which no request needs).
    """

    filter_groups: tuple[tuple[Mapping[str, Any], ...], ...]
    sorts: tuple[str, ...]
    properties: tuple[str, ...]
    after: str | None
    limit: int

    def body(self) -> dict[str, Any]:
        """The JSON body the specs require: every required field, the first page at ``"0"``."""
        return {
            "filterGroups": [{"filters": [dict(f) for f in group]} for group in self.filter_groups],
            "sorts": list(self.sorts),
            "properties": list(self.properties),
            "limit": self.limit,
            "after": FIRST_PAGE if self.after is None else self.after,
        }


class SearchPlan:
    """Which search request comes next, so a read never pages past HubSpot's 10,000 cap.

    Results are sorted by modification time (then id). Before a request would page past
    ``window`` results, the plan starts a new query anchored at the last timestamp seen
    (``GTE``) and skips the ids already yielded at exactly that timestamp. When a whole query
    window shares one timestamp (25,000 deals touched in the same millisecond), it switches to
    a tie query: that timestamp only, sorted by ``hs_object_id``, re-anchored with
    ``hs_object_id GT last id``; then it resumes with ``GT`` that timestamp. Memory is bounded
    by the ids yielded at one timestamp.

    Offset paging can skip a record when another record of the result set is modified
    mid-read (every later record shifts one place). ``window=page_size`` re-anchors on every
    page instead (keyset paging): immune to that, at the cost of re-reading the records at
    each page's last timestamp.
    """

    def __init__(
        self,
        *,
        modified_property: str,
        properties: Sequence[str],
        since: datetime | None,
        until: datetime | None,
        page_size: int = SEARCH_PAGE,
        base_filters: Sequence[Mapping[str, Any]] = (),
        window: int = SEARCH_CAP,
    ) -> None:
        if not 1 <= page_size <= window <= SEARCH_CAP:
            raise ValueError("need 1 <= page_size <= window <= 10000")
        self._ts = modified_property
        wanted = dict.fromkeys(properties)
        wanted.update({modified_property: None, "hs_object_id": None})
        self._properties = tuple(wanted)
        self._until = None if until is None else _ms(until)
        self._page = page_size
        self._base = tuple(base_filters)
        self._window = window
        self._tie = False
        self._strict = False
        self._anchor: int | None = None if since is None else _ms(since)
        self._query_first_ts: int | None = None
        self._last_ts: int | None = None
        self._seen: set[str] = set()
        self._tie_last_id: int | None = None
        self._tie_floor: int | None = None  # fixed for one tie query; the cursor's offsets need it
        self._offset = 0
        self._fresh = 0  # records of the last page not yielded before

    def first(self) -> SearchRequest:
        """The first request."""
        return self._request(None, self._page)

    def _request(self, after: str | None, limit: int) -> SearchRequest:
        filters = list(self._base)
        if self._tie:
            assert self._anchor is not None
            filters.append({"propertyName": self._ts, "operator": "EQ", "value": str(self._anchor)})
            if self._tie_floor is not None:
                filters.append(
                    {
                        "propertyName": "hs_object_id",
                        "operator": "GT",
                        "value": str(self._tie_floor),
                    }
                )
            sorts: tuple[str, ...] = ("hs_object_id",)
        else:
            if self._anchor is not None:
                op = "GT" if self._strict else "GTE"
                filters.append(
                    {"propertyName": self._ts, "operator": op, "value": str(self._anchor)}
                )
            if self._until is not None:
                filters.append(
                    {"propertyName": self._ts, "operator": "LTE", "value": str(self._until)}
                )
            sorts = (self._ts, "hs_object_id")
        groups = (tuple(filters),) if filters else ()
        return SearchRequest(groups, sorts, self._properties, after, limit)

    def accept(self, records: Sequence[HubSpotObject]) -> Iterator[HubSpotObject]:
        """Yield the records of a page that were not yielded before; remember what was."""
        self._fresh = 0
        for record in records:
            ts = _ms(record.updated_at)
            if self._tie:
                try:
                    numeric = int(record.id)
                except ValueError:
                    numeric = None
                if numeric is not None and (
                    self._tie_last_id is None or numeric > self._tie_last_id
                ):
                    self._tie_last_id = numeric
                if record.id in self._seen:
                    continue
                self._fresh += 1
                yield record
                continue
            if self._query_first_ts is None:
                self._query_first_ts = ts
            if self._last_ts is None or ts > self._last_ts:
                self._last_ts = ts
                self._seen = {record.id}
            elif ts == self._last_ts:
                if record.id in self._seen:
                    continue
                self._seen.add(record.id)
            self._fresh += 1
            yield record

    def next(self, records: Sequence[HubSpotObject], after: str | None) -> SearchRequest | None:
        """The request after a page of ``records`` whose ``paging.next.after`` was ``after``.

        :raises ValueError: the paging would never end (a cursor that does not move on).
        """
        if after is None:
            if not self._tie:
                return None
            # Every record at the tie timestamp is read: carry on after it.
            self._tie = False
            self._strict = True
            self._seen = set()
            self._tie_last_id = self._tie_floor = None
            self._query_first_ts = None
            self._offset = 0
            return self._request(None, self._page)
        if (
            not self._tie
            and len(records) >= self._page
            and _ms(records[0].updated_at) == _ms(records[-1].updated_at) == self._last_ts
        ):
            # A full page at one timestamp: a big tie, whose order HubSpot need not keep
            # between queries. Read it by id now rather than after a wasted window.
            self._enter_tie()
            return self._request(None, self._page)
        offset = int(after) if after.isdigit() else self._offset + len(records)
        if not records or offset <= self._offset:  # the same page again, for ever
            raise ValueError(f"the cursor {after!r} does not move past the page it came with")
        if offset + self._page <= self._window:
            self._offset = offset
            return self._request(after, self._page)
        self._offset = 0
        if self._tie:
            if self._tie_last_id is None or self._tie_last_id == self._tie_floor:
                raise ValueError(f"the search does not move past hs_object_id {self._tie_floor}")
            self._tie_floor = self._tie_last_id
            return self._request(None, self._page)
        if self._last_ts is None:
            raise ValueError("a full window of records without modification times")
        if not self._fresh and self._anchor == self._last_ts:
            # Anchored where the last query was and nothing new: HubSpot answers the same page.
            raise ValueError(f"the search does not move past {self._ts} {self._last_ts}")
        if self._query_first_ts == self._last_ts:
            self._enter_tie()  # a whole window at one timestamp: anchoring on it again would loop
        else:
            self._anchor = self._last_ts
            self._query_first_ts = None
            self._strict = False
        return self._request(None, self._page)

    def _enter_tie(self) -> None:
        self._tie = True
        self._tie_last_id = self._tie_floor = None
        self._anchor = self._last_ts
        self._query_first_ts = None
        self._offset = 0
