"""Router rules: the subset of Traefik v3's rule syntax the native gateway implements.

Supported: ``Path(`/x`)``, ``PathPrefix(`/x`)``, ``Method(`GET`)``, ``!``, ``&&``, ``||`` and
parentheses, with Go's precedence (``&&`` binds tighter than ``||``), as in
pkg/muxer/http/matcher.go. Strings may be backtick or double-quoted. Any other matcher
(``Host``, ``Header``, ``Query``...) is refused at start-up rather than ignored.

Paths are matched against the *routing path*: the sanitized request path with percent-escapes
decoded except reserved characters (see ``paths.py``), exactly what Traefik matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol


class RuleError(ValueError):
    """The rule is malformed or uses a matcher the native gateway does not implement."""


class Rule(Protocol):
    """A parsed rule: decides whether a request belongs to a router."""

    def matches(self, path: str, method: str) -> bool:
        """Whether a request with this routing path and method matches."""
        ...


@dataclass(frozen=True)
class PathRule:
    """``Path`` (exact) or ``PathPrefix`` (plain string prefix, so /api also matches /apix)."""

    path: str
    prefix: bool

    def matches(self, path: str, method: str) -> bool:
        return path.startswith(self.path) if self.prefix else path == self.path


@dataclass(frozen=True)
class MethodRule:
    """``Method``: Traefik v3 takes one method and compares it upper-cased."""

    method: str

    def matches(self, path: str, method: str) -> bool:
        return method == self.method


@dataclass(frozen=True)
class NotRule:
    """``!rule``."""

    rule: Rule

    def matches(self, path: str, method: str) -> bool:
        return not self.rule.matches(path, method)


@dataclass(frozen=True)
class AndRule:
    """``left && right``."""

    left: Rule
    right: Rule

    def matches(self, path: str, method: str) -> bool:
        return self.left.matches(path, method) and self.right.matches(path, method)


@dataclass(frozen=True)
class OrRule:
    """``left || right``."""

    left: Rule
    right: Rule

    def matches(self, path: str, method: str) -> bool:
        return self.left.matches(path, method) or self.right.matches(path, method)


def parse_rule(text: str) -> Rule:
    """Parse a rule, refusing anything outside the supported subset with a clear message."""
    parser = _Parser(_tokenize(text))
    rule = parser.expression()
    parser.expect_end()
    return rule


_MATCHERS = ("Path", "PathPrefix", "Method")


def _build_matcher(name: str, argument: str) -> Rule:
    """Build one matcher, validating its argument as Traefik does."""
    if name == "Method":
        return MethodRule(argument.upper())
    if not argument.startswith("/"):
        raise RuleError(f"{name}: path {argument!r} does not start with a '/'")
    return PathRule(argument, prefix=name == "PathPrefix")


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<operator>&&|\|\||!|\(|\)|,)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | `(?P<raw>[^`]*)`
      | "(?P<quoted>[^"\\]*)"
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "operator", "name" or "string"
    value: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        if match is None:
            raise RuleError(f"unexpected input at {text[position:].strip()[:20]!r}")
        if match.group("operator") is not None:
            tokens.append(_Token("operator", match.group("operator")))
        elif match.group("name") is not None:
            tokens.append(_Token("name", match.group("name")))
        else:
            string = match.group("raw") if match.group("raw") is not None else match.group("quoted")
            tokens.append(_Token("string", string))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent: expression := conjunction ('||' conjunction)*, and so on."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._position = 0

    def expression(self) -> Rule:
        rule = self._conjunction()
        while self._accept("||"):
            rule = OrRule(rule, self._conjunction())
        return rule

    def expect_end(self) -> None:
        if self._position != len(self._tokens):
            raise RuleError(f"unexpected {self._tokens[self._position].value!r}")

    def _conjunction(self) -> Rule:
        rule = self._unary()
        while self._accept("&&"):
            rule = AndRule(rule, self._unary())
        return rule

    def _unary(self) -> Rule:
        if self._accept("!"):
            return NotRule(self._unary())
        if self._accept("("):
            rule = self.expression()
            self._require(")")
            return rule
        return self._matcher()

    def _matcher(self) -> Rule:
        token = self._next("a matcher such as PathPrefix(`/api`)")
        if token.kind != "name":
            raise RuleError(f"expected a matcher, got {token.value!r}")
        if token.value not in _MATCHERS:
            supported = ", ".join(_MATCHERS)
            raise RuleError(
                f"rule matcher {token.value} is not supported by the native gateway "
                f"(supported: {supported})"
            )
        self._require("(")
        arguments = [self._string()]
        while self._accept(","):
            arguments.append(self._string())
        self._require(")")
        if len(arguments) != 1:
            raise RuleError(
                f"{token.value}: unexpected number of parameters; got {len(arguments)}, expected 1"
            )
        return _build_matcher(token.value, arguments[0])

    def _string(self) -> str:
        token = self._next("a string")
        if token.kind != "string":
            raise RuleError(f"expected a string, got {token.value!r}")
        return token.value

    def _accept(self, operator: str) -> bool:
        if self._position < len(self._tokens) and self._tokens[self._position] == _Token(
            "operator", operator
        ):
            self._position += 1
            return True
        return False

    def _require(self, operator: str) -> None:
        if not self._accept(operator):
            found = (
                self._tokens[self._position].value if self._position < len(self._tokens) else "end"
            )
            raise RuleError(f"expected {operator!r}, got {found!r}")

    def _next(self, wanted: str) -> _Token:
        if self._position >= len(self._tokens):
            raise RuleError(f"expected {wanted}, got end of rule")
        token = self._tokens[self._position]
        self._position += 1
        return token
