"""A strict evaluator of IAM identity-based policies, as AWS evaluates them.

`evaluate(policies, request)` judges one authorization request (an action on
one resource, with its request context) against identity-based policy
documents. Anything it cannot judge exactly raises `Unevaluable` instead of
guessing an answer.

The rules, from the AWS IAM User Guide:

- "Policy evaluation logic" and "The difference between explicit and implicit
  denies": a matching Deny statement wins over any Allow; with no Deny, a
  matching Allow allows; with neither, the request is implicitly denied.
- "IAM JSON policy elements: Action" / "NotAction": `*` and `?` wildcards,
  case-insensitive; NotAction matches every action except those listed.
- "IAM JSON policy elements: Resource" / "NotResource": ARN patterns with `*`
  and `?`, case-sensitive. The asterisk "can expand to replace everything
  within a segment, including characters like a forward slash (/)" and, at
  the end of a segment, beyond the colon, so a pattern is matched as a glob on
  the whole ARN. "*" is the resource of actions without resource-level
  permissions: only patterns that match the string "*" cover it.
- "IAM JSON policy elements: Version": policy variables exist only in
  "2012-10-17" policies; in a policy without Version (or "2008-10-17") `${...}`
  is literal text.
- "IAM JSON policy elements: Condition": condition key names are not
  case-sensitive, values are compared as the operator says.
- "Creating a condition with multiple keys or values": operators in a block
  and keys in an operator are ANDed, the values of one key are ORed; for a
  negated operator a value must match none of them. `ForAllValues` is true when
  every request value matches, and also when the key is missing or its values
  are an empty set (or an empty string); `ForAnyValue` is true when at least
  one request value matches, false for a missing key or an empty set.
- "IAM JSON policy elements: Condition operators": a key missing from the
  request context makes a condition false, except that negated operators
  (StringNotEquals, StringNotEqualsIgnoreCase, StringNotLike, NumericNotEquals,
  DateNotEquals, NotIpAddress, ArnNotEquals, ArnNotLike) are then true;
  `...IfExists` (any operator but Null) is true for a missing key; `Null` is
  true for "true" when the key is absent and for "false" when it is present.
  Dates are W3C ISO 8601 or epoch seconds; IP ranges are CIDR (an address
  without prefix is /32); ARN operators compare each of the six
  colon-separated parts of the ARN separately; BinaryEquals compares bytes
  against base-64. ArnEquals and ArnLike behave identically.
- "IAM policy elements: Variables and tags": `${key}` is replaced by the
  single-valued context key (names case-insensitive) in Resource/NotResource
  and in the values of string and ARN conditions, not in other operators; a
  multivalued key cannot be a variable; `${*}`, `${?}`, `${$}` are the literal
  characters; `${key, 'default'}` gives a default. A variable without a value
  makes a Resource entry match no resource and a condition value match no
  request value (so StringEquals is false and StringNotEquals true).
- "Single-valued vs. multivalued context keys": multivalued keys require
  `ForAllValues`/`ForAnyValue`.

Choices where the documentation does not settle the answer (each raises
`Unevaluable` rather than guess, unless stated):

- a plain (single-valued) operator on a multivalued context value (a list);
- a policy variable in a Bool condition value ("Condition operators" says it
  is allowed, "Variables and tags" says it is not);
- Bool values other than true/false (JSON booleans, or the lower-case strings);
- a Null check on an empty list; `Null` with IfExists or a set prefix;
- ARN operators on a policy or request value that is not a six-part ARN;
- two context keys that differ only by case ("matches ... either TagKey1 or
  tagkey1, but not both");
- floating-point JSON numbers in string comparisons;
- a `Version` other than 2012-10-17 / 2008-10-17, a Principal element, an
  unknown element or operator.
- (chosen, not raised) an all-digit date string is epoch seconds, and a date
  without time is midnight UTC; a set operator on a single-valued key treats
  its value as a set of one; ForAnyValue...IfExists on a missing key is true
  (IfExists); the request context values for BinaryEquals are base-64 text;
  a variable in Resource is substituted wherever it stands (AWS allows it
  only after the fifth colon); "#<index>" numbers the statements of all the
  policies in order, from 0.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Union

ContextValue = Union[str, list[str], bool, int]


@dataclass(frozen=True)
class AuthRequest:
    action: str  # "ec2:RunInstances"
    resource: str  # an ARN, or "*" for actions without resource-level permissions
    context: Mapping[str, ContextValue]  # condition keys; an absent key is absent from the request


@dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool
    statements: tuple[str, ...]  # Sids (or "#<index>") of the statements that allowed, or that denied
    reason: str  # one line for an error message


class Unevaluable(Exception):
    """The evaluator cannot judge this policy or request exactly."""


# --- request context --------------------------------------------------------

_MISSING = object()


class _Context:
    """The request context, keys looked up case-insensitively."""

    def __init__(self, context: Mapping[str, ContextValue]) -> None:
        self._values: dict[str, ContextValue] = {}
        for key, value in context.items():
            if not isinstance(key, str):
                raise Unevaluable(f"context key {key!r} is not a string")
            ok = isinstance(value, (str, bool, int)) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            if not ok:
                raise Unevaluable(f"context key {key}: unsupported value {value!r}")
            if key.lower() in self._values:
                raise Unevaluable(f"context keys differ only by case: {key}")
            self._values[key.lower()] = value

    def get(self, key: str) -> Any:
        return self._values.get(key.lower(), _MISSING)

    def variable(self, body: str) -> str | None:
        """The value of `${body}`, or None when the key has no value."""
        name, comma, default = body.partition(",")
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z0-9-]+:.+", name):
            raise Unevaluable(f"unknown policy variable ${{{body}}}")
        if comma:
            default = default.strip()
            if len(default) < 2 or default[0] != "'" or default[-1] != "'":
                raise Unevaluable(f"malformed default value in ${{{body}}}")
        value = self.get(name)
        if value is _MISSING:
            return default[1:-1] if comma else None
        if isinstance(value, list):
            raise Unevaluable(f"multivalued key {name} used as a policy variable")
        return _context_string(value)


def _context_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    raise Unevaluable(f"not a string value: {value!r}")


def _policy_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    raise Unevaluable(f"unsupported policy value {value!r}")


# --- patterns with wildcards and variables ------------------------------------

# A token is ("text", c) for a character of the policy, ("value", s) for the
# value of a variable (always literal), or ("*", "") / ("?", "") for wildcards.
Token = tuple[str, str]


def _tokens(text: str, context: _Context | None) -> list[Token] | None:
    """The tokens of a policy string, or None when one of its variables has no
    value; `context` None: the text has no variables."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        if context is not None and text.startswith("${", i):
            end = text.find("}", i)
            if end < 0:
                raise Unevaluable(f"unterminated policy variable in {text!r}")
            body = text[i + 2 : end]
            value = body if body in ("*", "?", "$") else context.variable(body)
            if value is None:
                return None
            tokens.append(("value", value))
            i = end + 1
        elif text[i] in "*?":
            tokens.append((text[i], ""))
            i += 1
        else:
            tokens.append(("text", text[i]))
            i += 1
    return tokens


def _literal(tokens: list[Token]) -> str:
    return "".join(kind if kind in ("*", "?") else s for kind, s in tokens)


def _glob(tokens: list[Token], ignore_case: bool = False) -> re.Pattern[str]:
    parts = [".*" if kind == "*" else "." if kind == "?" else re.escape(s) for kind, s in tokens]
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _arn_segments(tokens: list[Token]) -> list[list[Token]]:
    """Tokens split at the policy's own colons into at most six ARN parts."""
    segments: list[list[Token]] = [[]]
    for token in tokens:
        if token == ("text", ":") and len(segments) < 6:
            segments.append([])
        else:
            segments[-1].append(token)
    return segments


# --- condition operators -------------------------------------------------------

_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}
_POSITIVE = (
    {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "Bool", "BinaryEquals", "IpAddress"}
    | {"ArnEquals", "ArnLike"}
    | {"Numeric" + name for name in _ORDER}
    | {"Date" + name for name in _ORDER}
)


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Unevaluable(f"not a number: {value!r}")
    if isinstance(value, str) and not re.fullmatch(r"-?\d+(\.\d+)?", value):
        raise Unevaluable(f"not a number: {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Unevaluable(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise Unevaluable(f"not a number: {value!r}")
    return number


def _date(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Unevaluable(f"not a date: {value!r}")
    text = str(value)
    if re.fullmatch(r"-?\d+", text):
        try:
            return datetime.fromtimestamp(int(text), timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise Unevaluable(f"not a date: {value!r}") from None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})", text):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise Unevaluable(f"not a date: {value!r}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise Unevaluable(f"not a boolean: {value!r}")


def _binary(value: Any) -> bytes:
    try:
        return base64.b64decode(_policy_string(value), validate=True)
    except binascii.Error:
        raise Unevaluable(f"not base-64: {value!r}") from None


def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(value, str):
        raise Unevaluable(f"not an IP address: {value!r}")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise Unevaluable(f"not an IP address: {value!r}") from None


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str):
        raise Unevaluable(f"not an IP address or CIDR range: {value!r}")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise Unevaluable(f"not an IP address or CIDR range: {value!r}") from None


