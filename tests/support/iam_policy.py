"""An IAM policy evaluator for the conformance check: does this policy set allow this request?

It follows AWS's documented evaluation logic for one account (no SCPs, no session policies, no
permission boundaries, which shepard does not use):

* an explicit ``Deny`` in any applicable policy wins;
* otherwise the request needs an ``Allow`` from the identity policies or from the resource
  policy (for a principal of the same account either is enough), except for KMS, where the key
  policy must allow the principal itself or delegate to the account's IAM policies (``root``);
* otherwise it is implicitly denied.

A statement applies when its ``Action``/``NotAction`` matches the action (case-insensitive
wildcards), its ``Resource``/``NotResource`` matches the ARN (case-sensitive wildcards), for a
resource policy its ``Principal``/``NotPrincipal`` names the caller, and every condition holds
for the request context. Condition operators: the String, Arn, Numeric and Bool families, with
``IfExists``, ``Null``, and the ``ForAnyValue:``/``ForAllValues:`` set prefixes. An operator it
does not know raises ``UnsupportedCondition`` rather than guessing.
"""

from __future__ import annotations

import enum
import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

Policy = Mapping[str, Any]
ContextValue = str | Sequence[str]


class UnsupportedCondition(Exception):
    """A policy uses a condition operator the evaluator does not implement."""


class Decision(enum.Enum):
    ALLOW = "allowed"
    EXPLICIT_DENY = "denied by an explicit Deny"
    IMPLICIT_DENY = "not allowed by any statement"


@dataclass(frozen=True)
class Request:
    """One authorisation request: who asks to do what on which resource, in what context."""

    action: str
    resource: str
    principal: str = ""  # the caller's ARN (a role ARN for the flock's parts)
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    @property
    def account(self) -> str:
        parts = self.principal.split(":")
        return parts[4] if len(parts) > 4 else ""


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    statements: tuple[str, ...] = ()  # the Sids (or indexes) that decided it

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


def load(policy: str | Policy) -> Policy:
    """A policy document from its JSON text or as a mapping."""
    return json.loads(policy) if isinstance(policy, str) else policy


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def statements(policy: Policy) -> list[Mapping[str, Any]]:
    return [st for st in _as_list(policy.get("Statement")) if isinstance(st, Mapping)]


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # IAM wildcards: * is any run of characters (':' and '/' included), ? one character.
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _wildcard(pattern, ignore_case).match(value) is not None


