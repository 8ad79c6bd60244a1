"""Due slots computed independently with Python's zoneinfo: the oracle for `avocetctl schedule preview`.

Reads a JSON list of cases on stdin, each {"zone", "from", "count", "rule"} where rule is one of
{"type": "Interval", "minutes"}, {"type": "Daily", "hour", "minute"},
{"type": "Weekly", "weekday" (0 = Monday), "hour", "minute"} or
{"type": "Monthly", "date", "hour", "minute"}, and prints a JSON list with, per case, the first
`count` slots at or after `from` as RFC 3339 strings in the zone's offset.

The DST rule needs no code of its own: a naive local time with fold=0 takes the offset from
before a transition (PEP 495), so a time in a spring-forward gap lands after the gap and a time
that happens twice resolves to its first occurrence, which is Avocet's contract.
"""

import calendar
import json
import sys
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


def wall_slot(zone, day, hour, minute):
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(timezone.utc)


def days(start):
    day = start
    while True:
        yield day
        day += timedelta(days=1)


def slots(case):
    zone = ZoneInfo(case["zone"])
    start = datetime.fromisoformat(case["from"]).astimezone(timezone.utc)
    rule = case["rule"]
    count = case["count"]
    found = []
    if rule["type"] == "Interval":
        step = timedelta(minutes=rule["minutes"])
        found = [start + k * step for k in range(count)]
    else:
        first = start.astimezone(zone).date() - timedelta(days=1)
        for day in days(first):
            if rule["type"] == "Weekly" and day.weekday() != rule["weekday"]:
                continue
            if rule["type"] == "Monthly":
                last = calendar.monthrange(day.year, day.month)[1]
                if day.day != min(rule["date"], last):
                    continue
            slot = wall_slot(zone, day, rule["hour"], rule["minute"])
            if slot >= start and (not found or slot > found[-1]):
                found.append(slot)
            if len(found) == count:
                break
    return [slot.astimezone(zone).isoformat() for slot in found]


def main():
    cases = json.load(sys.stdin)
    json.dump([slots(case) for case in cases], sys.stdout)


if __name__ == "__main__":
    main()
