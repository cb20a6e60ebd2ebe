"""SQL92 selector semantics, table-driven against RocketMQ 4.9.8's filter module behaviour."""

from __future__ import annotations

import pytest

from rocketpy.broker.filter.sql92 import (
    NESTING_MAX,
    EvaluationError,
    SelectorError,
    compile_selector,
    tokenize,
)

ERR = "error"      # evaluation fails: the broker counts the message as not matching

# (expression, properties, three-valued result or ERR)
SEMANTICS = [
    # numbers: strings convert to the literal's Java type
    ("a = 1", {"a": "1"}, True),
    ("a = 1", {"a": "2"}, False),
    ("a = 1", {"a": "x"}, ERR),
    ("a = 1", {"a": "1.0"}, ERR),              # Integer.valueOf("1.0") fails
    ("a = 1.5", {"a": "1.5"}, True),
    ("a > 5", {"a": "10"}, True),
    ("a > 5", {"a": "10.5"}, ERR),              # RocketMQ quirk: compare with 5.0 instead
    ("a > 5.0", {"a": "10.5"}, True),
    ("a > 3000000000", {"a": "3000000001"}, True),   # a long literal parses the property as long
    ("a > 5", {"a": "3000000001"}, ERR),        # ...an int literal as int
    ("a >= 5", {"a": "5"}, True),
    ("a < 5", {"a": "-7"}, True),
    ("a <= -5", {"a": "-5"}, True),
    ("a > -3", {"a": "-2"}, True),
    ("a > 3.1E10", {"a": "3.2E10"}, True),
    ("a > b", {"a": "2", "b": "1.5"}, True),    # two strings compare as doubles
    ("a > b", {"a": "x", "b": "1.5"}, ERR),
    ("a <> 1", {"a": "2"}, True),
    ("a <> 1", {"a": "1"}, False),
    ("1 = 1", {}, True),
    ("2 > 1.5", {}, True),
    ("1 = TRUE", {}, False),
    ("10L = 10", {}, True),
    # strings
    ("a = 'x'", {"a": "x"}, True),
    ("a = 'x'", {"a": "y"}, False),
    ("a <> 'x'", {"a": "y"}, True),
    ("a = 'it''s'", {"a": "it's"}, True),
    ("TAGS = 'TagA'", {"TAGS": "TagA"}, True),
    ("a = b", {"a": "q", "b": "q"}, True),
    # booleans
    ("a = TRUE", {"a": "true"}, True),
    ("a = TRUE", {"a": "yes"}, False),
    ("a", {"a": "true"}, False),                # a string property is never a boolean
    ("TRUE", {}, True),
    ("FALSE", {}, False),
    ("NULL", {}, None),
    # nulls: a missing property makes comparisons NULL (no match)
    ("a = 1", {}, None),
    ("a <> 1", {}, None),
    ("a > 1", {}, None),
    ("a = 'x'", {}, None),
    ("a IS NULL", {}, True),
    ("a IS NULL", {"a": "1"}, False),
    ("a IS NOT NULL", {"a": "1"}, True),
    ("a IS NOT NULL", {}, False),
    ("-a < 0", {"a": "3"}, None),               # negating a string is NULL
    # three-valued AND / OR / NOT
    ("a = 1 AND b = 2", {"a": "1", "b": "2"}, True),
    ("a = 1 AND b = 2", {"a": "1"}, None),
    ("a = 1 AND b = 2", {"a": "0"}, False),     # FALSE AND NULL = FALSE
    ("a = 1 OR b = 2", {"a": "1"}, True),       # TRUE OR NULL = TRUE
    ("a = 2 OR b = 2", {"a": "1"}, None),
    ("a = 2 OR b = 2", {"a": "1", "b": "3"}, False),
    ("NOT a = 1", {"a": "1"}, False),           # parses as (NOT a) = 1, as the JMS grammar does
    ("NOT (a = 1)", {"a": "2"}, True),
    ("NOT (a = 1)", {}, None),
    ("a = 1 AND (b = 'x' OR c IS NULL)", {"a": "1", "b": "y"}, True),
    ("a = 0 AND b > 1", {"a": "1", "b": "x"}, False),   # short-circuit skips the failing term
    ("a = 1 AND b > 1", {"a": "1", "b": "x"}, ERR),
    # BETWEEN
    ("a BETWEEN 1 AND 3", {"a": "2"}, True),
    ("a BETWEEN 1 AND 3", {"a": "3"}, True),
    ("a BETWEEN 1 AND 3", {"a": "4"}, False),
    ("a BETWEEN 1 AND 3", {}, None),
    ("a NOT BETWEEN 1 AND 3", {"a": "4"}, True),
    ("a NOT BETWEEN 1 AND 3", {"a": "2"}, False),
    ("a between 1.5 and 2.5", {"a": "2.0"}, True),
    # IN
    ("TAGS IN ('a', 'b')", {"TAGS": "b"}, True),
    ("TAGS IN ('a', 'b')", {"TAGS": "c"}, False),
    ("TAGS IN ('a', 'b')", {}, None),
    ("TAGS NOT IN ('a', 'b')", {"TAGS": "c"}, True),
    ("TAGS NOT IN ('a', 'b')", {"TAGS": "a"}, False),
    ("TAGS NOT IN ('a', 'b')", {}, None),
    ("k IN ('a b', 'c''d')", {"k": "c'd"}, True),
    # lexical: case, comments, whitespace
    ("a = 1 and B = 2", {"a": "1", "B": "2"}, True),
    ("a = 1 and b = 2", {"a": "1", "B": "2"}, None),     # property names keep their case
    ("a /* block */ = 1 -- line\n", {"a": "1"}, True),
    ("\ta\n=\r1", {"a": "1"}, True),
    ("$x_1 = 1", {"$x_1": "1"}, True),
]


