"""The host's side of the runner protocol (envs/sandbox/runner.py) on answers made by hand: the runner lives in
a host whose root is the agent, so anything outside the protocol ends the runner rather than being believed."""

from __future__ import annotations

import base64

import pytest

from peergym.envs.sandbox.runner import RunnerBroken, _exec_environment, _Streams

NONCE = b"0123456789abcdef"


def frame(kind: int, data: bytes) -> bytes:
    return bytes([kind, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def answer(out: bytes, err: bytes, status: int = 0) -> bytes:
    return (frame(1, base64.b64encode(out) + b"\n\x1e" + NONCE + b" %d\n" % status)
            + frame(2, base64.b64encode(err) + b"\n\x1e" + NONCE + b"\n"))  # fmt: skip


def test_an_answer_in_frames_of_any_size() -> None:
    data = answer(b"out\x00\xff" * 5000, b"err", 3)
    for size in (1, 7, 4096, len(data)):
        streams = _Streams(NONCE)
        for i in range(0, len(data), size):
            assert not streams.done()
            streams.feed(data[i : i + size])
        assert streams.done() and streams.status == 3
        assert (streams.decoded(1), streams.decoded(2)) == (b"out\x00\xff" * 5000, b"err")


def test_a_refusal_ends_both_streams() -> None:
    streams = _Streams(NONCE)
    streams.feed(frame(1, b"\x1e" + NONCE + b" refused\n"))
    assert streams.done() and streams.refused


@pytest.mark.parametrize(
    "data",
    [
        frame(1, b"\x1efedcba9876543210 0\n"),  # another call's marker
        frame(1, b"aGk=\n\x1e" + NONCE + b" 0\nmore"),  # bytes after the end
        frame(1, b"\x1e" + NONCE + b" x\n"),  # not a status
        frame(1, b"\x1e" + NONCE + b" 12345\n"),  # not a status either
        frame(2, b"\x1e" + NONCE + b" 0\n"),  # stderr's end carries nothing
        frame(3, b"x"),  # no such stream
        answer(b"a", b"b") + frame(1, b"late"),  # after the end of the answer
    ],
)
def test_anything_outside_the_protocol_breaks_the_runner(data: bytes) -> None:
    with pytest.raises(RunnerBroken):
        _Streams(NONCE).feed(data)


def test_output_that_is_not_base64_breaks_the_runner() -> None:
    streams = _Streams(NONCE)
    streams.feed(frame(1, b"not base64!\n\x1e" + NONCE + b" 0\n") + frame(2, b"\x1e" + NONCE + b"\n"))
    assert streams.done()
    with pytest.raises(RunnerBroken):
        streams.decoded(1)


def test_the_environment_is_built_as_docker_exec_builds_it() -> None:
    env = _exec_environment(["PATH=/opt/bin", "LANG=C.UTF-8"], "fs-45", {"X": "1", "LANG": "en_GB.UTF-8"})
    assert list(env.items()) == [
        ("PATH", "/opt/bin"),
        ("HOSTNAME", "fs-45"),
        ("LANG", "en_GB.UTF-8"),
        ("X", "1"),
    ]


def test_an_endless_answer_is_cut_off(monkeypatch) -> None:
    from peergym.envs.sandbox import runner

    monkeypatch.setattr(runner, "MAX_ANSWER", 1 << 16)
    streams = _Streams(NONCE)
    with pytest.raises(RunnerBroken, match="answer passed"):
        for _ in range(100):
            streams.feed(frame(1, b"eWVz\n" * 1000))  # `yes`, base64-encoded, with no end line
