"""`passwordSecret.secretTemplate.data`: values with Go-template-style placeholders, rendered without evaluation.

Only this grammar is understood (anything else is an error naming the key, never code):

    {{ .Field }}                 Field in FIELDS
    {{ .Field | pipe ... }}      pipes in PIPES, applied left to right
    {{ function .Field | ... }}  a function of the Go operator's templates (FUNCTIONS, also usable as pipes),
                                 applied before the pipes: `{{ urlEncode .Password }}` as db-provision-operator
                                 writes it
    {{- ... -}}                  trim the whitespace before / after the action, as Go templates do
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

FIELDS = ("Username", "Password", "Host", "Port", "Database", "SSLMode", "Namespace", "Name", "CA")

PIPES: dict[str, Callable[[str], str]] = {
    "urlquery": lambda v: urllib.parse.quote(v, safe=""),
    "urlencode": lambda v: urllib.parse.quote(v, safe=""),
    "b64enc": lambda v: base64.b64encode(v.encode()).decode(),
    "quote": json.dumps,
    "upper": str.upper,
    "lower": str.lower,
}

# The one-argument functions of db-provision-operator's secret templates (Go: internal/secret/funcmap.go) that
# mean the same here, by name: each takes the field and gives what the Go function gives.
FUNCTIONS: dict[str, Callable[[str], str]] = {
    "urlEncode": lambda v: urllib.parse.quote_plus(v, safe=""),  # Go url.QueryEscape: a space becomes +
    "base64Encode": lambda v: base64.b64encode(v.encode()).decode(),
    "upper": str.upper,
    "lower": str.lower,
    "quote": json.dumps,
}
PIPES.update({name: fn for name, fn in FUNCTIONS.items() if name not in PIPES})

# Placeholders of the Go operator's templates that dbops does not fill, and why (the error says it).
REFUSED_FIELDS = {
    "TLSCert": "the instance's client certificate authenticates dbops' admin; dbops never copies it into a "
    "user's Secret. Give the application a certificate of its own",
    "TLSKey": "the instance's client key authenticates dbops' admin; dbops never copies it into a user's "
    "Secret. Give the application a key of its own",
}

PIPE_HELP = {
    "urlquery": "percent-encode every reserved character (for a URL's user, password or query)",
    "urlencode": "same as urlquery",
    "b64enc": "base64-encode",
    "quote": "wrap in double quotes, escaping as JSON does",
    "upper": "upper-case",
    "lower": "lower-case",
    "urlEncode": "as Go's url.QueryEscape (the Go operator's urlEncode): like urlquery, but a space becomes +",
    "base64Encode": "same as b64enc",
}

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_BODY = re.compile(
    r"^\s*(?:([A-Za-z][A-Za-z0-9]*)\s+)?\.([A-Za-z][A-Za-z0-9]*)\s*((?:\|\s*[A-Za-z][A-Za-z0-9]*\s*)*)$"
)


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class _Action:
    field: str
    pipes: tuple[str, ...]


_Part = str | _Action


def parse(text: str) -> list[_Part]:
    """Split a template into literal text and actions; raise TemplateError with a fix on anything unknown."""
    parts: list[_Part] = []
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(text):
        literal = text[pos : match.start()]
        if trim_next:
            literal = literal.lstrip()
        if match.group(1):
            literal = literal.rstrip()
        _check_literal(literal)
        if literal:
            parts.append(literal)
        parts.append(_parse_action(match.group(2)))
        trim_next = bool(match.group(3))
        pos = match.end()
    tail = text[pos:]
    if trim_next:
        tail = tail.lstrip()
    _check_literal(tail)
    if tail:
        parts.append(tail)
    return parts


def _check_literal(literal: str) -> None:
    if "{{" in literal:
        raise TemplateError("unclosed '{{'; write {{ .Field }}")
    if "}}" in literal:
        raise TemplateError("'}}' without '{{'")


def _parse_action(body: str) -> _Action:
    match = _BODY.match(body)
    if not match:
        raise TemplateError(
            f"cannot read {{{{{body}}}}}: write {{{{ .Field }}}}, {{{{ .Field | pipe }}}} or "
            f"{{{{ function .Field }}}} with Field one of {', '.join(FIELDS)} and function one of "
            f"{', '.join(FUNCTIONS)}"
        )
    function, name = match.group(1), match.group(2)
    if name in REFUSED_FIELDS:
        raise TemplateError(f"placeholder .{name}: {REFUSED_FIELDS[name]}")
    if name not in FIELDS:
        raise TemplateError(f"unknown placeholder .{name}; allowed: {', '.join('.' + f for f in FIELDS)}")
    if function is not None and function not in FUNCTIONS:
        raise TemplateError(f"unknown function {function!r}; allowed: {', '.join(FUNCTIONS)}")
    pipes: tuple[str, ...] = (function,) if function else ()
    pipes += tuple(p.strip() for p in match.group(3).split("|") if p.strip())
    for pipe in pipes:
        if pipe not in PIPES:
            raise TemplateError(f"unknown pipe {pipe!r}; allowed: {', '.join(PIPES)}")
    return _Action(name, pipes)


def _apply(action: _Action, value: str) -> str:
    for pipe in action.pipes:
        value = PIPES[pipe](value)
    return value


def render(text: str, values: Mapping[str, str]) -> str:
    return "".join(
        part if isinstance(part, str) else _apply(part, values[part.field]) for part in parse(text)
    )


def renderings(text: str, field: str, value: str) -> list[str]:
    """What each action on `field` in `text` renders `value` to, its pipes applied: the forms a password takes in
    a rendered template (`{{ .Password | urlquery | b64enc }}`), for whoever must find and mask them."""
    try:
        parts = parse(text)
    except TemplateError:
        return []
    return [_apply(part, value) for part in parts if isinstance(part, _Action) and part.field == field]
