"""The server's log formatter writes what logging's own formatter writes, at a lower cost."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from server.cli import LOG_FORMAT, LogFormatter


def _record(created: float, message: str) -> logging.LogRecord:
    record = logging.LogRecord("recoup_api.access", logging.INFO, __file__, 1, message, (), None)
    # What LogRecord sets from the clock, for this instant instead.
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    return record


# Instants from 1970 to 2100, some within one second of each other, in any order.
instants = st.lists(
    st.tuples(st.integers(0, 4_102_444_800), st.floats(0, 0.9999)).map(sum),
    min_size=1,
    max_size=30,
)


@given(instants, st.text(max_size=40))
def test_it_writes_what_the_standard_formatter_writes(times: list[float], message: str):
    ours, standard = LogFormatter(), logging.Formatter(LOG_FORMAT)
    for created in times + sorted(times):  # back and forth across seconds, and within one
        record = _record(created, message)
        assert ours.format(record) == standard.format(record)


def test_an_explicit_date_format_is_honoured():
    record = _record(1_800_000_000.25, "x")
    assert LogFormatter().formatTime(record, "%Y") == logging.Formatter().formatTime(record, "%Y")
