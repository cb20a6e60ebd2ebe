"""RocketMQ's SQL92 message selector (4.9.x `filter` module), parsed and evaluated in pure Python.

A consumer subscribing with expressionType SQL92 gives a boolean expression over
the message's properties (user properties and the system ones the CommitLog
record carries, such as TAGS and KEYS). The grammar is RocketMQ 4.9.8's
`SelectorParser.jj` (a JMS selector subset); 4.9.x has no CONTAINS / STARTSWITH
/ ENDSWITH (they came with 5.x), so neither do we::

    selector    := or
    or          := and ( OR and )*
    and         := equality ( AND equality )*
    equality    := comparison ( '=' comparison | '<>' comparison | IS NULL | IS NOT NULL )*
    comparison  := unary ( ('>'|'>='|'<'|'<=') unary | [NOT] BETWEEN unary AND unary
                         | [NOT] IN '(' string (',' string)* ')' )*
    unary       := '+' unary | '-' unary | NOT unary | primary
    primary     := literal | identifier | '(' or ')'
    literal     := 'string' | decimal[L] | float | TRUE | FALSE | NULL

Keywords and identifiers are case-insensitive in the lexer (identifiers keep
their case for the property lookup); `--` line and `/* */` block comments are
skipped. The value semantics are RocketMQ's, quirks included, because a
consumer moving between brokers must see the same messages:

- three-valued logic: a missing property is NULL; any comparison with NULL is
  NULL; AND/OR follow SQL (NULL AND FALSE = FALSE, NULL OR TRUE = TRUE); a
  message matches only when the whole expression is TRUE.
- properties are strings; compared with a number literal they are converted to
  the literal's Java type (`Integer.valueOf`, `Long.valueOf`, `Double.valueOf`);
  a string that does not convert makes the evaluation fail, which the broker
  counts as no match (so `a > 5` does not match a='10.5', while `a > 5.0` does).
  Two strings under < <= > >= are compared as doubles.
- `x IN (...)` is NULL unless x is a string property; a bare property used as a
  boolean is TRUE only if it is a boolean (never, for string properties).
- parse-time refusals as RocketMQ's: NULL in `=` / `<>`, non-numeric constants
  in < <= > >= and BETWEEN, BETWEEN bounds in the wrong order, IN on anything but
  a property, a top-level expression that is not boolean, a float literal that
  is 0 or below Double.MIN_VALUE (so `a > 0.0` is refused: write `a > 0`).

`compile_selector(text)` returns a `Selector` (or raises `SelectorError` with the
column and the token); `Selector.matches(properties)` never raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rocketpy import limits
from rocketpy.errors import RocketpyError

EXPRESSION_LENGTH_MAX = limits.SQL92_EXPRESSION_LENGTH_MAX
TREE_DEPTH_MAX = limits.SQL92_TREE_DEPTH_MAX
NESTING_MAX = limits.SQL92_NESTING_DEPTH_MAX

INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
DOUBLE_MAX = 1.7976931348623157e308
DOUBLE_MIN_POSITIVE = 5e-324           # Java's Double.MIN_VALUE


class SelectorError(RocketpyError):
    """An SQL92 expression that does not parse, or that RocketMQ refuses when it builds it."""

    def __init__(self, message: str, column: int | None = None, token: str | None = None) -> None:
        self.column = column
        self.token = token
        where = f" at column {column}" if column is not None else ""
        near = f" near {token!r}" if token is not None else ""
        super().__init__(f"invalid SQL92 expression{where}{near}: {message}")


class EvaluationError(Exception):
    """Evaluation failed (a property that does not convert); the message does not match."""


# --- values ------------------------------------------------------------------------------------
# Java's boxed types, kept apart because the conversions depend on them:
# Integer -> JInt, Long -> int, Double -> float, Boolean -> bool, String -> str, null -> None.


class JInt(int):
    """A Java Integer (literals in int range); plain Python int stands for a Java Long."""

    __slots__ = ()


Value = bool | int | float | str | None


def _wrap_int(v: int) -> int:
    return ((v - INT_MIN) & 0xFFFFFFFF) + INT_MIN


def _wrap_long(v: int) -> int:
    return ((v - LONG_MIN) & 0xFFFFFFFFFFFFFFFF) + LONG_MIN


_JAVA_INT_TEXT = re.compile(r"[+-]?[0-9]+\Z")
_JAVA_DOUBLE_TEXT = re.compile(
    r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?)\Z")


def _java_int(text: str, lo: int, hi: int) -> int:
    if not _JAVA_INT_TEXT.match(text):
        raise EvaluationError(f"{text!r} is not an integer")
    v = int(text)
    if not lo <= v <= hi:
        raise EvaluationError(f"{text!r} is out of range")
    return v


def _java_double(text: str) -> float:
    s = text.strip(" \t\n\r\f\v\0\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x11\x12\x13\x14\x15\x16"
                   "\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f")
    if not _JAVA_DOUBLE_TEXT.match(s):
        raise EvaluationError(f"{text!r} is not a number")
    if s[-1] in "fFdD" and not s.endswith("Infinity"):
        s = s[:-1]
    return float(s.replace("Infinity", "inf").replace("NaN", "nan"))


def _double_compare(a: float, b: float) -> int:
    """Double.compareTo: NaN above everything and equal to itself, -0.0 below 0.0."""
    if a < b:
        return -1
    if a > b:
        return 1
    an, bn = math.isnan(a), math.isnan(b)
    if an or bn:
        return 0 if an and bn else (1 if an else -1)
    sa, sb = math.copysign(1.0, a), math.copysign(1.0, b)
    return 0 if sa == sb else (-1 if sa < sb else 1)


def _cmp_same(a: Value, b: Value) -> int:
    if isinstance(a, float):
        assert isinstance(b, float)
        return _double_compare(a, b)
    return (a > b) - (a < b)  # type: ignore[operator]


def _compare(lv: Value, rv: Value) -> int:
    """ComparisonExpression.__compare with convertStringExpressions on (RocketMQ always sets it)."""
    lc, rc = type(lv), type(rv)
    if lc is not rc:
        if lc is bool:
            if rc is str:      # RocketMQ casts the Boolean to String here and fails
                raise EvaluationError("a boolean cannot be compared with a string")
            return -1
        if lc is JInt:
            if rc is int:
                lv = int(lv)  # type: ignore[arg-type]
            elif rc is float:
                lv = float(lv)  # type: ignore[arg-type]
            elif rc is str:
                rv = JInt(_java_int(rv, INT_MIN, INT_MAX))  # type: ignore[arg-type]
            else:
                return -1
        elif lc is int:
            if rc is JInt:
                rv = int(rv)  # type: ignore[arg-type]
            elif rc is float:
                lv = float(lv)  # type: ignore[arg-type]
            elif rc is str:
                rv = _java_int(rv, LONG_MIN, LONG_MAX)  # type: ignore[arg-type]
            else:
                return -1
        elif lc is float:
            if rc is JInt or rc is int:
                rv = float(rv)  # type: ignore[arg-type]
            elif rc is str:
                rv = _java_double(rv)  # type: ignore[arg-type]
            else:
                return -1
        elif lc is str:
            assert isinstance(lv, str)
            if rc is bool:
                lv = lv.lower() == "true"
            elif rc is JInt:
                lv = JInt(_java_int(lv, INT_MIN, INT_MAX))
            elif rc is int:
                lv = _java_int(lv, LONG_MIN, LONG_MAX)
            elif rc is float:
                lv = _java_double(lv)
            else:
                return -1
        else:
            return -1
    return _cmp_same(lv, rv)


def _java_equals(a: Value, b: Value) -> bool:
    return type(a) is type(b) and a == b


# --- the expression tree ------------------------------------------------------------------------

Props = Mapping[str, str]


class Node:
    """An expression; `evaluate` returns a Value or raises EvaluationError."""

    __slots__ = ("depth",)
    is_boolean = False        # RocketMQ's BooleanExpression
    depth: int

    def evaluate(self, props: Props) -> Value:
        raise NotImplementedError


class Constant(Node):
    __slots__ = ("value",)

    def __init__(self, value: Value) -> None:
        self.value = value
        self.depth = 1

    @property
    def is_boolean(self) -> bool:  # type: ignore[override]
        return self.value is None or type(self.value) is bool

    def evaluate(self, props: Props) -> Value:
        return self.value

    def __repr__(self) -> str:
        v = self.value
        if v is None:
            return "NULL"
        if type(v) is bool:
            return "TRUE" if v else "FALSE"
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        return repr(v)


class Property(Node):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name
        self.depth = 1

    def evaluate(self, props: Props) -> Value:
        return props.get(self.name)

    def __repr__(self) -> str:
        return self.name


class _Unary(Node):
    __slots__ = ("operand",)

    def __init__(self, operand: Node) -> None:
        self.operand = operand
        self.depth = operand.depth + 1


class Negate(_Unary):
    __slots__ = ()

    def evaluate(self, props: Props) -> Value:
        v = self.operand.evaluate(props)
        if type(v) is JInt:
            return JInt(_wrap_int(-v))
        if type(v) is int:
            return _wrap_long(-v)
        if type(v) is float:
            return -v
        return None


class Not(_Unary):
    __slots__ = ()
    is_boolean = True

    def evaluate(self, props: Props) -> Value:
        v = self.operand.evaluate(props)
        if v is None:
            return None
        return not v


class BooleanCast(_Unary):
    """A property used where a boolean is expected: TRUE only if its value is a boolean TRUE."""

    __slots__ = ()
    is_boolean = True

    def evaluate(self, props: Props) -> Value:
        v = self.operand.evaluate(props)
        if v is None:
            return None
        return v is True


class In(_Unary):
    __slots__ = ("values", "negated")
    is_boolean = True

    def __init__(self, operand: Node, values: list[str], negated: bool) -> None:
        super().__init__(operand)
        self.values = frozenset(values)
        self.negated = negated

    def evaluate(self, props: Props) -> Value:
        v = self.operand.evaluate(props)
        if type(v) is not str:
            return None
        return (v in self.values) != self.negated


class Logic(Node):
    """A flattened AND / OR chain (left to right, as RocketMQ's nested binary nodes evaluate)."""

    __slots__ = ("terms", "is_and")
    is_boolean = True

    def __init__(self, terms: list[Node], is_and: bool) -> None:
        self.terms = terms
        self.is_and = is_and
        self.depth = 1 + max(t.depth for t in terms)

    def evaluate(self, props: Props) -> Value:
        stop = not self.is_and          # AND stops at FALSE, OR at TRUE
        unknown = False
        for term in self.terms:
            v = term.evaluate(props)
            if v is None:
                unknown = True
            elif v is stop:
                return stop
        return None if unknown else self.is_and


class Equal(Node):
    __slots__ = ("left", "right")
    is_boolean = True

    def __init__(self, left: Node, right: Node) -> None:
        self.left, self.right = left, right
        self.depth = 1 + max(left.depth, right.depth)

    def evaluate(self, props: Props) -> Value:
        lv = self.left.evaluate(props)
        rv = self.right.evaluate(props)
        if lv is None or rv is None:
            if lv is None and rv is None:
                return True
            return None if lv is None else False
        if _java_equals(lv, rv):
            return True
        return _compare(lv, rv) == 0


_ORDER: dict[str, Callable[[int], bool]] = {
    ">": lambda c: c > 0, ">=": lambda c: c >= 0, "<": lambda c: c < 0, "<=": lambda c: c <= 0,
}


class Order(Node):
    __slots__ = ("left", "right", "op", "test")
    is_boolean = True

    def __init__(self, left: Node, op: str, right: Node) -> None:
        self.left, self.right, self.op = left, right, op
        self.test = _ORDER[op]
        self.depth = 1 + max(left.depth, right.depth)

    def evaluate(self, props: Props) -> Value:
        lv = self.left.evaluate(props)
        if lv is None:
            return None
        rv = self.right.evaluate(props)
        if rv is None:
            return None
        if type(lv) is str and type(rv) is str:
            lv, rv = _java_double(lv), _java_double(rv)
        return self.test(_compare(lv, rv))


# --- lexer ------------------------------------------------------------------------------------

_KEYWORDS = frozenset({"NOT", "AND", "OR", "BETWEEN", "IN", "TRUE", "FALSE", "NULL", "IS"})
_LEX_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("SKIP", re.compile(r"[ \t\n\r\f]+|--[^\n\r]*(?:\r\n|\n|\r)|/\*[^*]*\*+(?:[^*/][^*]*\*+)*/")),
    ("FLOAT", re.compile(r"[0-9]+\.[0-9]*(?:E[+-]?[0-9]+)?|\.[0-9]+(?:E[+-]?[0-9]+)?|[0-9]+E[+-]?[0-9]+",
                         re.IGNORECASE)),
    ("DECIMAL", re.compile(r"0|[1-9][0-9]*L?", re.IGNORECASE)),
    ("STRING", re.compile(r"'(?:''|[^'])*'")),
    ("ID", re.compile(r"[a-z_$][a-z0-9_$]*", re.IGNORECASE)),
    ("OP", re.compile(r"<>|<=|>=|[=<>(),+-]")),
]