def _matches(op: str, actual: Any, expected: Any, context: _Context | None) -> bool:
    """Whether one request value matches one policy value under a positive operator."""
    if op in ("StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike"):
        if isinstance(expected, float):
            raise Unevaluable(f"{op}: floating-point policy value {expected!r}")
        tokens = _tokens(_policy_string(expected), context)
        if tokens is None:
            return False  # a variable without value matches nothing
        text = _context_string(actual)
        if op == "StringEquals":
            return _literal(tokens) == text
        if op == "StringEqualsIgnoreCase":
            return _literal(tokens).casefold() == text.casefold()
        if op == "StringLike":
            return _glob(tokens).fullmatch(text) is not None
        patterns = _arn_segments(tokens)
        parts = text.split(":", 5)
        if len(patterns) != 6 or len(parts) != 6:
            raise Unevaluable(f"{op}: {expected!r} against {text!r} is not an ARN comparison")
        return all(_glob(p).fullmatch(s) is not None for p, s in zip(patterns, parts))
    if op.startswith("Numeric"):
        return _ORDER[op.removeprefix("Numeric")](_number(actual), _number(expected))
    if op.startswith("Date"):
        return _ORDER[op.removeprefix("Date")](_date(actual), _date(expected))
    if op == "Bool":
        return _bool(actual) == _bool(expected)
    if op == "BinaryEquals":
        return _binary(actual) == _binary(expected)
    if op == "IpAddress":
        return _ip(actual) in _network(expected)
    raise Unevaluable(f"unknown condition operator {op}")


