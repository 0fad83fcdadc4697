"""Reading untrusted input, the same way everywhere: ids, whole numbers, dates, NUL bytes.

Every view and form parses ids and dates through these helpers so that a value the database
cannot hold (an id past 64 bits, a date in year 1 or 9999, a NUL byte in text) is refused or
removed at the door instead of failing deep inside a query with a 500.
"""

import re
from datetime import date

from flask import Request
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter
from werkzeug.utils import cached_property

# The largest id a BIGINT column (PostgreSQL) or an INTEGER (SQLite) can hold.
MAX_ID = 2**63 - 1
# Work dates and weeks Crewclock accepts: wide enough for any real card, narrow enough that
# a week's arithmetic (previous week, Sunday, ...) never leaves the calendar.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2100, 12, 31)
DATE_RANGE_MESSAGE = "Pick a date between 2000-01-01 and 2100-12-31."

# str.isdigit() and int() accept other scripts' digits ("²", "١"); ids are ASCII only.
_ASCII_DIGITS = re.compile(r"[0-9]{1,20}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_int(value, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """A whole number written in ASCII digits, within [minimum, maximum]; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    else:
        text = value.strip() if isinstance(value, str) else ""
        if not _ASCII_DIGITS.fullmatch(text):
            return None
        number = int(text)
    return number if minimum <= number <= maximum else None


def parse_id(value) -> int | None:
    """A record id from a form, a query string or JSON: ASCII digits within 64 bits, or None."""
    return parse_int(value)


def parse_date(value) -> date | None:
    """A YYYY-MM-DD date between EARLIEST_DATE and LATEST_DATE, or None."""
    day, _problem = parse_date_checked(value)
    return day


def parse_date_checked(value) -> tuple[date | None, str | None]:
    """(the date, None), or (None, why not) for a malformed or out-of-range date."""
    text = value.strip() if isinstance(value, str) else ""
    if not _ISO_DATE.fullmatch(text):
        return None, "Pick a date."
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None, "Pick a date."
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        return None, DATE_RANGE_MESSAGE
    return day, None


class IdConverter(IntegerConverter):
    """`<int:...>` in URLs: ASCII digits only (other scripts' digits match no route), and an
    id past MAX_ID is Not Found for every method (a converter's ValidationError would make
    werkzeug answer 405 when another method shares the path)."""

    regex = r"[0-9]+"

    def __init__(self, map, fixed_digits=0, min=None, max=None, signed=False):  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)
        self.regex = r"[0-9]+"

    def to_python(self, value: str) -> int:
        if len(value) > 19 or int(value) > MAX_ID:
            raise NotFound()
        return super().to_python(value)


def _without_nul(pairs) -> ImmutableMultiDict:
    return ImmutableMultiDict(
        [(key.replace("\x00", ""), value.replace("\x00", "")) for key, value in pairs]
    )


class CleanRequest(Request):
    """The app's request: NUL bytes are removed from every query and form field as they are
    parsed. Nobody types one, no text column can store one (PostgreSQL refuses the whole
    statement), and doing it here covers every form and search box at once."""

    @cached_property
    def args(self) -> MultiDict:
        return _without_nul(Request.args.fget(self).items(multi=True))

    def _load_form_data(self) -> None:
        super()._load_form_data()
        form = self.__dict__.get("form")
        if form is not None:
            self.__dict__["form"] = _without_nul(form.items(multi=True))
