"""rpc/framing: bytes to messages, whatever way the bytes are cut."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portd.rpc.framing import (
    BAD_HEADER,
    OVERSIZED,
    LspDecoder,
    NdjsonDecoder,
    decoder_for,
    detect_framing,
    encode,
)

MESSAGES = [b'{"a":1}', b'{"b":"two"}', b"[1,2,3]"]


def feed_bytewise(decoder: NdjsonDecoder | LspDecoder, data: bytes) -> list[object]:
    frames: list[object] = []
    for i in range(len(data)):
        frames += decoder.feed(data[i : i + 1])
    return frames


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_decoder_yields_each_message_once_however_the_bytes_are_split(framing: str) -> None:
    stream = b"".join(encode(m, framing) for m in MESSAGES)  # type: ignore[arg-type]
    assert decoder_for(framing).feed(stream) == MESSAGES  # type: ignore[arg-type]
    assert feed_bytewise(decoder_for(framing), stream) == MESSAGES  # type: ignore[arg-type]


def test_ndjson_tolerates_crlf_and_blank_lines() -> None:
    assert NdjsonDecoder().feed(b'\r\n\n{"a":1}\r\n\n  \n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']


def test_ndjson_holds_a_partial_line_until_its_newline() -> None:
    decoder = NdjsonDecoder()
    assert decoder.feed(b'{"a":') == []
    assert decoder.feed(b"1}\n") == [b'{"a":1}']


def test_ndjson_skips_an_oversized_line_to_its_end_and_goes_on() -> None:
    decoder = NdjsonDecoder(limit=10)
    frames = decoder.feed(b"x" * 25) + decoder.feed(b"y" * 25 + b'\n{"ok":1}\n')
    assert frames == [OVERSIZED, b'{"ok":1}']


def test_ndjson_rejects_a_line_one_byte_over_the_limit_and_accepts_one_at_it() -> None:
    assert NdjsonDecoder(limit=10).feed(b"a" * 10 + b"\n") == [b"a" * 10]
    assert NdjsonDecoder(limit=10).feed(b"a" * 11 + b"\n") == [OVERSIZED]


def test_lsp_skips_an_oversized_body_by_its_declared_length() -> None:
    decoder = LspDecoder(limit=10)
    stream = b"Content-Length: 30\r\n\r\n" + b"z" * 30 + encode(b'{"ok":1}', "lsp")
    assert feed_bytewise(decoder, stream) == [OVERSIZED, b'{"ok":1}']


def test_lsp_reports_an_oversized_body_as_soon_as_its_header_is_read() -> None:
    assert LspDecoder(limit=10).feed(b"Content-Length: 30\r\n\r\nzz") == [OVERSIZED]


@pytest.mark.parametrize(
    "length", [b"-5", b"+5", b"5x", b"1e3", b"", b"9" * 19, b"99999999999999999999999999999"]
)
def test_lsp_a_negative_absurd_or_unreadable_length_drops_only_the_header(length: bytes) -> None:
    stream = b"Content-Length: " + length + b"\r\n\r\n" + encode(b'{"ok":1}', "lsp")
    assert LspDecoder().feed(stream) == [BAD_HEADER, b'{"ok":1}']


messages = st.lists(st.binary(min_size=1, max_size=40).map(lambda b: b"{" + b + b"}"), max_size=8)


@given(messages, st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_lsp_yields_the_same_frames_however_a_stream_is_cut(
    bodies: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(encode(body, "lsp") for body in bodies)
    decoder, frames, start = LspDecoder(), [], 0
    for size in cuts * (len(stream) // sum(cuts) + 1):
        frames += decoder.feed(stream[start : start + size])
        start += size
    assert frames == bodies


@given(st.lists(st.binary(min_size=1, max_size=40).filter(lambda b: b.strip()), max_size=8))
def test_ndjson_yields_each_line_without_newlines_whatever_it_holds(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ") for line in lines]
    stream = b"".join(line + b"\n" for line in lines)
    expected = [line.strip() for line in lines if line.strip()]
    assert feed_bytewise(NdjsonDecoder(), stream) == expected


def test_lsp_reports_a_header_without_content_length_and_resynchronises() -> None:
    decoder = LspDecoder()
    frames = decoder.feed(b"Content-Type: x\r\n\r\n" + encode(b"{}", "lsp"))
    assert frames == [BAD_HEADER, b"{}"]


def test_lsp_accepts_other_headers_and_any_case() -> None:
    body = b'{"id":1}'
    frame = b"content-length: %d\r\nContent-Type: application/json\r\n\r\n%s" % (len(body), body)
    assert LspDecoder().feed(frame) == [body]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"{", "ndjson"),
        (b"  [", "ndjson"),
        (b"Content-Length: 5", "lsp"),
        (b"Content-Len", None),
        (b"\r\n", None),
        (b"garbage", "ndjson"),
        (b"Cx", "ndjson"),
    ],
)
def test_detect_framing_from_the_first_bytes(head: bytes, expected: str | None) -> None:
    assert detect_framing(head) == expected


def test_encode_lsp_counts_bytes_not_characters() -> None:
    body = '{"s":"ä"}'.encode()
    assert encode(body, "lsp") == b"Content-Length: %d\r\n\r\n" % len(body) + body
