"""Bytes to messages and back: NDJSON (one JSON object per line) or LSP-style
Content-Length headers. Decoders are incremental and never hold more than one message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.encoder import (  # type: ignore[attr-defined]
    c_make_encoder,
    encode_basestring,
    encode_basestring_ascii,
)

TYPE_CHECKING = False  # typing is start-up time spent before `ready`
if TYPE_CHECKING:
    from typing import Literal, TypeAlias

    Framing: TypeAlias = Literal["ndjson", "lsp"]
MAX_MESSAGE = 1 << 20  # 1 MiB: a longer message is skipped to its end and answered -32600
_MAX_HEADER = 8192
_MAX_SKIP = 64 * MAX_MESSAGE  # a longer Content-Length is taken for a corrupt header
_CONTENT_LENGTH = re.compile(rb"^content-length\s*:\s*(\d{1,18})\s*$", re.IGNORECASE | re.MULTILINE)


class Oversized:
    """A message longer than the limit was skipped."""

    def __repr__(self) -> str:
        return "Oversized()"


class BadHeader:
    """An LSP header block without a usable Content-Length was dropped."""

    def __repr__(self) -> str:
        return "BadHeader()"


OVERSIZED = Oversized()
BAD_HEADER = BadHeader()
if TYPE_CHECKING:
    Frame: TypeAlias = bytes | Oversized | BadHeader


def detect_framing(head: bytes) -> Framing | None:
    """From a client's first bytes: `{`/`[` NDJSON, `Content-Length` LSP, else NDJSON.
    None while only white space has arrived."""
    head = head.lstrip()
    if not head:
        return None
    if head[:1] in (b"{", b"["):
        return "ndjson"
    prefix = head[:14].lower()
    if len(prefix) < 14 and b"content-length".startswith(prefix):
        return None  # could still be a header: wait for more
    return "lsp" if prefix == b"content-length" else "ndjson"


class NdjsonDecoder:
    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self._limit = limit
        self._partial = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            piece = data[start:end]
            start = end + 1
            if self._skipping:
                self._skipping = False
                frames.append(OVERSIZED)
                continue
            if self._partial:
                self._partial += piece
                piece = bytes(self._partial)
                self._partial.clear()
            if len(piece) > self._limit:
                frames.append(OVERSIZED)
            elif line := piece.strip():  # tolerates \r\n and blank lines
                frames.append(line)
        if not self._skipping:
            self._partial += data[start:]
            if len(self._partial) > self._limit:
                self._partial.clear()
                self._skipping = True
        return frames


class LspDecoder:
    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._length: int | None = None
        self._skip = 0

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        self._buffer += data
        while True:
            if self._skip:
                dropped = min(self._skip, len(self._buffer))
                del self._buffer[:dropped]
                self._skip -= dropped
                if self._skip:
                    return frames
            if self._length is None and not self._read_header(frames):
                return frames
            if self._length is not None:
                if len(self._buffer) < self._length:
                    return frames
                frames.append(bytes(self._buffer[: self._length]))
                del self._buffer[: self._length]
                self._length = None

    def _read_header(self, frames: list[Frame]) -> bool:
        while bytes(self._buffer[:1]) in (b"\r", b"\n", b" "):
            del self._buffer[:1]
        match = re.search(rb"\r?\n\r?\n", self._buffer)
        if match is None:
            if len(self._buffer) > _MAX_HEADER:
                self._buffer.clear()
                frames.append(BAD_HEADER)
            return False
        header = bytes(self._buffer[: match.start()])
        del self._buffer[: match.end()]
        length = _CONTENT_LENGTH.search(header)
        if length is None:
            frames.append(BAD_HEADER)
            return True
        size = int(length.group(1))
        if size > _MAX_SKIP:
            # No client sends that much: a corrupt header. Skipping it would swallow every
            # message after it, so only the header goes.
            frames.append(BAD_HEADER)
        elif size > self._limit:
            frames.append(OVERSIZED)  # answered now, not once the body has gone by
            self._skip = size
        else:
            self._length = size
        return True


def _not_json(value: object) -> object:
    raise TypeError(f"a {type(value).__name__} is not JSON")


def _encoder(ensure_ascii: bool) -> Callable[[object], str]:
    """Compact JSON text, refusing NaN (the parser lets none in; this keeps a bug of ours
    from writing invalid JSON). Built once: `json.dumps` and `JSONEncoder.encode` build
    their C encoder anew on every call, a tenth of a quick answer's time."""
    if c_make_encoder is None:  # no _json accelerator: the pure-Python encoder
        return json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=False
        ).encode
    strings = encode_basestring_ascii if ensure_ascii else encode_basestring
    # No circular-reference markers: what we send is data we built, and stateless is what
    # lets the stdin thread and the event loop share one encoder.
    chunks = c_make_encoder(None, _not_json, strings, None, ":", ",", False, False, False)
    return lambda message: "".join(chunks(message, 0))


_ENCODE = _encoder(ensure_ascii=False)
_ENCODE_ASCII = _encoder(ensure_ascii=True)


def encode_json(message: object) -> bytes:
    """One message as compact UTF-8 JSON: the body of every frame we send."""
    try:
        return _ENCODE(message).encode()
    except UnicodeEncodeError:  # a lone surrogate, echoed from an escape in the request
        return _ENCODE_ASCII(message).encode()


def encode(body: bytes, framing: Framing) -> bytes:
    if framing == "lsp":
        return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    return body + b"\n"


def decoder_for(framing: Framing) -> NdjsonDecoder | LspDecoder:
    return LspDecoder() if framing == "lsp" else NdjsonDecoder()