@dataclass(frozen=True, slots=True)
class Token:
    kind: str          # a keyword, FLOAT, DECIMAL, STRING, ID, an operator, or EOF
    text: str
    column: int        # 1-based, as RocketMQ's messages count


def tokenize(text: str) -> list[Token]:
    """Longest match at each position (JavaCC's rule); a keyword wins a tie with ID."""
    out: list[Token] = []
    pos, n = 0, len(text)
    while pos < n:
        best_kind, best_end = "", pos
        for kind, rx in _LEX_RULES:
            m = rx.match(text, pos)
            if m is not None and m.end() > best_end:
                best_kind, best_end = kind, m.end()
        if best_end == pos:
            raise SelectorError("unexpected character", pos + 1, text[pos])
        lexeme = text[pos:best_end]
        if best_kind == "ID" and lexeme.upper() in _KEYWORDS:
            out.append(Token(lexeme.upper(), lexeme, pos + 1))
        elif best_kind == "OP":
            out.append(Token(lexeme, lexeme, pos + 1))
        elif best_kind != "SKIP":
            out.append(Token(best_kind, lexeme, pos + 1))
        pos = best_end
    out.append(Token("EOF", "", n + 1))
    return out


# --- parser -------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.level = 0          # parentheses and unary operators open around the current token

    def enter(self, at: Token) -> None:
        self.level += 1
        if self.level > NESTING_MAX:
            self.fail(f"the expression nests deeper than {NESTING_MAX} levels", at)

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def take(self, kind: str) -> Token:
        tok = self.tok
        if tok.kind != kind:
            self.fail(f"expected {kind}")
        self.i += 1
        return tok

    def fail(self, why: str, tok: Token | None = None) -> None:
        tok = tok or self.tok
        raise SelectorError(why, tok.column, tok.text or "<end>")

    def check(self, node: Node, at: Token) -> Node:
        if node.depth > TREE_DEPTH_MAX:
            self.fail(f"the expression nests deeper than {TREE_DEPTH_MAX} levels", at)
        return node

    def boolean(self, node: Node, at: Token) -> Node:
        """asBooleanExpression: a property becomes a boolean cast; other values are refused."""
        if node.is_boolean:
            return node
        if isinstance(node, Property):
            return BooleanCast(node)
        self.fail(f"{node!r} will not result in a boolean value", at)
        raise AssertionError("unreachable")

    def selector(self) -> Node:
        start = self.tok
        node = self.boolean(self.or_expr(), start)
        if self.tok.kind != "EOF":
            self.fail("unexpected token")
        return node

    def _chain(self, op: str, sub: Callable[[], Node]) -> Node:
        start = self.tok
        first = sub()
        if self.tok.kind != op:
            return first
        terms = [self.boolean(first, start)]
        while self.tok.kind == op:
            self.i += 1
            at = self.tok
            terms.append(self.boolean(sub(), at))
        return self.check(Logic(terms, op == "AND"), start)

    def or_expr(self) -> Node:
        return self._chain("OR", self.and_expr)

    def and_expr(self) -> Node:
        return self._chain("AND", self.equality)

    def equality(self) -> Node:
        left = self.comparison()
        while True:
            tok = self.tok
            if tok.kind in ("=", "<>"):
                self.i += 1
                right = self.comparison()
                _check_equal_operand(left, tok)
                _check_equal_operand(right, tok)
                if (isinstance(left, Constant) and isinstance(right, Constant)
                        and left.is_boolean and not right.is_boolean):
                    self.fail(f"{left!r} cannot be compared with {right!r}", tok)
                node: Node = Equal(left, right)
                left = self.check(Not(node) if tok.kind == "<>" else node, tok)
            elif tok.kind == "IS" and self.peek().kind == "NULL":
                self.i += 2
                left = self.check(Equal(left, Constant(None)), tok)
            elif tok.kind == "IS" and self.peek().kind == "NOT" and self.peek(2).kind == "NULL":
                self.i += 3
                left = self.check(Not(Equal(left, Constant(None))), tok)
            elif tok.kind == "IS":
                self.i += 1
                self.fail("expected NULL or NOT NULL after IS")
            else:
                return left

    def comparison(self) -> Node:
        left = self.unary()
        while True:
            tok = self.tok
            if tok.kind in _ORDER:
                self.i += 1
                left = self.check(_order(left, tok.kind, self.unary(), tok), tok)
            elif tok.kind == "BETWEEN" or (tok.kind == "NOT" and self.peek().kind == "BETWEEN"):
                negated = tok.kind == "NOT"
                self.i += 2 if negated else 1
                low = self.unary()
                self.take("AND")
                high = self.unary()
                left = self.check(_between(left, low, high, negated, tok), tok)
            elif tok.kind == "IN" or (tok.kind == "NOT" and self.peek().kind == "IN"):
                negated = tok.kind == "NOT"
                self.i += 2 if negated else 1
                self.take("(")
                values = [_string_value(self.take("STRING"))]
                while self.tok.kind == ",":
                    self.i += 1
                    values.append(_string_value(self.take("STRING")))
                self.take(")")
                if not isinstance(left, Property):
                    self.fail(f"IN needs a property on its left, got {left!r}", tok)
                left = self.check(In(left, values, negated), tok)
            else:
                return left

    def unary(self) -> Node:
        tok = self.tok
        if tok.kind not in ("+", "-", "NOT"):
            return self.primary()
        self.i += 1
        self.enter(tok)
        at = self.tok
        operand = self.unary()
        self.level -= 1
        if tok.kind == "+":
            return operand
        if tok.kind == "-":
            return self.check(Negate(operand), tok)
        return self.check(Not(self.boolean(operand, at)), tok)

    def primary(self) -> Node:
        tok = self.tok
        kind = tok.kind
        if kind == "STRING":
            self.i += 1
            return Constant(_string_value(tok))
        if kind == "DECIMAL":
            self.i += 1
            return Constant(_decimal_value(tok))
        if kind == "FLOAT":
            self.i += 1
            return Constant(_float_value(tok))
        if kind in ("TRUE", "FALSE", "NULL"):
            self.i += 1
            return Constant(None if kind == "NULL" else kind == "TRUE")
        if kind == "ID":
            self.i += 1
            return Property(tok.text)
        if kind == "(":
            self.i += 1
            self.enter(tok)
            node = self.or_expr()
            self.take(")")
            self.level -= 1
            return node
        self.fail("expected a literal, a property or '('")
        raise AssertionError("unreachable")