def _substitute(pattern: str, context: Mapping[str, ContextValue]) -> str:
    """Policy variables such as ``${aws:PrincipalAccount}``, from the request context."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        found = context.get(key)
        if isinstance(found, str):
            return found
        return match.group(0)

    return re.sub(r"\$\{([^}]+)\}", value, pattern) if "${" in pattern else pattern


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(
            wildcard_match(p, action, ignore_case=True) for p in _as_list(statement["Action"])
        )
    if "NotAction" in statement:
        return not any(
            wildcard_match(p, action, ignore_case=True) for p in _as_list(statement["NotAction"])
        )
    return False


def _resource_matches(statement: Mapping[str, Any], request: Request) -> bool:
    def matches(pattern: str) -> bool:
        return wildcard_match(_substitute(pattern, request.context), request.resource)

    if "Resource" in statement:
        return any(matches(p) for p in _as_list(statement["Resource"]))
    if "NotResource" in statement:
        return not any(matches(p) for p in _as_list(statement["NotResource"]))
    return False


def _principal_names(principal: Any) -> Iterable[tuple[str, str]]:
    if principal == "*":
        yield ("AWS", "*")
        return
    if isinstance(principal, Mapping):
        for kind, values in principal.items():
            for value in _as_list(values):
                yield (str(kind), str(value))


def _principal_kind(names: Iterable[tuple[str, str]], request: Request) -> str | None:
    """``"caller"`` when the principal names the caller (or anyone), ``"account"`` when it names
    the caller's account (which delegates to that account's IAM policies), else None."""
    kind_found: str | None = None
    for kind, value in names:
        if kind != "AWS":
            continue  # Service / Federated principals are never the flock's roles
        if value == "*" or (value.startswith("arn:") and wildcard_match(value, request.principal)):
            return "caller"
        if value in (request.account, f"arn:aws:iam::{request.account}:root"):
            kind_found = "account"
    return kind_found


def _principal_matches(statement: Mapping[str, Any], request: Request, allow: bool) -> bool:
    """For an Allow only a statement naming the caller grants by itself; a Deny naming the
    account applies to everyone in it."""
    if "Principal" in statement:
        kind = _principal_kind(_principal_names(statement["Principal"]), request)
        return kind == "caller" or (kind == "account" and not allow)
    if "NotPrincipal" in statement:
        return _principal_kind(_principal_names(statement["NotPrincipal"]), request) is None
    return True  # identity policies have no principal: they belong to the caller


def _delegates_to_account(statement: Mapping[str, Any], request: Request) -> bool:
    kind = _principal_kind(_principal_names(statement.get("Principal")), request)
    return kind == "account"


# ----------------------------------------------------------------------------------------------
# Conditions
# ----------------------------------------------------------------------------------------------


def _number(text: str) -> float:
    return float(text)


def _arn_like(pattern: str, value: str) -> bool:
    # ARN operators compare the six colon-separated parts, each with wildcards.
    pattern_parts = pattern.split(":", 5)
    value_parts = value.split(":", 5)
    if len(pattern_parts) != len(value_parts):
        return wildcard_match(pattern, value)
    return all(wildcard_match(p, v) for p, v in zip(pattern_parts, value_parts, strict=True))


_MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda p, v: p == v,
    "StringEqualsIgnoreCase": lambda p, v: p.lower() == v.lower(),
    "StringLike": lambda p, v: wildcard_match(p, v),
    "ArnEquals": lambda p, v: p == v,
    "ArnLike": _arn_like,
    "Bool": lambda p, v: p.lower() == v.lower(),
    "NumericEquals": lambda p, v: _number(v) == _number(p),
    "NumericLessThan": lambda p, v: _number(v) < _number(p),
    "NumericLessThanEquals": lambda p, v: _number(v) <= _number(p),
    "NumericGreaterThan": lambda p, v: _number(v) > _number(p),
    "NumericGreaterThanEquals": lambda p, v: _number(v) >= _number(p),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
}


def _context_value(context: Mapping[str, ContextValue], key: str) -> list[str] | None:
    for name, value in context.items():
        if name.lower() == key.lower():  # condition keys are case-insensitive
            return [value] if isinstance(value, str) else [str(v) for v in value]
    return None


def _condition_holds(operator: str, key: str, expected: Any, request: Request) -> bool:
    patterns = [_substitute(str(p), request.context) for p in _as_list(expected)]
    present = _context_value(request.context, key)
    if operator == "Null":
        want_absent = patterns[0].lower() == "true"
        return (present is None) == want_absent

    set_op = ""
    if ":" in operator:
        set_op, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    negated = base in _NEGATED
    matcher = _MATCHERS.get(_NEGATED.get(base, base))
    if matcher is None or set_op not in ("", "ForAnyValue", "ForAllValues"):
        raise UnsupportedCondition(f"condition operator {operator!r} is not implemented")

    if present is None:
        # A missing key: IfExists and negated operators hold, the others do not;
        # ForAllValues over an empty set holds.
        return if_exists or negated or set_op == "ForAllValues"

    def one(value: str) -> bool:
        hit = any(matcher(p, value) for p in patterns)
        return not hit if negated else hit

    if set_op == "ForAllValues":
        return all(one(v) for v in present)
    return any(one(v) for v in present)


def _conditions_hold(statement: Mapping[str, Any], request: Request) -> bool:
    for operator, block in (statement.get("Condition") or {}).items():
        for key, expected in block.items():
            if not _condition_holds(operator, key, expected, request):
                return False
    return True


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def _applies(statement: Mapping[str, Any], request: Request, *, resource_policy: bool) -> bool:
    allow = statement.get("Effect") == "Allow"
    if resource_policy and not _principal_matches(statement, request, allow):
        return False
    return (
        _action_matches(statement, request.action)
        and _resource_matches(statement, request)
        and _conditions_hold(statement, request)
    )


def _label(statement: Mapping[str, Any], index: int) -> str:
    return str(statement.get("Sid") or f"statement {index}")


def _matching(
    policies: Iterable[Policy], request: Request, effect: str, *, resource_policy: bool
) -> list[str]:
    found = []
    for policy in policies:
        for index, statement in enumerate(statements(load(policy))):
            if statement.get("Effect") == effect and _applies(
                statement, request, resource_policy=resource_policy
            ):
                found.append(_label(statement, index))
    return found


def _delegating(policy: Policy, request: Request) -> list[str]:
    """Allow statements of a key policy that name the caller's account (``root``)."""
    return [
        _label(st, i)
        for i, st in enumerate(statements(load(policy)))
        if st.get("Effect") == "Allow"
        and _delegates_to_account(st, request)
        and _action_matches(st, request.action)
        and _resource_matches(st, request)
        and _conditions_hold(st, request)
    ]


def evaluate(
    request: Request,
    identity_policies: Sequence[Policy],
    resource_policy: Policy | None = None,
    *,
    key_policy: bool = False,
) -> Outcome:
    """Decide ``request`` against the caller's identity policies and the resource's policy.

    For a same-account caller an Allow in either is enough, except that ``key_policy=True``
    (``resource_policy`` is a KMS key policy) needs the key policy to allow the caller, or to
    allow its account (``root``) and then an identity policy to allow it too.
    """
    resource = [resource_policy] if resource_policy is not None else []
    denies = _matching(identity_policies, request, "Deny", resource_policy=False)
    denies += _matching(resource, request, "Deny", resource_policy=True)
    if denies:
        return Outcome(Decision.EXPLICIT_DENY, tuple(denies))
    by_identity = _matching(identity_policies, request, "Allow", resource_policy=False)
    by_resource = _matching(resource, request, "Allow", resource_policy=True)
    if key_policy:
        if by_resource:
            return Outcome(Decision.ALLOW, tuple(by_resource))
        delegated = _delegating(resource_policy, request) if resource_policy is not None else []
        if delegated and by_identity:
            return Outcome(Decision.ALLOW, tuple(delegated + by_identity))
        return Outcome(Decision.IMPLICIT_DENY)
    if by_identity or by_resource:
        return Outcome(Decision.ALLOW, tuple(by_identity + by_resource))
    return Outcome(Decision.IMPLICIT_DENY)


def action_granted_by(policies: Iterable[Policy], pattern_action: str) -> bool:
    """Whether any Allow statement's Action list could match ``pattern_action`` (unused-grant
    listing)."""
    return any(
        fnmatch.fnmatchcase(pattern_action.lower(), p.lower())
        for policy in policies
        for st in statements(load(policy))
        if st.get("Effect") == "Allow"
        for p in _as_list(st.get("Action"))
    )
