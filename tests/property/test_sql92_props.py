"""Properties of the SQL92 selector: no input makes the parser raise anything but SelectorError,
and no message makes `matches` raise at all."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rocketpy.broker.filter.sql92 import SelectorError, compile_selector

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = st.sampled_from(["a", "b", "TAGS", "KEYS", "x_1"])
LITERALS = st.one_of(
    st.integers(-(1 << 64), 1 << 64).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(alphabet="ab' ", max_size=5).map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.sampled_from(["TRUE", "FALSE", "NULL", "1L", ".5", "5.", "1e3"]),
)
WORDS = st.sampled_from(["=", "<>", "<", "<=", ">", ">=", "AND", "OR", "NOT", "BETWEEN", "IN", "IS", "NULL",
                         "(", ")", ",", "+", "-", "--", "/*", "*/", "'", "\n"])
PROPERTY_VALUES = st.one_of(st.text(max_size=8), st.integers().map(str),
                            st.floats().map(str), st.sampled_from(["true", "TRUE", "NaN", "Infinity", " 1 "]))
PROPS = st.dictionaries(NAMES, PROPERTY_VALUES, max_size=5)


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    """Mostly well-formed expressions of the grammar, with operand types mixed at random."""
    if depth > 3 or draw(st.booleans()):
        return draw(st.one_of(NAMES, LITERALS))
    kind = draw(st.integers(0, 6))
    left = draw(expressions(depth + 1))
    right = draw(expressions(depth + 1))
    if kind == 0:
        return f"{left} {draw(st.sampled_from(['=', '<>', '<', '<=', '>', '>=']))} {right}"
    if kind == 1:
        return f"({left}) {draw(st.sampled_from(['AND', 'OR']))} ({right})"
    if kind == 2:
        return f"NOT ({left})"
    if kind == 3:
        return f"{left} {draw(st.sampled_from(['BETWEEN', 'NOT BETWEEN']))} {right} AND {draw(LITERALS)}"
    if kind == 4:
        values = draw(st.lists(LITERALS, min_size=1, max_size=3))
        return f"{left} {draw(st.sampled_from(['IN', 'NOT IN']))} ({', '.join(values)})"
    if kind == 5:
        return f"{left} IS {draw(st.sampled_from(['NULL', 'NOT NULL']))}"
    return f"-{left}"


def _compile_or_none(text: str):  # type: ignore[no-untyped-def]
    try:
        return compile_selector(text)
    except SelectorError as exc:
        assert "invalid SQL92 expression" in str(exc)
        return None


@SETTINGS
@given(st.text(max_size=60))
def test_arbitrary_text_raises_only_selector_error(text: str) -> None:
    _compile_or_none(text)


@SETTINGS
@given(st.lists(st.one_of(WORDS, NAMES, LITERALS), max_size=25).map(" ".join))
def test_token_soup_raises_only_selector_error(text: str) -> None:
    _compile_or_none(text)


@SETTINGS
@given(expressions(), PROPS)
def test_matches_never_raises(text: str, props: dict[str, str]) -> None:
    selector = _compile_or_none(text)
    if selector is not None:
        assert selector.matches(props) in (True, False)


@SETTINGS
@given(expressions(), PROPS)
def test_not_is_the_three_valued_complement(text: str, props: dict[str, str]) -> None:
    """NOT (e) is TRUE exactly when e is FALSE, for every e that compiles and evaluates."""
    selector = _compile_or_none(text)
    negated = _compile_or_none(f"NOT ({text})")
    if selector is None or negated is None:
        return
    try:
        value = selector.evaluate(props)
    except Exception:  # noqa: BLE001 - evaluation failures are covered by matches()
        return
    assert negated.evaluate(props) == (None if value is None else not value)
