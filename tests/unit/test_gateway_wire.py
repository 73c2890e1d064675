"""Pre-framed websocket text frames, checked by the websockets library's own parser."""

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from services.gateway.wire import Message, raw_writer, text_frame


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 200_000])
def test_text_frame_round_trips_at_every_length_encoding(size: int) -> None:
    payload = ("é" * size).encode()[:size]
    frame = parse(text_frame(payload))
    assert frame.fin and frame.opcode is Opcode.TEXT and frame.data == payload


def test_message_frames_once() -> None:
    message = Message('{"type":"frame"}')
    assert message.framed is message.framed
    assert parse(message.framed).data == b'{"type":"frame"}'


def test_no_fast_path_for_unknown_servers() -> None:
    async def asgi_send(message: object) -> None:
        return None

    assert raw_writer(asgi_send) is None
