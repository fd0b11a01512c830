"""EventBridge schedule expressions, schedules' decisions and delivery backoff (pure core)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localbatch.core import schedules
from localbatch.core.delivery import Backoff, EventFilter, Verdict, verdict
from localbatch.core.schedule_expr import (
    Cron,
    ExpressionError,
    Rate,
    civil_from_days,
    days_from_civil,
    month_days,
    next_fire,
    parse,
)

UTC = timezone.utc
MINUTE = 60_000


def ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def at(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


NOW = ms(2026, 11, 21, 7, 58)  # a Saturday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 10 * * ? *)", (2026, 11, 21, 10, 0)),
        ("cron(15 12 ? * 2-6 *)", (2026, 11, 23, 12, 15)),  # Monday to Friday
        ("cron(0 18 ? * MON-FRI *)", (2026, 11, 23, 18, 0)),
        ("cron(0 8 1 * ? *)", (2026, 12, 1, 8, 0)),
        ("cron(0/15 * * * ? *)", (2026, 11, 21, 8, 0)),
        ("cron(5,35 14 * JAN,DEC ? *)", (2026, 12, 1, 14, 5)),
        ("cron(0 0 L * ? *)", (2026, 11, 30, 0, 0)),  # the last day of the month
        ("cron(0 0 LW * ? *)", (2026, 11, 30, 0, 0)),  # its last weekday (a Monday)
        ("cron(0 0 ? * 6L *)", (2026, 11, 27, 0, 0)),  # the last Friday
        ("cron(0 0 ? * 2#1 *)", (2026, 12, 7, 0, 0)),  # the first Monday
        ("cron(0 0 ? * L *)", (2026, 11, 28, 0, 0)),  # "L" alone: Saturday
        ("cron(0 0 15W * ? *)", (2026, 12, 15, 0, 0)),  # Nov 15 is a Sunday: Monday the 16th, passed
        ("cron(0 0 1W * ? *)", (2026, 12, 1, 0, 0)),
        ("cron(0 0 29 2 ? *)", (2028, 2, 29, 0, 0)),
        ("cron(10-20/5 7 * * ? 2026)", (2026, 11, 22, 7, 10)),
        ("rate(5 minutes)", (2026, 11, 21, 8, 3)),
        ("rate(1 hour)", (2026, 11, 21, 8, 58)),
        ("rate(2 days)", (2026, 11, 23, 7, 58)),
    ],
)
def test_next_fire(expression: str, expected: tuple[int, ...]) -> None:
    assert at(next_fire(parse(expression), NOW, NOW)) == datetime(*expected, tzinfo=UTC)  # type: ignore[misc]


def test_a_cron_whose_years_are_over_never_fires() -> None:
    assert next_fire(parse("cron(0 0 1 1 ? 1999)"), NOW, NOW) is None


def test_nearest_weekday_stays_in_its_month() -> None:
    # 2022-10-01 is a Saturday: 1W is Monday the 3rd, not Friday in September
    assert at(next_fire(parse("cron(0 0 1W * ? *)"), ms(2022, 9, 15), 0)) == datetime(2022, 10, 3, tzinfo=UTC)
    # 2022-07-31 is a Sunday: 31W is Friday the 29th, not Monday in August
    assert at(next_fire(parse("cron(0 0 31W * ? *)"), ms(2022, 7, 1), 0)) == datetime(2022, 7, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("cron(0 0 * * * *)", "exactly one of day-of-month"),
        ("cron(0 0 ? * ? *)", "exactly one of day-of-month"),
        ("cron(0 0 * *)", "expected 6 fields"),
        ("cron(60 * * * ? *)", "minutes: 60 is out of range 0-59"),
        ("cron(0 24 * * ? *)", "hours: 24 is out of range 0-23"),
        ("cron(0 0 32 * ? *)", "day-of-month: 32 is out of range 1-31"),
        ("cron(0 0 * 13 ? *)", "month: 13 is out of range 1-12"),
        ("cron(0 0 * FOO ? *)", "month: 'FOO' is not a value; allowed 1-12 or JAN/"),
        ("cron(0 0 ? * 8 *)", "day-of-week: 8 is out of range 1-7"),
        ("cron(0 0 * * ? 2200)", "year: 2200 is out of range 1970-2199"),
        ("cron(0 0 ? * 2#6 *)", "after '#' comes 1-5"),
        ("cron(0 0 5L * ? *)", "day-of-month: '5L'"),
        ("cron(0/0 0 * * ? *)", "the step after '/'"),
        ("cron(30-10 0 * * ? *)", "a range goes from low to high"),
        ("rate(1 minutes)", "with 1 the unit is 'minute'"),
        ("rate(5 minute)", "with 5 the unit is 'minutes'"),
        ("rate(0 hours)", "at least 1"),
        ("rate(5 weeks)", "allowed minute(s), hour(s), day(s)"),
        ("rate(five minutes)", "expected rate(N unit)"),
        ("every 5 minutes", "expected cron("),
    ],
)
def test_refused_expressions_say_why(expression: str, says: str) -> None:
    with pytest.raises(ExpressionError, match=None) as raised:
        parse(expression)
    assert says in str(raised.value)


# -- properties ---------------------------------------------------------------------------------


def _field(values: list[int]) -> str:
    return ",".join(str(v) for v in sorted(set(values)))


crons = st.builds(
    lambda minutes, hours, days, on_weekdays: (
        f"cron({_field(minutes)} {_field(hours)} ? * {_field(days)} *)"
        if on_weekdays
        else f"cron({_field(minutes)} {_field(hours)} * * ? *)"
    ),
    st.lists(st.integers(0, 59), min_size=1, max_size=4),
    st.lists(st.integers(0, 23), min_size=1, max_size=3),
    st.lists(st.integers(1, 7), min_size=1, max_size=3),
    st.booleans(),
)


def _matches(cron: Cron, t: int) -> bool:
    when = datetime.fromtimestamp(t / 1000, UTC)
    weekday = (when.weekday() + 1) % 7 + 1
    day_ok = cron.day_of_month.any or when.day in cron.day_of_month.days
    dow_ok = cron.day_of_week.any or weekday in cron.day_of_week.days
    return when.minute in cron.minutes and when.hour in cron.hours and day_ok and dow_ok


@settings(max_examples=60, deadline=None)
@given(crons, st.integers(ms(2020, 1, 1), ms(2030, 1, 1)))
def test_next_cron_is_the_first_matching_minute_after(text: str, after: int) -> None:
    cron = parse(text)
    assert isinstance(cron, Cron)
    found = next_fire(cron, after, 0)
    assert found is not None and found > after and found % MINUTE == 0
    assert _matches(cron, found)
    t = after // MINUTE * MINUTE + MINUTE
    while t < found:  # bounded: every day of the week has a firing, so within 8 days
        assert not _matches(cron, t), f"{text} fires at {at(t)}, before {at(found)}"
        t += MINUTE


@given(st.integers(1, 500), st.sampled_from(["minute", "hour", "day"]), st.integers(0, 10**12), st.integers(0, 10**12))
def test_a_rate_fires_every_period_from_its_anchor(n: int, unit: str, anchor: int, after: int) -> None:
    rate = parse(f"rate({n} {unit}{'s' if n > 1 else ''})")
    assert isinstance(rate, Rate)
    found = next_fire(rate, after, anchor)
    assert found is not None and found > after
    assert (found - anchor) % rate.period_ms == 0 and found >= anchor
    assert found - rate.period_ms <= after or found == anchor


# -- schedules' decisions ------------------------------------------------------------------------


def test_a_rate_fires_when_first_seen_then_every_period() -> None:
    rate = parse("rate(5 minutes)")
    first = schedules.decide(rate, True, None, NOW)
    assert (first.fire_at, first.submit) == (NOW, True)
    assert schedules.decide(rate, True, first.state, NOW + 4 * MINUTE).fire_at is None
    second = schedules.decide(rate, True, first.state, NOW + 5 * MINUTE)
    assert (second.fire_at, second.submit, second.catch_up) == (NOW + 5 * MINUTE, True, False)
    assert schedules.next_run(rate, second.state, NOW + 5 * MINUTE) == NOW + 10 * MINUTE


def test_missed_firings_collapse_into_one_catch_up() -> None:
    cron = parse("cron(0 * * * ? *)")  # hourly
    state = schedules.decide(cron, True, None, ms(2026, 1, 1, 0, 30)).state
    back = ms(2026, 1, 1, 5, 10)  # down from 00:30 to 05:10: five firings missed
    decision = schedules.decide(cron, True, state, back)
    assert (at(decision.fire_at), decision.submit, decision.catch_up) == (
        datetime(2026, 1, 1, 1, tzinfo=UTC),
        True,
        True,
    )
    again = schedules.decide(cron, True, decision.state, back + MINUTE)
    assert again.fire_at is None  # one catch-up run, not five
    assert at(schedules.next_run(cron, again.state, back)) == datetime(2026, 1, 1, 6, tzinfo=UTC)


def test_without_catch_up_a_missed_firing_is_skipped_but_an_on_time_one_runs() -> None:
    cron = parse("cron(0 * * * ? *)")
    state = schedules.decide(cron, False, None, ms(2026, 1, 1, 0, 30)).state
    skipped = schedules.decide(cron, False, state, ms(2026, 1, 1, 5, 10))
    assert (skipped.fire_at is not None, skipped.submit) == (True, False)
    on_time = schedules.decide(cron, False, skipped.state, ms(2026, 1, 1, 6, 0) + 2_000)
    assert (at(on_time.fire_at), on_time.submit) == (datetime(2026, 1, 1, 6, tzinfo=UTC), True)


def test_a_changed_expression_starts_over() -> None:
    state = schedules.decide(parse("rate(1 day)"), True, None, NOW).state
    changed = schedules.decide(parse("rate(2 days)"), True, state, NOW + 3 * 86_400_000)
    assert changed.fire_at == NOW + 3 * 86_400_000 and not changed.catch_up  # a new anchor, fired now
    assert changed.state.expression == "rate(2 days)"


@given(st.integers(-700_000, 800_000))
def test_civil_dates_match_the_standard_library(days: int) -> None:
    day = date(1970, 1, 1) + timedelta(days=days)
    assert civil_from_days(days) == (day.year, day.month, day.day)
    assert days_from_civil(day.year, day.month, day.day) == days


def test_state_records_round_trip() -> None:
    state = schedules.ScheduleState("rate(1 day)", 1, 2, 3, "submitted", "job-1")
    assert schedules.ScheduleState.from_record(state.as_record()) == state
    assert schedules.ScheduleState.from_record({"expression": "x"}) is None
    assert schedules.ScheduleState.from_record("garbage") is None


# -- delivery ------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_and_stops_after_max_attempts() -> None:
    backoff = Backoff(max_attempts=5, base_ms=1_000, cap_ms=5_000)
    assert [backoff.delay_ms(n) for n in range(1, 6)] == [1_000, 2_000, 4_000, 5_000, 5_000]
    assert backoff.next_try(1, 100) == 1_100
    assert backoff.next_try(4, 100) == 5_100
    assert backoff.next_try(5, 100) is None
    assert backoff.next_try(1, 100, final=True) is None
    assert Backoff(base_ms=1, cap_ms=10**12).delay_ms(10**6) == 2**32  # no overflow, no hang


@pytest.mark.parametrize(
    ("code", "expected"),
    [(200, Verdict.DELIVERED), (204, Verdict.DELIVERED), (None, Verdict.RETRY), (500, Verdict.RETRY)]
    + [
        (503, Verdict.RETRY),
        (429, Verdict.RETRY),
        (408, Verdict.RETRY),
        (404, Verdict.GIVE_UP),
        (301, Verdict.GIVE_UP),
    ],
)
def test_verdicts(code: int | None, expected: Verdict) -> None:
    assert verdict(code) is expected


def test_filters() -> None:
    anything = EventFilter()
    assert anything.matches("q", "RUNNING", "name", "def")
    picky = EventFilter(frozenset({"q"}), frozenset({"FAILED", "SUCCEEDED"}), "train-", frozenset({"train"}))
    assert picky.matches("q", "FAILED", "train-1", "train")
    assert not picky.matches("other", "FAILED", "train-1", "train")
    assert not picky.matches("q", "RUNNING", "train-1", "train")
    assert not picky.matches("q", "FAILED", "eval-1", "train")
    assert not picky.matches("q", "FAILED", "train-1", "eval")


def test_a_failed_submission_is_tried_again_with_backoff_then_given_up() -> None:
    rate = parse("rate(1 day)")
    decision = schedules.decide(rate, True, None, NOW)
    state = schedules.ran(decision.state, NOW, "failed: no job definition", None, failed=True)
    assert (state.failures, state.retry_at) == (1, NOW + 1_000)
    assert schedules.next_run(rate, state, NOW) == NOW + 1_000
    assert schedules.decide(rate, True, state, NOW + 999).fire_at is None
    again = schedules.decide(rate, True, state, NOW + 1_000)
    assert (again.fire_at, again.submit, again.retry) == (NOW + 1_000, True, True)
    for _ in range(schedules.RETRY.max_attempts - 1):
        state = schedules.ran(state, NOW, "failed", None, failed=True)
    assert state.retry_at is None and state.last_outcome == "failed (gave up after 5 tries)"
    done = schedules.ran(again.state, NOW + 1_000, "submitted", "job-1", failed=False)
    assert (done.failures, done.retry_at, done.last_job_id) == (0, None, "job-1")
    assert schedules.next_run(rate, done, NOW + 1_000) == NOW + 86_400_000


day_of_month_forms = st.one_of(
    st.just("L"), st.just("LW"), st.integers(1, 31).map(lambda d: f"{d}W"), st.integers(1, 31).map(str)
)
day_of_week_forms = st.one_of(
    st.integers(1, 7).map(lambda d: f"{d}L"),
    st.tuples(st.integers(1, 7), st.integers(1, 5)).map(lambda p: f"{p[0]}#{p[1]}"),
    st.sampled_from(["MON-FRI", "SUN", "L", "2-6/2"]),
)
special_crons = st.builds(
    lambda minute, hour, days, months: f"cron({minute} {hour} {days[0]} {months} {days[1]} *)",
    st.integers(0, 59),
    st.integers(0, 23),
    st.one_of(day_of_month_forms.map(lambda d: (d, "?")), day_of_week_forms.map(lambda d: ("?", d))),
    st.sampled_from(["*", "JAN,JUL", "2", "*/3"]),
)


@settings(max_examples=80, deadline=None)
@given(special_crons, st.integers(ms(2000, 1, 1), ms(2100, 1, 1)), st.integers(0, 400 * 86_400_000))
def test_next_cron_with_special_days_fires_on_them_in_order(text: str, after: int, gap: int) -> None:
    cron = parse(text)
    assert isinstance(cron, Cron)
    found = next_fire(cron, after, 0)
    later = next_fire(cron, after + gap, 0)
    if found is None:  # e.g. 30W in February only: never
        assert later is None
        return
    when = datetime.fromtimestamp(found / 1000, UTC)
    assert found > after and found % MINUTE == 0
    assert when.minute in cron.minutes and when.hour in cron.hours and when.month in cron.months
    assert when.day in month_days(cron, when.year, when.month)
    assert later is not None and later >= found  # a later start never fires earlier
    # no day between the start and the firing would have fired
    day = datetime.fromtimestamp(after / 1000, UTC).date() + timedelta(days=1)
    while day < when.date():
        assert not (day.month in cron.months and day.day in month_days(cron, day.year, day.month)), day
        day += timedelta(days=1)
