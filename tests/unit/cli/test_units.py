"""Docker's human units (go-units) and Go time formatting, as the CLI prints and parses them."""

from __future__ import annotations

import datetime as dt

import pytest

from dockyard.cli.units import (bytes_size, from_human_size, go_duration, go_time_string,
                                human_duration, human_size, human_size_with_precision,
                                mem_swap_bytes, parse_rfc3339, ram_in_bytes)


@pytest.mark.parametrize("size, text", [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (1024, "1.024kB"), (1986019, "1.986MB"),
    (1e6, "1MB"), (1048576, "1.049MB"), (2.5e9, "2.5GB"), (3.42e12, "3.42TB"),
    (1e24, "1YB"), (1e27, "1000YB"),
])
def test_human_size_four_significant_digits(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize("size, text", [
    (1986019, "1.99MB"), (0, "0B"), (123456789, "123MB"), (999999, "1e+03kB"),
    (5_000_000_000, "5GB"), (4096, "4.1kB"),
])
def test_human_size_three_digits_as_in_tables(size, text):
    assert human_size_with_precision(size, 3) == text


@pytest.mark.parametrize("size, text", [
    (0, "0B"), (1024, "1KiB"), (1024 * 1024, "1MiB"), (25_276_284_928, "23.54GiB"),
])
def test_bytes_size_binary(size, text):
    assert bytes_size(size) == text


@pytest.mark.parametrize("text, value", [
    ("32", 32), ("32b", 32), ("32B", 32), ("32k", 32 * 1024), ("32K", 32 * 1024),
    ("32kb", 32 * 1024), ("32Kib", 32 * 1024), ("32Mb", 32 * 1024 ** 2),
    ("64m", 64 * 1024 ** 2), ("32Gb", 32 * 1024 ** 3), ("32Tb", 32 * 1024 ** 4),
    ("32Pb", 32 * 1024 ** 5), ("32PB", 32 * 1024 ** 5), ("32P", 32 * 1024 ** 5),
    ("32.3", 32), ("32.3 k", int(32.3 * 1024)), ("0.3m", int(0.3 * 1024 ** 2)),
])
def test_ram_in_bytes(text, value):
    assert ram_in_bytes(text) == value


@pytest.mark.parametrize("text, message", [
    ("", "invalid size: ''"), ("hello", "invalid size: 'hello'"),
    ("-32", "invalid size: '-32'"), ("10x", "invalid suffix: 'x'"),
    ("32mbi", "invalid suffix: 'mbi'"), ("32bm", "invalid suffix: 'bm'"),
    ("32kbytes", "invalid suffix: 'kbytes'"),
])
def test_ram_in_bytes_errors_read_like_go_units(text, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        ram_in_bytes(text)


def test_decimal_sizes_and_unlimited_swap():
    assert from_human_size("1k") == 1000
    assert from_human_size("2.5MB") == 2_500_000
    assert mem_swap_bytes("-1") == -1
    assert mem_swap_bytes("128m") == 128 * 1024 ** 2


@pytest.mark.parametrize("seconds, text", [
    (0, "Less than a second"), (0.9, "Less than a second"), (1, "1 second"),
    (2, "2 seconds"), (59, "59 seconds"), (60, "About a minute"), (119, "About a minute"),
    (120, "2 minutes"), (59 * 60, "59 minutes"), (3600, "About an hour"),
    (3600 * 1.4, "About an hour"), (3600 * 1.6, "2 hours"), (47 * 3600, "47 hours"),
    (48 * 3600, "2 days"), (13 * 86400, "13 days"), (14 * 86400, "2 weeks"),
    (59 * 86400, "8 weeks"), (60 * 86400, "2 months"), (729 * 86400, "24 months"),
    (730 * 86400, "2 years"), (3 * 365 * 86400 + 1, "3 years"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_go_time_string_layout():
    utc = dt.timezone.utc
    assert go_time_string(1795828206, utc) == "2026-11-28 01:10:06 +0000 UTC"
    east = dt.timezone(dt.timedelta(hours=5, minutes=30))
    assert go_time_string(0, east) == "1970-01-01 05:30:00 +0530 +0530"


def test_rfc3339_and_durations():
    when = parse_rfc3339("2026-11-28T01:11:12.894536618Z")
    assert when == dt.datetime(2026, 11, 28, 1, 11, 12, 894536, tzinfo=dt.timezone.utc)
    assert parse_rfc3339("0001-01-01T00:00:00Z") is None
    assert go_duration("1m30s") == 90
    assert go_duration("500ms") == 0.5
    assert go_duration("10") == 10
    with pytest.raises(ValueError, match="invalid duration"):
        go_duration("5 minutes")