@pytest.mark.parametrize(("text", "props", "expected"), SEMANTICS)
def test_semantics(text: str, props: dict[str, str], expected: object) -> None:
    selector = compile_selector(text)
    if expected == ERR:
        with pytest.raises(EvaluationError):
            selector.evaluate(props)
        assert selector.matches(props) is False
        return
    assert selector.evaluate(props) is expected
    assert selector.matches(props) is (expected is True)


# (expression, column of the offending token, its text)
REFUSED = [
    ("", 1, ""),
    ("a >", 4, "<end>"),
    ("a @ b", 3, "@"),
    ("a = NULL", 3, "="),
    ("NULL = a", 6, "="),
    ("'x' > 1", 5, ">"),
    ("a > 'x'", 3, ">"),
    ("a > TRUE", 3, ">"),
    ("a > b > 2", 7, ">"),                      # a boolean under >
    ("5", 1, "5"),
    ("'x'", 1, "'x'"),
    ("-a", 1, "-"),
    ("a IN (1, 2)", 7, "1"),
    ("1 IN ('x')", 3, "IN"),
    ("a BETWEEN 3 AND 1", 3, "BETWEEN"),
    ("a BETWEEN NULL AND 1", 3, "BETWEEN"),
    ("a > 0.0", 5, "0.0"),                      # RocketMQ refuses floats below Double.MIN_VALUE
    ("a > 9223372036854775808", 5, "9223372036854775808"),
    ("TRUE = 1", 6, "="),
    ("a IS 5", 6, "5"),
    ("a = 1)", 6, ")"),
    ("(a = 1", 7, "<end>"),
    ("a == 1", 4, "="),
    ("a = 'open", 5, "'"),
    ("a = 007", 6, "0"),                        # "0" is a whole decimal literal
    ("NOT 5", 5, "5"),
    ("a CONTAINS 'x'", 3, "CONTAINS"),          # 5.x syntax; not in the 4.9 grammar
]


@pytest.mark.parametrize(("text", "column", "token"), REFUSED)
def test_refused_with_position_and_token(text: str, column: int, token: str) -> None:
    with pytest.raises(SelectorError) as info:
        compile_selector(text)
    assert info.value.column == column, str(info.value)
    assert info.value.token == token, str(info.value)
    assert f"column {column}" in str(info.value)


def test_nesting_is_bounded() -> None:
    ok = "(" * NESTING_MAX + "a = 1" + ")" * NESTING_MAX
    assert compile_selector(ok).matches({"a": "1"})
    with pytest.raises(SelectorError, match="nests deeper"):
        compile_selector("(" * (NESTING_MAX + 1) + "a = 1" + ")" * (NESTING_MAX + 1))
    with pytest.raises(SelectorError, match="nests deeper"):
        compile_selector("NOT " * (NESTING_MAX + 1) + "TRUE")


def test_long_and_chain_evaluates_without_deep_recursion() -> None:
    text = " AND ".join(f"p{i} = {i}" for i in range(1000))
    props = {f"p{i}": str(i) for i in range(1000)}
    assert compile_selector(text).matches(props)
    props["p999"] = "0"
    assert not compile_selector(text).matches(props)


def test_expression_length_is_bounded() -> None:
    with pytest.raises(SelectorError, match="characters long"):
        compile_selector("a = 1 OR " * 5000 + "a = 1")


def test_tokenizer_longest_match_and_keywords() -> None:
    kinds = [t.kind for t in tokenize("a<>1 AND b<=2.5e3 OR NOTx >= .5 isnull")]
    assert kinds == ["ID", "<>", "DECIMAL", "AND", "ID", "<=", "FLOAT", "OR", "ID", ">=", "FLOAT", "ID", "EOF"]
