"""The persistent shell's wire protocol, without Docker."""

from __future__ import annotations

import subprocess

import pytest

from peergym.envs.sandbox.shell import _OutputCollector, ansi_c_quote

TRICKY = [
    "echo 'single' \"double\" \\back $HOME `x`",
    "printf 'a\\tb\\n'; echo done",
    "cat <<'EOF'\nline one\n  line two\nEOF",
    "echo héllo wörld ✓",
    "echo $'\\x1e' not a marker",
]


@pytest.mark.parametrize("command", TRICKY)
def test_ansi_c_quote_round_trips_through_real_bash(command: str) -> None:
    quoted = ansi_c_quote(command)
    assert b"\n" not in quoted  # one protocol line per command
    out = subprocess.run(["bash", "-c", b"printf %s ".decode() + quoted.decode()], capture_output=True)
    assert out.stdout == command.encode()


def feed_all(collector: _OutputCollector, stream: bytes, step: int):
    for i in range(0, len(stream), step):
        found = collector.feed(stream[i : i + step])
        if found:
            return found
    return None


@pytest.mark.parametrize("step", [1, 3, 7, 4096])
def test_marker_found_across_any_chunk_boundary(step: int) -> None:
    prefix = b"\n\x1eabc123 "
    collector = _OutputCollector(cap=1000, marker_prefix=prefix)
    found = feed_all(collector, b"hello\nworld" + prefix + b"17\x1e\n", step)
    assert found is not None and found[1] == 17
    assert collector.result(found[0]) == ("hello\nworld", 0)


def test_lookalike_marker_with_other_nonce_does_not_end_the_command() -> None:
    collector = _OutputCollector(cap=1000, marker_prefix=b"\n\x1egood ")
    assert collector.feed(b"x\n\x1ebad 0\x1e\nmore") is None
    assert collector.feed(b"\n\x1egood 0\x1e\n") is not None


def test_cap_keeps_head_counts_the_rest_and_bounds_memory() -> None:
    prefix = b"\n\x1en "
    collector = _OutputCollector(cap=100, marker_prefix=prefix)
    peak = 0
    for _ in range(1000):
        assert collector.feed(b"y\n" * 500) is None
        peak = max(peak, len(collector.data))
    found = collector.feed(prefix + b"0\x1e\n")
    assert found is not None
    text, truncated = collector.result(found[0])
    assert truncated == 1000 * 1000 - 100
    assert text.startswith("y\n" * 50)
    assert text.endswith(f"[output truncated: {truncated} bytes]")
    assert peak < 100 + 1000 + 200  # cap + one chunk + window: not the megabyte that went through
