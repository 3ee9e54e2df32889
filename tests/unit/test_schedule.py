"""Schedules: cron in time zones (with daylight saving changes), intervals, validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pmrunner.errors import ConfigurationError
from scheduler.schedule import Schedule, load_timezone, parse_interval

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def hhmm(slots: list[datetime]) -> list[str]:
    return [slot.strftime("%m-%d %H:%M:%S") for slot in slots]


def assert_consistent(schedule: Schedule, after: datetime, slots: list[datetime]) -> None:
    """next_slot, previous_slot and slots_between agree on every slot."""
    previous = after
    for slot in slots:
        assert slot.tzinfo is UTC
        assert schedule.next_slot(previous) == slot
        assert schedule.previous_slot(slot) == slot
        if previous is not after:
            assert schedule.previous_slot(slot - timedelta(microseconds=1)) == previous
        previous = slot


# -- plain cron ---------------------------------------------------------------------------------


def test_five_field_cron_every_five_minutes() -> None:
    schedule = Schedule.from_cron("*/5 * * * *")
    slots = schedule.slots_between(utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 0, 20))
    assert hhmm(slots) == ["01-01 00:05:00", "01-01 00:10:00", "01-01 00:15:00", "01-01 00:20:00"]


def test_slots_exclude_after_and_include_until() -> None:
    schedule = Schedule.from_cron("0 * * * *")
    slots = schedule.slots_between(utc(2026, 1, 1, 1, 0), utc(2026, 1, 1, 3, 0))
    assert slots == [utc(2026, 1, 1, 2, 0), utc(2026, 1, 1, 3, 0)]
    assert schedule.slots_between(utc(2026, 1, 1, 3, 0), utc(2026, 1, 1, 1, 0)) == []


def test_six_field_cron_has_seconds_first() -> None:
    schedule = Schedule.from_cron("*/20 * * * * *")
    slots = schedule.slots_between(utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 1, 0))
    assert hhmm(slots) == ["01-01 00:00:20", "01-01 00:00:40", "01-01 00:01:00"]
    nine = Schedule.from_cron("30 0 9 * * *")
    assert nine.next_slot(utc(2026, 1, 1)) == utc(2026, 1, 1, 9, 0, 30)


def test_cron_in_a_time_zone_runs_on_local_wall_clock() -> None:
    schedule = Schedule.from_cron("0 9 * * MON-FRI", NEW_YORK)
    # 2026-01-02 is a Friday; the next run after it is Monday 09:00 EST = 14:00 UTC.
    assert schedule.next_slot(utc(2026, 1, 2, 15, 0)) == utc(2026, 1, 5, 14, 0)


def test_previous_slot_and_sub_second_boundaries() -> None:
    schedule = Schedule.from_cron("0 * * * *")
    assert schedule.previous_slot(utc(2026, 1, 1, 5, 30)) == utc(2026, 1, 1, 5, 0)
    assert schedule.previous_slot(utc(2026, 1, 1, 5, 0)) == utc(2026, 1, 1, 5, 0)
    just_after = utc(2026, 1, 1, 5, 0) + timedelta(microseconds=1)
    assert schedule.next_slot(just_after) == utc(2026, 1, 1, 6, 0)


def test_aliases_and_normalised_whitespace() -> None:
    assert Schedule.from_cron("@hourly").next_slot(utc(2026, 1, 1, 0, 10)) == utc(2026, 1, 1, 1)
    assert Schedule.from_cron("  */5   *  * * * ").cron == "*/5 * * * *"


def test_other_offsets_are_accepted_and_answers_are_utc() -> None:
    schedule = Schedule.from_cron("0 * * * *")
    after = datetime(2026, 1, 1, 10, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    slot = schedule.next_slot(after)
    assert slot == utc(2026, 1, 1, 6, 0)
    assert slot.tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Schedule.from_cron("* * * * *").next_slot(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        Schedule.every(60).slots_between(datetime(2026, 1, 1), utc(2026, 1, 2))


def test_slots_between_keeps_the_latest_when_over_the_limit() -> None:
    schedule = Schedule.from_cron("* * * * *")
    slots = schedule.slots_between(utc(2026, 1, 1), utc(2026, 1, 2), limit=3)
    assert slots == [utc(2026, 1, 1, 23, 58), utc(2026, 1, 1, 23, 59), utc(2026, 1, 2)]


# -- daylight saving time -----------------------------------------------------------------------


def test_berlin_spring_forward_skipped_fixed_time_runs_once_at_gap_end() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist.
    schedule = Schedule.from_cron("30 2 * * *", BERLIN)
    slots = schedule.slots_between(utc(2026, 3, 27, 12), utc(2026, 3, 30, 12))
    assert slots == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    assert_consistent(schedule, utc(2026, 3, 27, 12), slots)


def test_berlin_spring_forward_several_skipped_times_run_once() -> None:
    schedule = Schedule.from_cron("0,20,40 2 * * *", BERLIN)
    slots = schedule.slots_between(utc(2026, 3, 28, 23), utc(2026, 3, 29, 23))
    assert slots == [utc(2026, 3, 29, 1, 0)]


def test_berlin_spring_forward_frequent_schedule_follows_real_time() -> None:
    schedule = Schedule.from_cron("*/30 * * * *", BERLIN)
    slots = schedule.slots_between(utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0))
    # 01:30 CET, then 03:00 and 03:30 CEST: every 30 minutes of real time, no extra run.
    expected = [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0)]
    expected += [utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 0)]
    assert slots == expected
    assert_consistent(schedule, utc(2026, 3, 29, 0, 0), slots)


def test_berlin_fall_back_repeated_fixed_time_runs_once() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET (at 01:00 UTC); 02:30 happens twice.
    schedule = Schedule.from_cron("30 2 * * *", BERLIN)
    slots = schedule.slots_between(utc(2026, 10, 23, 12), utc(2026, 10, 26, 12))
    assert slots == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert_consistent(schedule, utc(2026, 10, 23, 12), slots)
    # Asked from inside the second pass, the repeated time is not offered again.
    assert schedule.next_slot(utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 26, 1, 30)
    assert schedule.previous_slot(utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 0, 30)


def test_berlin_fall_back_frequent_schedule_covers_both_passes() -> None:
    schedule = Schedule.from_cron("*/30 * * * *", BERLIN)
    after = utc(2026, 10, 24, 23, 30)
    slots = schedule.slots_between(after, utc(2026, 10, 25, 2, 0))
    assert slots == [after + timedelta(minutes=30 * step) for step in range(1, 6)]
    assert_consistent(schedule, after, slots)
    hourly = Schedule.from_cron("0 * * * *", BERLIN)
    assert hourly.next_slot(utc(2026, 10, 25, 0, 10)) == utc(2026, 10, 25, 1, 0)


def test_new_york_spring_forward_and_fall_back() -> None:
    # 2026-03-08: 02:00 EST → 03:00 EDT (07:00 UTC). 2026-11-01: 02:00 EDT → 01:00 EST.
    spring = Schedule.from_cron("30 2 * * *", NEW_YORK)
    assert spring.slots_between(utc(2026, 3, 7), utc(2026, 3, 10)) == [
        utc(2026, 3, 7, 7, 30),
        utc(2026, 3, 8, 7, 0),
        utc(2026, 3, 9, 6, 30),
    ]
    fall = Schedule.from_cron("30 1 * * *", NEW_YORK)
    slots = fall.slots_between(utc(2026, 10, 31), utc(2026, 11, 3))
    assert slots == [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    assert_consistent(fall, utc(2026, 10, 31), slots)


def test_six_field_cron_through_a_fall_back_hour_is_regular() -> None:
    schedule = Schedule.from_cron("*/15 * * * * *", NEW_YORK)
    after = utc(2026, 11, 1, 5, 59, 0)
    slots = schedule.slots_between(after, utc(2026, 11, 1, 6, 1, 0))
    assert slots == [after + timedelta(seconds=15 * step) for step in range(1, 9)]


def test_a_year_of_fixed_time_slots_is_one_a_day() -> None:
    schedule = Schedule.from_cron("0 2 * * *", BERLIN)
    slots = schedule.slots_between(utc(2026, 1, 1), utc(2027, 1, 1), limit=10_000)
    assert slots == sorted(set(slots))
    assert len(slots) == 365
    assert len({slot.astimezone(load_timezone(BERLIN)).date() for slot in slots}) == 365


def test_a_year_of_frequent_slots_follows_real_time() -> None:
    schedule = Schedule.from_cron("0 */2 * * *", BERLIN)
    slots = schedule.slots_between(utc(2026, 1, 1), utc(2027, 1, 1), limit=10_000)
    assert slots == sorted(set(slots))
    per_day: dict[str, int] = {}
    for slot in slots:
        day = slot.astimezone(load_timezone(BERLIN)).strftime("%m-%d")
        per_day[day] = per_day.get(day, 0) + 1
    # The skipped 02:00 is not made up for; the repeated 02:00 runs in both passes.
    assert per_day["03-29"] == 11
    assert per_day["10-25"] == 13
    assert len(slots) == 365 * 12


# -- intervals ---------------------------------------------------------------------------------


def test_interval_slots_are_anchored_to_the_epoch() -> None:
    schedule = Schedule.every("5m")
    slot = schedule.next_slot(utc(2026, 1, 1, 0, 2, 13))
    assert slot == utc(2026, 1, 1, 0, 5)
    assert int(slot.timestamp()) % 300 == 0
    # Whoever asks, from wherever, gets the same grid.
    other = schedule.slots_between(utc(2026, 1, 1, 0, 4, 59), utc(2026, 1, 1, 0, 15))
    assert other == [utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 15)]
    assert schedule.previous_slot(utc(2026, 1, 1, 0, 9, 59)) == utc(2026, 1, 1, 0, 5)


def test_interval_that_does_not_divide_a_day_is_still_epoch_anchored() -> None:
    schedule = Schedule.every(7)
    slots = schedule.slots_between(utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 30))
    assert [int(slot.timestamp()) % 7 for slot in slots] == [0] * len(slots)
    assert len(slots) == 4
    assert schedule.slots_between(utc(2026, 1, 1), utc(2026, 1, 2), limit=2) == [
        datetime.fromtimestamp((int(utc(2026, 1, 2).timestamp()) // 7 - 1) * 7, UTC),
        datetime.fromtimestamp(int(utc(2026, 1, 2).timestamp()) // 7 * 7, UTC),
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(300, 300), ("300", 300), ("60s", 60), ("5m", 300), ("1h", 3600), ("1d", 86400)],
)
def test_parse_interval(text: object, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", [0, -5, "0s", "5 weeks", "", True, 1.5, None])
def test_parse_interval_refuses_bad_values(text: object) -> None:
    with pytest.raises(ConfigurationError, match="interval"):
        parse_interval(text)


# -- validation and serialisation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("* * * *", "has 4 fields"),
        ("* * * * * * *", "has 7 fields"),
        ("61 * * * *", "not valid"),
        ("* 24 * * *", "not valid"),
        ("*/0 * * * *", "not valid"),
        ("0 0 30 2 *", "never matches"),
        ("H * * * *", "hashed and random"),
        ("R 3 * * *", "hashed and random"),
        ("0 9 * * FUNDAY", "not valid"),
    ],
)
def test_invalid_cron_expressions_are_named(expression: str, reason: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Schedule.from_cron(expression)
    assert repr(expression) in str(raised.value)
    assert reason in str(raised.value)


def test_unknown_time_zone_is_named() -> None:
    with pytest.raises(ConfigurationError, match="'Europe/Berlinn' is not a known IANA"):
        Schedule.from_cron("* * * * *", "Europe/Berlinn")
    with pytest.raises(ConfigurationError, match="not a known IANA"):
        load_timezone("../etc/passwd")


def test_a_schedule_needs_exactly_one_kind() -> None:
    with pytest.raises(ConfigurationError, match="either a cron expression or an interval"):
        Schedule()
    with pytest.raises(ConfigurationError, match="either a cron expression or an interval"):
        Schedule(cron="* * * * *", every_seconds=60)


@pytest.mark.parametrize(
    "schedule", [Schedule.from_cron("*/5 * * * *", BERLIN), Schedule.every("1h")]
)
def test_schedule_round_trips_through_json(schedule: Schedule) -> None:
    data = json.loads(json.dumps(schedule.to_dict()))
    assert Schedule.from_dict(data) == schedule


def test_describe() -> None:
    assert Schedule.from_cron("0 * * * *", BERLIN).describe() == "cron '0 * * * *' (Europe/Berlin)"
    assert Schedule.every(90).describe() == "every 90s"
