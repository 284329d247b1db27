"""Paging walks every item exactly once, in order, whatever the page size; bad cursors are one clear error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alert import rfc3339
from streams.core.paging import ALERT_CURSOR, SPEND_CURSOR, CursorError, alert_order, decode_cursor, page


T0 = 1_795_000_000.0


def record(alert_id: str, at: float, status: str) -> dict:
    """A ``recent`` table record as the worker stores it: the alert's times are RFC 3339 strings."""
    return {"alert": {"alert_id": alert_id, "triggered_at": rfc3339(T0 + at), "status": status}}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["firing", "resolved"])), max_size=30),
       st.integers(1, 7))
def test_pages_cover_every_item_once_in_order(rows: list[tuple[int, str]], limit: int) -> None:
    records = [record(f"a{i}", float(at), status) for i, (at, status) in enumerate(rows)]
    seen: list[dict] = []
    after = None
    while True:
        chosen, cursor = page(records, alert_order, limit, after)
        assert len(chosen) <= limit
        seen += chosen
        if cursor is None:
            break
        after = decode_cursor(cursor, ALERT_CURSOR)
    assert seen == sorted(records, key=alert_order)


def test_newest_first_resolved_before_firing() -> None:
    records = [record("a", 1.0, "firing"), record("b", 2.0, "firing"), record("c", 2.0, "resolved")]
    assert [r["alert"]["alert_id"] for r in page(records, alert_order, 10, None)[0]] == ["c", "b", "a"]


@pytest.mark.parametrize("raw", ["", "!!!", "bnVsbA", "WzEsMl0", "WyJ4IiwieSJd", "W3RydWUsIngiXQ"])
def test_a_cursor_no_page_returned_is_one_clear_error(raw: str) -> None:
    with pytest.raises(CursorError, match="cursor: not a cursor this endpoint returned"):
        decode_cursor(raw, SPEND_CURSOR)
