"""The declared coercions, each against a reference that does not call it, and read back by PostgreSQL.

Each coercion is exact by its own definition: a double rounded half-even to the
column's scale, a decimal string as the number it spells, an ISO 8601 string
with an offset as that instant, an integer as its decimal digits. The references
compute the same with fractions and with what the generator itself made.
"""

import datetime as dt
import math
from decimal import Decimal
from fractions import Fraction

import bson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mongo_migration import contract
from mongo_migration.contract import Violation
from mongo_migration.documents import Conversion
from mongo_migration.mapping import Mapping


def half_even(value: float, scale: int) -> Fraction:
    """The reference: the double's exact value, rounded half-even to ``scale`` places, in fractions."""
    scaled = Fraction(value) * 10**scale
    whole = math.floor(scaled)
    rest = scaled - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2):
        whole += 1
    return Fraction(whole, 10**scale)


def fits(number: Fraction, precision: int, scale: int) -> bool:
    """The reference of numeric(p,s): at most s places, and below 10**(p-s)."""
    return (number * 10**scale).denominator == 1 and abs(number) < 10 ** (precision - scale)


@settings(max_examples=2000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 8), st.integers(1, 40))
def test_a_double_rounded_is_its_exact_value_rounded_half_even_to_the_scale(value, scale, digits):
    precision = scale + digits
    expected = half_even(value, scale)
    try:
        written = contract.double_rounded(precision, scale)(value)
    except Violation as violation:
        assert not fits(expected, precision, scale)
        assert f"the double {value!r} does not fit numeric({precision},{scale})" in str(violation)
        return
    assert fits(expected, precision, scale)
    assert Fraction(Decimal(written)) == expected
    assert not written.startswith("-0") or expected != 0  # numeric has no -0


def test_a_double_rounded_keeps_nan_and_refuses_an_infinity_and_ties_go_to_the_even_digit():
    write = contract.double_rounded(12, 2)
    assert [write(value) for value in (0.125, 0.375, 2.5, 0.1, -0.0)] == [
        "0.12",
        "0.38",
        "2.50",
        "0.10",
        "0.00",
    ]
    assert write(float("nan")) == "NaN"
    with pytest.raises(Violation, match="has no value in numeric"):
        write(float("-inf"))


decimal_texts = st.builds(
    lambda sign, whole, fraction, exponent: f"{sign}{whole}{fraction}{exponent}",
    st.sampled_from(["", "-", "+"]),
    st.integers(0, 10**20).map(str),
    st.sampled_from(["", "."]) | st.integers(0, 10**12).map(lambda n: f".{n}"),
    st.sampled_from([""]) | st.integers(-30, 30).map(lambda n: f"e{n}"),
)


@settings(max_examples=2000, deadline=None)
@given(decimal_texts, st.integers(0, 8), st.integers(1, 30))
def test_a_decimal_string_is_the_number_it_spells_or_a_violation_where_the_column_would_round_it(
    text, scale, digits
):
    precision = scale + digits
    mantissa, _, exponent = text.lower().partition("e")
    number = Fraction(mantissa) * Fraction(10) ** int(exponent or 0)  # the reference reading
    try:
        written = contract.decimal_string(f"numeric({precision},{scale})")(text)
    except Violation:
        assert not fits(number, precision, scale)
        return
    assert fits(number, precision, scale)
    assert Fraction(Decimal(written)) == number


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "1,000", "0x10", "1e", "NaN", "Infinity", "١٢", "1e131072", "0e-999999", "1.5e-16383"],
)
def test_a_string_that_is_no_plain_decimal_number_is_a_violation(text):
    with pytest.raises(Violation, match=r"not a decimal number|beyond PostgreSQL's numeric range"):
        contract.decimal_string("numeric")(text)


offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=offsets),
    st.sampled_from(["T", " "]),
    st.integers(0, 6),
    st.booleans(),
)
def test_an_iso_8601_string_with_an_offset_is_that_instant_as_postgresql_reads_it(
    pg_conn, moment, separator, places, colon
):
    moment = moment.replace(microsecond=moment.microsecond // 10 ** (6 - places) * 10 ** (6 - places))
    offset = moment.utcoffset()
    assume(offset.seconds % 60 == 0)
    minutes = int(offset.total_seconds()) // 60
    zone = "Z" if minutes == 0 and colon else f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}"
    if zone != "Z":
        zone += (":" if colon else "") + f"{abs(minutes) % 60:02d}"
    fraction = f".{moment.microsecond:06d}"[: places + 1] if places else ""
    text = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S") + fraction + zone
    if moment.year < 1000:
        text = f"{moment.year:04d}" + text[len(str(moment.year)) :]

    if abs(minutes) >= 16 * 60:  # PostgreSQL refuses such offsets: a violation, never a failed COPY
        with pytest.raises(Violation, match="has an offset PostgreSQL does not take"):
            contract.iso8601(text)
        return
    written = contract.iso8601(text)

    assert pg_conn.execute("SELECT %s::timestamptz", [written]).fetchone()[0] == moment


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T10:30:00",
        "2024-05-01",
        "2024-02-30T10:30:00Z",
        "2024-05-01T10:30:00.1234567Z",
        "yesterday",
    ],
)
def test_an_iso_8601_string_without_an_offset_or_beyond_microseconds_or_the_calendar_is_a_violation(text):
    with pytest.raises(Violation, match=r"is not an ISO 8601 date and time|is not a date and time"):
        contract.iso8601(text)


