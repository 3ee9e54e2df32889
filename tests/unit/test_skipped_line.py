"""Slots skipped together are logged as one line per monitor, not one per slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks.launches import LATE_REASON, skipped_line


def test_one_skipped_slot_is_named() -> None:
    slot = datetime(2026, 12, 3, 18, 30, tzinfo=UTC)
    assert skipped_line("orders", [slot]) == (
        f"monitor orders: slot 2026-12-03T18:30:00+00:00 skipped: {LATE_REASON}"
    )


def test_many_skipped_slots_are_one_line_with_their_count_and_span() -> None:
    start = datetime(2026, 12, 3, 18, 30, tzinfo=UTC)
    slots = [start + timedelta(seconds=5 * n) for n in range(100)][::-1]
    line = skipped_line("shop-health", slots)
    assert "\n" not in line
    assert line == (
        "monitor shop-health: 100 slots from 2026-12-03T18:30:00+00:00"
        f" to 2026-12-03T18:38:15+00:00 skipped: {LATE_REASON}"
    )