def _string_value(tok: Token) -> str:
    return tok.text[1:-1].replace("''", "'")


def _decimal_value(tok: Token) -> int:
    text = tok.text[:-1] if tok.text[-1] in "lL" else tok.text
    v = int(text)
    if v > LONG_MAX:
        raise SelectorError(f"{tok.text} does not fit a long", tok.column, tok.text)
    return JInt(v) if v <= INT_MAX else v


def _float_value(tok: Token) -> float:
    v = float(tok.text)
    if v > DOUBLE_MAX:
        raise SelectorError(f"{tok.text} is greater than {DOUBLE_MAX}", tok.column, tok.text)
    if v < DOUBLE_MIN_POSITIVE:
        raise SelectorError(f"{tok.text} is less than Double.MIN_VALUE (RocketMQ refuses 0.0; write 0)",
                            tok.column, tok.text)
    return v


def _check_equal_operand(node: Node, tok: Token) -> None:
    if isinstance(node, Constant) and node.value is None:
        raise SelectorError("NULL cannot be compared with = or <>; use IS NULL", tok.column, tok.text)


def _check_orderable(node: Node, tok: Token) -> None:
    if isinstance(node, Constant):
        if type(node.value) in (JInt, int, float):
            return
        raise SelectorError(f"value {node!r} cannot be compared with {tok.text}", tok.column, tok.text)
    if node.is_boolean:
        raise SelectorError(f"a boolean expression cannot be compared with {tok.text}", tok.column, tok.text)