def _parse_operator(name: str) -> tuple[str | None, str, bool]:
    """(set prefix or None, base operator, IfExists) of an operator name."""
    set_prefix, colon, base = name.partition(":")
    if not colon:
        set_prefix, base = "", name
    elif set_prefix not in ("ForAllValues", "ForAnyValue"):
        raise Unevaluable(f"unknown condition operator {name}")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base == "Null":
        if if_exists or set_prefix:
            raise Unevaluable(f"unsupported condition operator {name}")
    elif base not in _POSITIVE and base not in _NEGATED:
        raise Unevaluable(f"unknown condition operator {name}")
    return set_prefix or None, base, if_exists


def _key_holds(name: str, key: str, expected: list[Any], context: _Context, variables: bool) -> bool:
    """One key of one condition operator."""
    set_prefix, base, if_exists = _parse_operator(name)
    actual = context.get(key)
    if base == "Null":
        if isinstance(actual, list) and not actual:
            raise Unevaluable(f"Null on {key}: is an empty list present or absent?")
        return any(_bool(value) == (actual is _MISSING) for value in expected)
    negated = base in _NEGATED
    positive = _NEGATED.get(base, base)

    def value_holds(value: Any) -> bool:
        hits = [_matches(positive, value, e, context if variables else None) for e in expected]
        return not any(hits) if negated else any(hits)

    if actual is _MISSING:
        if if_exists or set_prefix == "ForAllValues":
            return True
        if set_prefix == "ForAnyValue":
            return False
        return negated
    if set_prefix is None:
        if isinstance(actual, list):
            raise Unevaluable(f"{name} on multivalued key {key} needs ForAllValues or ForAnyValue")
        return value_holds(actual)
    members = [] if actual == "" else actual if isinstance(actual, list) else [actual]
    results = [value_holds(member) for member in members]
    return all(results) if set_prefix == "ForAllValues" else any(results)


def _condition_holds(condition: Mapping[str, Any], context: _Context, variables: bool) -> bool:
    results = []
    for name, keys in condition.items():
        if not isinstance(keys, Mapping) or not keys:
            raise Unevaluable(f"condition operator {name} has no keys")
        for key, values in keys.items():
            if "${" in key:
                raise Unevaluable(f"policy variable in condition key {key}")
            expected = values if isinstance(values, list) else [values]
            if not expected or not all(isinstance(v, (str, int, float, bool)) for v in expected):
                raise Unevaluable(f"{name} {key}: unsupported values {values!r}")
            results.append(_key_holds(name, key, expected, context, variables))
    return all(results)