@settings(max_examples=500, deadline=None)
@given(st.integers(-(2**63), 2**63 - 1))
def test_an_integer_as_text_is_its_decimal_digits(value):
    written = contract.coercion_writer("digits", "text")(bson.int64.Int64(value))
    assert written.lstrip("-").isdigit() and int(written) == value


def test_coerced_values_are_counted_by_column_the_others_are_exact_and_one_that_cannot_be_is_set_aside():
    mapping = Mapping.model_validate(
        {
            "dag_id": "invoices",
            "source": {"database": "shop", "collection": "invoices"},
            "target": {"table": "invoices"},
            "columns": [
                {"name": "amount", "path": ["amount"], "type": "numeric(12,2)", "accepts": ["decimal"]}
                | {"coerce": {"double": "double_rounded", "string": "decimal_string"}},
                {
                    "name": "paid_at",
                    "path": ["paid_at"],
                    "type": "timestamptz",
                    "coerce": {"string": "iso8601"},
                },
            ],
        }
    )
    documents = [
        {"_id": 1, "amount": bson.decimal128.Decimal128("10.50"), "paid_at": dt.datetime(2024, 5, 1)},
        {"_id": 2, "amount": 10.505, "paid_at": "2024-05-01T12:00:00+02:00"},
        {"_id": 3, "amount": "7.25", "paid_at": None},
        {"_id": 4, "amount": "seven", "paid_at": None},
    ]
    conversion = Conversion(mapping)

    batch = conversion.rows(b"".join(bson.encode(document) for document in documents), page=0)

    rows = [line.split("\t")[1:3] for line in batch.rows.decode().splitlines()]
    assert rows == [
        ["10.50", "2024-05-01T00:00:00+00"],
        ["10.51", "2024-05-01T12:00:00+02:00"],  # the double 10.505 is 10.50500000000000078159…
        ["7.25", "\\N"],
    ]
    assert dict(conversion.coerced) == {"amount": 2, "paid_at": 1}
    [reject] = batch.rejects
    assert reject.column == "amount"
    assert reject.reason == (
        "amount (numeric(12,2), at amount): the string 'seven' is not a decimal number "
        "(coerce: decimal_string)"
    )
    assert reject.expected == "decimal, double, string"


def test_a_refused_pair_offers_the_coercion_that_would_take_it_only_where_it_would():
    assert contract.refusal("double", "numeric(12,2)").endswith("or declare coerce: {double: double_rounded}")
    assert "coerce" not in contract.refusal("double", "numeric")  # double_rounded needs a scale
    assert contract.refusal("date", "text").endswith("text holds: string, objectId")


def test_a_coercion_the_contract_does_not_define_for_the_pair_is_refused_naming_why():
    column = {"name": "amount", "path": ["amount"]}
    for declared, problem in [
        ({"type": "numeric", "coerce": {"double": "double_rounded"}}, "double_rounded needs numeric(p,s)"),
        (
            {"type": "numeric(12,2)", "coerce": {"decimal": "decimal_string"}},
            "decimal_string converts string",
        ),
        ({"type": "text", "coerce": {"string": "digits"}}, "digits converts int, long, not string"),
        ({"type": "bigint", "coerce": {"int": "digits"}}, "digits writes text, not bigint"),
        ({"type": "numeric(12,2)", "coerce": {"double": "round"}}, "'round' is not a coercion"),
        ({"type": "text", "coerce": {"int": "digits"}, "accepts": ["string"]}, None),
    ]:
        try:
            Mapping.model_validate(
                {"dag_id": "d", "source": {"database": "a", "collection": "b"}, "target": {"table": "t"}}
                | {"columns": [column | declared]}
            )
        except ValueError as error:
            assert problem and problem in str(error), (declared, str(error))
        else:
            assert problem is None, declared