def _order(left: Node, op: str, right: Node, tok: Token) -> Node:
    _check_orderable(left, tok)
    _check_orderable(right, tok)
    return Order(left, op, right)


def _between(value: Node, low: Node, high: Node, negated: bool, tok: Token) -> Node:
    lo, hi = low, high
    if not negated and isinstance(lo, Constant) and isinstance(hi, Constant):
        if lo.value is None or hi.value is None:
            raise SelectorError("BETWEEN bounds cannot be NULL", tok.column, tok.text)
        try:
            wrong_order = _compare(hi.value, lo.value) < 0
        except EvaluationError as exc:
            raise SelectorError(f"BETWEEN bounds cannot be compared: {exc}", tok.column, tok.text) from None
        if wrong_order:
            raise SelectorError(f"BETWEEN's lower bound {lo!r} is greater than its upper bound {hi!r}",
                                tok.column, tok.text)
    if negated:
        return Logic([_order(value, "<", low, tok), _order(value, ">", high, tok)], is_and=False)
    return Logic([_order(value, ">=", low, tok), _order(value, "<=", high, tok)], is_and=True)


# --- public API ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selector:
    """A compiled SQL92 expression."""

    text: str
    root: Node

    def evaluate(self, properties: Props) -> Value:
        """The three-valued result; raises EvaluationError when a property does not convert."""
        return self.root.evaluate(properties)

    def matches(self, properties: Props) -> bool:
        """ExpressionMessageFilter.isMatchedByCommitLog: TRUE matches; NULL, FALSE and a failed
        evaluation do not."""
        try:
            return self.root.evaluate(properties) is True
        except (EvaluationError, OverflowError, ValueError):
            return False


def compile_selector(text: str) -> Selector:
    """Parse text; SelectorError (with column and token) if RocketMQ would refuse it."""
    if len(text) > EXPRESSION_LENGTH_MAX:
        raise SelectorError(f"the expression is {len(text)} characters long; at most "
                            f"{EXPRESSION_LENGTH_MAX} are accepted")
    if not text.strip():
        raise SelectorError("the expression is empty", 1, "")
    return Selector(text, _Parser(text).selector())
