"""EventBridge schedule expressions: ``cron(...)`` and ``rate(...)``, parsed and evaluated, in UTC.

``cron(minutes hours day-of-month month day-of-week year)``, as EventBridge writes it:

- minutes 0-59, hours 0-23, month 1-12 or JAN-DEC, year 1970-2199, each with ``, - * /``;
- day-of-month 1-31 with ``, - * ? / L W`` (``L`` the last day, ``15W`` the weekday nearest
  the 15th, ``LW`` the last weekday);
- day-of-week 1-7 or SUN-SAT (1 = SUN) with ``, - * ? L #`` (``6L`` the month's last Friday,
  ``2#1`` its first Monday, ``L`` alone Saturday);
- one of day-of-month and day-of-week is ``?`` (EventBridge refuses both, and neither).

``rate(N unit)``: N a positive whole number, unit ``minute``/``hour``/``day`` when N is 1,
``minutes``/``hours``/``days`` otherwise (EventBridge's rule).

Pure: times are epoch milliseconds given by the caller. Errors are ``ExpressionError`` naming
the field and what it allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MINUTE_MS = 60_000
_DAY_MINUTES = 1_440
MIN_YEAR, MAX_YEAR = 1970, 2199
_MONTHS = {"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6}
_MONTHS |= {"JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_RATE_UNITS_MS = {"minute": _MINUTE_MS, "hour": 60 * _MINUTE_MS, "day": 24 * 60 * _MINUTE_MS}


class ExpressionError(ValueError):
    """A schedule expression EventBridge would refuse; the message says why."""


@dataclass(frozen=True)
class Rate:
    """``rate(N unit)``: every ``period_ms``, counted from an anchor the caller keeps."""

    text: str
    period_ms: int


@dataclass(frozen=True)
class DaySpec:
    """One day field: plain days, and the special forms each field allows."""

    any: bool = False  # "?"
    days: frozenset[int] = frozenset()  # day numbers (day-of-month 1-31, or day-of-week 1-7)
    last: bool = False  # dom "L"
    last_weekday: bool = False  # dom "LW"
    nearest_weekday: frozenset[int] = frozenset()  # dom "15W"
    last_of: frozenset[int] = frozenset()  # dow "6L": the last Friday
    nth: frozenset[tuple[int, int]] = frozenset()  # dow "2#1": (weekday, n)


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    day_of_month: DaySpec
    months: frozenset[int]
    day_of_week: DaySpec
    years: frozenset[int]


Expression = Cron | Rate


def parse(text: str) -> Expression:
    """``cron(...)`` or ``rate(...)``; ExpressionError when EventBridge would refuse it."""
    stripped = text.strip()
    found = re.fullmatch(r"(cron|rate)\((.*)\)", stripped, re.DOTALL)
    if found is None:
        raise ExpressionError(
            f"{text!r}: expected cron(minutes hours day-of-month month day-of-week year) or rate(N unit)"
        )
    kind, inner = found.groups()
    return _parse_rate(stripped, inner) if kind == "rate" else _parse_cron(stripped, inner)


def _parse_rate(text: str, inner: str) -> Rate:
    parts = inner.split()
    if len(parts) != 2 or not parts[0].isascii() or not parts[0].isdigit():
        raise ExpressionError(f"{text}: expected rate(N unit), N a positive whole number, e.g. rate(5 minutes)")
    value, unit = int(parts[0]), parts[1]
    if value < 1:
        raise ExpressionError(f"{text}: the value must be at least 1")
    singular = unit.rstrip("s") if unit.endswith("s") else unit
    if singular not in _RATE_UNITS_MS:
        raise ExpressionError(f"{text}: unit {unit!r}: allowed minute(s), hour(s), day(s)")
    wanted = singular if value == 1 else singular + "s"
    if unit != wanted:
        raise ExpressionError(f"{text}: with {value} the unit is {wanted!r} (EventBridge: singular for 1, else plural)")
    return Rate(text, value * _RATE_UNITS_MS[singular])


_FIELDS = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")


def _parse_cron(text: str, inner: str) -> Cron:
    parts = inner.split()
    if len(parts) != 6:
        raise ExpressionError(
            f"{text}: expected 6 fields (minutes hours day-of-month month day-of-week year), got {len(parts)}"
        )
    minute, hour, dom, month, dow, year = parts
    if (dom == "?") == (dow == "?"):
        raise ExpressionError(
            f"{text}: exactly one of day-of-month ({dom!r}) and day-of-week ({dow!r}) must be '?' (EventBridge's rule)"
        )
    try:
        return Cron(
            text,
            minutes=_numbers("minutes", minute, 0, 59),
            hours=_numbers("hours", hour, 0, 23),
            day_of_month=_day_of_month(dom),
            months=_numbers("month", month, 1, 12, _MONTHS),
            day_of_week=_day_of_week(dow),
            years=_numbers("year", year, MIN_YEAR, MAX_YEAR),
        )
    except ExpressionError as exc:
        raise ExpressionError(f"{text}: {exc}") from None


def _number(field: str, token: str, low: int, high: int, names: dict[str, int] | None) -> int:
    if names and token.upper() in names:
        return names[token.upper()]
    if not (token.isascii() and token.isdigit()):
        allowed = f"{low}-{high}" + (f" or {'/'.join(names)}" if names else "")
        raise ExpressionError(f"{field}: {token!r} is not a value; allowed {allowed}")
    value = int(token)
    if not low <= value <= high:
        raise ExpressionError(f"{field}: {value} is out of range {low}-{high}")
    return value


def _numbers(field: str, text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    """A list of ``*``, values, ranges ``a-b`` and steps ``a/n``, ``a-b/n``, ``*/n``."""
    found: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) < 1:
                raise ExpressionError(f"{field}: {item!r}: the step after '/' must be a whole number of at least 1")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(field, first, low, high, names), _number(field, last, low, high, names)
            if start > end:
                raise ExpressionError(f"{field}: {item!r}: a range goes from low to high")
        elif base:
            start = _number(field, base, low, high, names)
            end = high if slash else start
        else:
            raise ExpressionError(f"{field}: an empty entry in {text!r}")
        found.update(range(start, end + 1, step))
    return frozenset(found)


def _day_of_month(text: str) -> DaySpec:
    if text == "?":
        return DaySpec(any=True)
    days: set[int] = set()
    last = last_weekday = False
    nearest: set[int] = set()
    for item in text.split(","):
        if item == "L":
            last = True
        elif item == "LW":
            last_weekday = True
        elif item.endswith("W"):
            nearest.add(_number("day-of-month", item[:-1], 1, 31, None))
        elif "L" in item or "W" in item or "#" in item:
            raise ExpressionError(f"day-of-month: {item!r}: allowed L, LW, NW (e.g. 15W), numbers 1-31, ranges, steps")
        else:
            days |= _numbers("day-of-month", item, 1, 31)
    return DaySpec(False, frozenset(days), last, last_weekday, frozenset(nearest))


def _day_of_week(text: str) -> DaySpec:
    if text == "?":
        return DaySpec(any=True)
    days: set[int] = set()
    last_of: set[int] = set()
    nth: set[tuple[int, int]] = set()
    for item in text.split(","):
        if item == "L":
            days.add(7)  # "L" alone: the last day of the week, Saturday
        elif item.endswith("L"):
            last_of.add(_number("day-of-week", item[:-1], 1, 7, _DAYS))
        elif "#" in item:
            day, _, n = item.partition("#")
            if not (n.isascii() and n.isdigit()) or not 1 <= int(n) <= 5:
                raise ExpressionError(f"day-of-week: {item!r}: after '#' comes 1-5 (the nth such day of the month)")
            nth.add((_number("day-of-week", day, 1, 7, _DAYS), int(n)))
        elif "W" in item.upper().replace("WED", ""):
            raise ExpressionError(f"day-of-week: {item!r}: allowed 1-7 or SUN-SAT, ranges, steps, NL, N#K")
        else:
            days |= _numbers("day-of-week", item, 1, 7, _DAYS)
    return DaySpec(False, frozenset(days), last_of=frozenset(last_of), nth=frozenset(nth))


# -- evaluation (proleptic Gregorian calendar, UTC, in whole days since 1970-01-01) -------------


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 (Howard Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number (``days_from_civil``'s inverse)."""
    days += 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def _month_length(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _weekday(year: int, month: int, day: int) -> int:
    """EventBridge's day-of-week number: SUN=1 ... SAT=7 (1970-01-01 was a Thursday)."""
    return (days_from_civil(year, month, day) + 4) % 7 + 1


def _nearest_weekday(year: int, month: int, day: int, last: int) -> int | None:
    if day > last:
        return None
    wd = _weekday(year, month, day)
    if 2 <= wd <= 6:
        return day
    if wd == 7:  # Saturday: Friday before, unless that leaves the month
        return day - 1 if day > 1 else day + 2
    return day + 1 if day < last else day - 2  # Sunday: Monday after, unless that leaves the month


def month_days(cron: Cron, year: int, month: int) -> list[int]:
    """The days of ``month`` the expression fires on, in order."""
    last = _month_length(year, month)
    found: set[int] = set()
    dom, dow = cron.day_of_month, cron.day_of_week
    if not dom.any:
        found |= {d for d in dom.days if d <= last}
        if dom.last:
            found.add(last)
        if dom.last_weekday:
            found.add(_nearest_weekday(year, month, last, last) or last)
        for day in dom.nearest_weekday:
            near = _nearest_weekday(year, month, day, last)
            if near is not None:
                found.add(near)
    else:
        weekdays = {d: _weekday(year, month, d) for d in range(1, last + 1)}
        found |= {d for d, wd in weekdays.items() if wd in dow.days}
        for wanted in dow.last_of:
            found.add(max(d for d, wd in weekdays.items() if wd == wanted))
        for wanted, n in dow.nth:
            matching = [d for d, wd in weekdays.items() if wd == wanted]
            if n <= len(matching):
                found.add(matching[n - 1])
    return sorted(found)


def next_cron(cron: Cron, after_ms: int) -> int | None:
    """The first minute strictly after ``after_ms`` the expression fires at; None if none
    (its years are over)."""
    first = after_ms // _MINUTE_MS + 1  # in minutes since the epoch
    start = (*civil_from_days(first // _DAY_MINUTES), (first % _DAY_MINUTES) // 60, first % 60)
    hours, minutes = sorted(cron.hours), sorted(cron.minutes)
    for year in sorted(y for y in cron.years if y >= start[0]):
        for month in sorted(cron.months):
            if (year, month) < start[:2]:
                continue
            for day in month_days(cron, year, month):
                if (year, month, day) < start[:3]:
                    continue
                for hour in hours:
                    for minute in minutes:
                        if (year, month, day, hour, minute) >= start:
                            at = days_from_civil(year, month, day) * _DAY_MINUTES + hour * 60 + minute
                            return at * _MINUTE_MS
    return None


def next_fire(expression: Expression, after_ms: int, anchor_ms: int) -> int | None:
    """The first firing strictly after ``after_ms``. A rate fires at ``anchor_ms`` and every
    period after it; a cron at its minutes."""
    if isinstance(expression, Rate):
        if after_ms < anchor_ms:
            return anchor_ms
        periods = (after_ms - anchor_ms) // expression.period_ms + 1
        return anchor_ms + periods * expression.period_ms
    return next_cron(expression, after_ms)
