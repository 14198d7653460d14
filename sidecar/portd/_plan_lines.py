"""Line numbers of the keys of a TOML document.

tomllib returns plain values with no positions, but every plan error and finding has to point
at a line. This scanner walks the text once and records, for each key path, the line its key is
written on: table headers (`[services.x]`), plain and dotted keys, quoted keys, and keys inside
inline tables (`console = { port = 9091, category = "infra" }`). It runs only on text tomllib
has already accepted, so it can skip whatever it does not need (arrays, strings, dates) without
validating it.
"""

from __future__ import annotations

import re
import tomllib

KeyPath = tuple[str, ...]

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",}]\n#")
_INLINE_BLANKS = frozenset(" \t\r")
_POSITION = re.compile(r"\s*\((?:at line (\d+), column \d+|at end of document)\)\s*$")


def toml_error_line(err: tomllib.TOMLDecodeError, text: str) -> int:
    """The line tomllib blames; "at end of document" becomes the last line."""
    # Python 3.14 added err.lineno; older versions only put the position in the message.
    lineno = getattr(err, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    match = _POSITION.search(str(err))
    if match and match.group(1):
        return int(match.group(1))
    return max(1, len(text.splitlines()))


def toml_error_reason(err: tomllib.TOMLDecodeError) -> str:
    """tomllib's message without its position suffix (the caller reports the line itself)."""
    msg = getattr(err, "msg", None)
    if isinstance(msg, str):
        return msg
    return _POSITION.sub("", str(err))


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map each key path (("services", "minio", "console", "port")) to its 1-based line."""
    scanner = _Scanner(text)
    scanner.document()
    return scanner.lines


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of `path`, else of its nearest recorded parent (a header beats no line at all)."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}

    def _peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.text[i] if i < len(self.text) else ""

    def _advance(self, n: int = 1) -> None:
        chunk = self.text[self.pos : self.pos + n]
        self.line += chunk.count("\n")
        self.pos += len(chunk)

    def _skip_blank(self, *, newlines: bool) -> None:
        while True:
            c = self._peek()
            if c in _INLINE_BLANKS or (newlines and c == "\n"):
                self._advance()
            elif c == "#":
                self._skip_to_line_end()
            else:
                return

    def _skip_to_line_end(self) -> None:
        end = self.text.find("\n", self.pos)
        self._advance((len(self.text) if end < 0 else end) - self.pos)

    def _record(self, path: KeyPath, line: int) -> None:
        # The first mention wins: a dotted key creates its parent tables on its own line.
        for i in range(1, len(path) + 1):
            self.lines.setdefault(path[:i], line)

    def document(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip_blank(newlines=True)
            c = self._peek()
            if not c:
                return
            line = self.line
            if c == "[":
                self._advance(2 if self._peek(1) == "[" else 1)
                table = self._key()
                self._record(table, line)
                self._skip_to_line_end()
                continue
            key = self._key()
            if not key:  # cannot happen in valid TOML; never loop on it
                self._skip_to_line_end()
                continue
            self._record(table + key, line)
            self._value_after_equals(table + key)

    def _value_after_equals(self, path: KeyPath | None) -> None:
        self._skip_blank(newlines=False)
        if self._peek() == "=":
            self._advance()
        self._skip_blank(newlines=False)
        self._value(path)

    def _key(self) -> KeyPath:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            part = self._simple_key()
            if part is None:
                break
            parts.append(part)
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                break
            self._advance()
        return tuple(parts)

    def _simple_key(self) -> str | None:
        c = self._peek()
        if c in ('"', "'"):
            start = self.pos
            self._skip_string()
            raw = self.text[start : self.pos]
            try:  # let tomllib undo the escapes, so the path matches its dict keys exactly
                return str(tomllib.loads(f"k = {raw}")["k"])
            except tomllib.TOMLDecodeError:
                return raw.strip(c)
        start = self.pos
        while self._peek() and self._peek() in _BARE_KEY_CHARS:
            self._advance()
        return self.text[start : self.pos] or None

    def _skip_string(self) -> None:
        quote = self._peek()
        escapes = quote == '"'
        if self.text.startswith(quote * 3, self.pos):
            self._advance(3)
            while self.pos < len(self.text):
                if escapes and self._peek() == "\\":
                    self._advance(2)
                elif self.text.startswith(quote * 3, self.pos):
                    self._advance(3)
                    while self._peek() == quote:  # `""""` ends with a quote in the content
                        self._advance()
                    return
                else:
                    self._advance()
            return
        self._advance()
        while self.pos < len(self.text) and self._peek() != "\n":
            c = self._peek()
            self._advance(2 if escapes and c == "\\" else 1)
            if c == quote:
                return

    def _value(self, path: KeyPath | None) -> None:
        c = self._peek()
        if c == "{":
            self._inline_table(path)
        elif c == "[":
            self._array()
        elif c in ('"', "'"):
            self._skip_string()
        else:
            while self._peek() and self._peek() not in _SCALAR_END:
                self._advance()

    def _inline_table(self, path: KeyPath | None) -> None:
        self._advance()
        while True:
            self._skip_blank(newlines=True)
            c = self._peek()
            if not c:
                return
            if c in ",}":
                self._advance()
                if c == "}":
                    return
                continue
            line = self.line
            key = self._key()
            if not key:
                self._advance()
                continue
            if path is not None:
                self._record(path + key, line)
            self._value_after_equals(None if path is None else path + key)

    def _array(self) -> None:
        # Array elements have no key path of their own; plans never need their lines.
        self._advance()
        while True:
            self._skip_blank(newlines=True)
            c = self._peek()
            if not c:
                return
            if c in ",]":
                self._advance()
                if c == "]":
                    return
                continue
            before = self.pos
            self._value(None)
            if self.pos == before:
                self._advance()
