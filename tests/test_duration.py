"""The one duration parser and formatter (legible._duration): forms, refusals, the rule, round trips."""

from __future__ import annotations

import pytest

from legible._duration import UNITS_S, format_ms, format_seconds, parse_duration
from legible._errors import UsageError
from legible.config import CheckConfig


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("30s", 30),
        ("2m", 120),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1w", 604800),
        ("3.4 ms", 0.0034),
        ("2m05s", 125),
        ("500us", 0.0005),
        (".5s", 0.5),
        ("45", 45),
    ],
)
def test_parse_duration_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "m5", "-3s", "5m junk", "nan", "inf", "1h-30m", "ms"])
def test_parse_duration_refuses_and_names_the_flag(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_duration(text, what="--since")
    assert info.value.message.startswith("--since: ") and "1h30m" in info.value.hint


def test_the_caller_says_what_a_bare_number_means() -> None:
    assert parse_duration("45") == 45
    assert parse_duration("800", bare="ms") == pytest.approx(0.8)
    with pytest.raises(UsageError, match="needs a unit"):
        parse_duration("800", what="max", bare=None)
    assert parse_duration("800ms", bare=None) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "-"),
        (0, "0 ms"),
        (0.42, "0.42 ms"),
        (0.4, "0.4 ms"),
        (3.4, "3.4 ms"),
        (3.44, "3.4 ms"),
        (4.0, "4 ms"),
        (9.96, "10 ms"),
        (87.2, "87 ms"),
        (999.6, "1 s"),
        (1000, "1 s"),
        (1234.5, "1.23 s"),
        (2300, "2.3 s"),
        (12345, "12.3 s"),
        (59_960, "1m"),
        (90_000, "1m30s"),
        (125_000, "2m05s"),
        (750_000, "12m"),
        (5_400_000, "1h30m"),
        (7_200_000, "2h"),
        (86_400_000, "1d"),
        (97_200_000, "1d3h"),
        (-3.4, "-3.4 ms"),
    ],
)
def test_format_ms_rule(ms: float | None, text: str) -> None:
    assert format_ms(ms) == text


def test_format_seconds_is_format_ms_in_seconds() -> None:
    assert format_seconds(30) == "30 s" and format_seconds(90) == "1m30s" and format_seconds(None) == "-"


# milliseconds from 0.01 ms to 9 days on a log scale, plus whole-unit values
_SWEEP = [round(10 ** (e / 20) * 0.01, 6) for e in range(0, 180)] + [1, 10, 60_000, 3_600_000, 86_400_000]


@pytest.mark.parametrize("ms", _SWEEP)
def test_every_printed_duration_parses_back_to_itself(ms: float) -> None:
    text = format_ms(ms)
    back = parse_duration(text, bare=None) * 1000
    assert format_ms(back) == text  # printing what was parsed prints the same text
    assert abs(back - ms) <= _last_digit_ms(text), (ms, text, back)  # and it is the value, as rounded


def _last_digit_ms(text: str) -> float:
    """What the last printed digit of ``text`` is worth, in ms: half of it for ``1.23 s``, all of it for ``12m``."""
    number, _, unit = text.partition(" ")
    if unit:  # "1.23 s", "87 ms": rounded to half of the last decimal
        decimals = len(number.partition(".")[2])
        return 0.5 * 10**-decimals * UNITS_S[unit] * 1000
    return UNITS_S[text.rstrip("0123456789")[-1]] * 1000  # "12m", "1h30m", "1d": smaller units dropped


@pytest.mark.parametrize("text", ["0.42 ms", "3.4 ms", "87 ms", "1.23 s", "12.3 s", "1m30s", "12m", "1h30m", "1d3h"])
def test_every_canonical_text_round_trips(text: str) -> None:
    assert format_ms(parse_duration(text) * 1000) == text


def test_config_accepts_the_command_line_forms() -> None:
    spec = CheckConfig.model_validate({"span": {"max": "1h30m", "since": "1d"}})
    assert spec.span is not None and spec.span.max == "1h30m"
    for bad in ("800", "5x", "1h-3m"):
        with pytest.raises(ValueError, match="is not a duration like"):
            CheckConfig.model_validate({"startup": {"max": bad}})
