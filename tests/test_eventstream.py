"""AWS event-stream framing, checked against botocore's own decoder (``EventStreamBuffer``)."""

from __future__ import annotations

import struct
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer

from keystile.eventstream import EventStreamError, EventStreamParser, encode_message

FRAMES = [
    ({":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, b'{"bytes":"eyJ0eXBlIjoicGluZyJ9"}'),
    ({":exception-type": "throttlingException", ":content-type": "application/json", ":message-type": "exception"}, b'{"message":"slow down"}'),
    ({}, b""),
    ({"x": "é ünïcode"}, "π".encode() * 1000),
]


def botocore_decode(data: bytes) -> list[tuple[dict, bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(message.headers, message.payload) for message in buffer]


@pytest.mark.parametrize(("headers", "payload"), FRAMES)
def test_botocore_reads_what_keystile_writes(headers, payload):
    assert botocore_decode(encode_message(headers, payload)) == [(headers, payload)]


def test_keystile_reads_what_botocore_reads_split_anywhere():
    stream = b"".join(encode_message(h, p) for h, p in FRAMES)
    expected = botocore_decode(stream)
    for step in (1, 3, 7, 64, len(stream)):
        parser = EventStreamParser()
        got = []
        for i in range(0, len(stream), step):
            got += [(m.headers, m.payload) for m in parser.feed(stream[i : i + step])]
        assert got == expected, step


def test_a_frame_comes_out_as_soon_as_its_last_byte_arrives_with_its_exact_bytes():
    frame = encode_message(*FRAMES[0])
    parser = EventStreamParser()
    assert parser.feed(frame[:-1]) == []
    [message] = parser.feed(frame[-1:])
    assert message.raw == frame


def test_header_types_other_than_strings():
    # name, type 1 (false), name, type 4 (int32), name, type 6 (bytes): built by hand per the format
    block = b"\x01a\x01" + b"\x01b\x04" + struct.pack(">i", -5) + b"\x01c\x06" + struct.pack(">H", 2) + b"\xff\x00"
    total = 12 + len(block) + 4
    prelude = struct.pack(">II", total, len(block))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + block
    frame = body + struct.pack(">I", zlib.crc32(body))
    assert botocore_decode(frame) == [({"a": False, "b": -5, "c": b"\xff\x00"}, b"")]
    [message] = EventStreamParser().feed(frame)
    assert message.headers == {"a": False, "b": -5, "c": b"\xff\x00"}


@pytest.mark.parametrize("position", [2, 9, -1, -20])
def test_a_flipped_bit_is_an_error_not_a_wrong_event(position):
    frame = bytearray(encode_message(*FRAMES[1]))
    frame[position] ^= 0x10
    with pytest.raises(EventStreamError):
        EventStreamParser().feed(bytes(frame))


def test_absurd_lengths_are_refused_before_the_bytes_arrive():
    prelude = struct.pack(">II", 100 * 1024 * 1024, 0)
    with pytest.raises(EventStreamError):
        EventStreamParser().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


def test_a_partial_frame_at_the_end_is_not_pending_work():
    parser = EventStreamParser()
    parser.feed(encode_message(*FRAMES[0])[:10])
    assert parser.pending == b"" and parser.close() == []


def test_frames_read_whole_before_a_bad_one_are_kept_on_the_error():
    good = encode_message(*FRAMES[0])
    bad = bytearray(encode_message(*FRAMES[1]))
    bad[-1] ^= 1
    with pytest.raises(EventStreamError) as info:
        EventStreamParser().feed(good + good + bytes(bad))
    assert [m.raw for m in info.value.parsed] == [good, good]
