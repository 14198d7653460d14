"""One frame's bytes to a JSON message, strictly.

`json.loads` alone is too lenient for a sidecar that must answer every frame: it accepts
`NaN` and `Infinity` (not JSON, and they would come back out as invalid JSON), turns `1e400`
into infinity, keeps the last of duplicate keys (so two readers of one message may disagree
on its id or method), guesses UTF-16 and UTF-32 from null bytes, and lets a few thousand
nested arrays raise RecursionError. Here each of those is a clear `ParseError` or
`InvalidRequest`.
"""

from __future__ import annotations

import json
import json.scanner
import math
from typing import Any

from ..protocol.errors import InvalidRequest, ParseError

MAX_DEPTH = 32  # a request nests 3 deep; deeper input is refused before anything walks it
_BOM = b"\xef\xbb\xbf"


class _DuplicateKey(ValueError):
    pass


class _NotJson(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return value


def _number(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotJson(f"the number {text[:40]} is out of range")
    return value


def _constant(name: str) -> float:
    raise _NotJson(f"{name} is not JSON")


# The C scanner straight: `JSONDecoder.decode` adds two regex matches a message around it.
_SCAN = json.scanner.make_scanner(
    json.JSONDecoder(  # type: ignore[arg-type]  # typeshed wants the scanner's own type
        object_pairs_hook=_object, parse_float=_number, parse_constant=_constant
    )
)
_BLANK = " \t\n\r"  # JSON's white space, no more


def _decode(text: str) -> Any:
    if text[:1] in _BLANK or text[-1:] in _BLANK:
        text = text.strip(_BLANK)
    try:
        value, end = _SCAN(text, 0)
    except StopIteration as stop:
        raise json.JSONDecodeError("Expecting value", text, stop.value) from None
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def parse_message(payload: bytes) -> Any:
    """The message a frame holds. Raises `ParseError` for what is not JSON (or not UTF-8,
    or nests deeper than `MAX_DEPTH`) and `InvalidRequest` for duplicate keys."""
    if payload.startswith(_BOM):  # tolerated, as RFC 8259 allows
        payload = payload[len(_BOM) :]
    try:
        message = _decode(payload.decode())
    except _DuplicateKey as exc:
        raise InvalidRequest(f"Invalid request: duplicate key {str(exc)[:64]!r}") from None
    except RecursionError:
        raise ParseError(f"Parse error: nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise ParseError("Parse error: the message is not UTF-8") from None
    except ValueError as exc:
        raise ParseError(f"Parse error: the message is not JSON ({_reason(exc)})") from None
    # Counting brackets is cheap; walking is needed only when there are many of them.
    if payload.count(b"[") + payload.count(b"{") > MAX_DEPTH and _too_deep(message):
        raise ParseError(f"Parse error: nested deeper than {MAX_DEPTH} levels")
    return message


def _reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at character {exc.pos}"
    if isinstance(exc, _NotJson):
        return str(exc)
    return "a number with too many digits"  # int() refuses over 4300 of them


def _too_deep(message: Any) -> bool:
    """True if containers nest more than MAX_DEPTH deep; iterative, so any depth is safe."""
    level: list[Any] = [message] if isinstance(message, dict | list) else []
    for _ in range(MAX_DEPTH):
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return bool(level)