# --- statements ------------------------------------------------------------------


def _string_list(value: Any, element: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise Unevaluable(f"malformed {element}: {value!r}")
    return items


@dataclass(frozen=True)
class _Statement:
    ident: str
    effect: str
    actions: list[str]
    not_action: bool
    resources: list[str]
    not_resource: bool
    condition: Mapping[str, Any]
    variables: bool


def _statement(raw: Any, ident: str, variables: bool) -> _Statement:
    if not isinstance(raw, Mapping):
        raise Unevaluable(f"statement {ident} is not an object")
    unknown = set(raw) - {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
    if unknown:
        raise Unevaluable(f"statement {ident}: unsupported elements {sorted(unknown)}")
    sid = raw.get("Sid", ident)
    if not isinstance(sid, str):
        raise Unevaluable(f"statement {ident}: Sid is not a string")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise Unevaluable(f"statement {sid}: Effect {effect!r}")
    if ("Action" in raw) == ("NotAction" in raw) or ("Resource" in raw) == ("NotResource" in raw):
        raise Unevaluable(f"statement {sid}: needs exactly one of Action/NotAction and of Resource/NotResource")
    actions = _string_list(raw.get("Action", raw.get("NotAction")), "Action")
    for action in actions:
        if action != "*" and not re.fullmatch(r"[A-Za-z0-9-]+:[A-Za-z0-9*?]+", action):
            raise Unevaluable(f"statement {sid}: malformed action {action!r}")
    condition = raw.get("Condition", {})
    if not isinstance(condition, Mapping):
        raise Unevaluable(f"statement {sid}: Condition is not an object")
    for name in condition:
        _parse_operator(name)
    return _Statement(
        ident=sid,
        effect=effect,
        actions=actions,
        not_action="NotAction" in raw,
        resources=_string_list(raw.get("Resource", raw.get("NotResource")), "Resource"),
        not_resource="NotResource" in raw,
        condition=condition,
        variables=variables,
    )


def _applies(statement: _Statement, request: AuthRequest, context: _Context) -> bool:
    action_listed = any(
        _glob(_tokens(a, None) or [], ignore_case=True).fullmatch(request.action) for a in statement.actions
    )
    if action_listed == statement.not_action:
        return False
    resource_listed = False
    for pattern in statement.resources:
        tokens = _tokens(pattern, context if statement.variables else None)
        if tokens is not None and _glob(tokens).fullmatch(request.resource):
            resource_listed = True  # an entry whose variable has no value matches nothing
    if resource_listed == statement.not_resource:
        return False
    return _condition_holds(statement.condition, context, statement.variables)


def _statements(policies: Sequence[Mapping[str, Any]]) -> list[_Statement]:
    statements: list[_Statement] = []
    for policy in policies:
        if not isinstance(policy, Mapping) or "Statement" not in policy:
            raise Unevaluable("a policy is not an object with a Statement")
        if set(policy) - {"Version", "Id", "Statement"}:
            raise Unevaluable(f"unsupported policy elements {sorted(set(policy) - {'Version', 'Id', 'Statement'})}")
        version = policy.get("Version", "2008-10-17")
        if version not in ("2012-10-17", "2008-10-17"):
            raise Unevaluable(f"unknown policy Version {version!r}")
        raw = policy["Statement"]
        for item in raw if isinstance(raw, list) else [raw]:
            statements.append(_statement(item, f"#{len(statements)}", version == "2012-10-17"))
    return statements


def evaluate(policies: Sequence[Mapping[str, Any]], request: AuthRequest) -> Decision:
    """Judge `request` against identity-based `policies` (parsed JSON documents)."""
    if not re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", request.action):
        raise Unevaluable(f"malformed action {request.action!r}")
    if not isinstance(request.resource, str) or not request.resource:
        raise Unevaluable(f"malformed resource {request.resource!r}")
    context = _Context(request.context)
    statements = _statements(policies)
    matching = [s for s in statements if _applies(s, request, context)]
    denied = tuple(s.ident for s in matching if s.effect == "Deny")
    if denied:
        return Decision(False, True, denied, f"explicitly denied by {', '.join(denied)}")
    allowed = tuple(s.ident for s in matching if s.effect == "Allow")
    if allowed:
        return Decision(True, False, allowed, f"allowed by {', '.join(allowed)}")
    return Decision(False, False, (), f"no statement allows {request.action} on {request.resource}")
