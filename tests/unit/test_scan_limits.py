"""CanaryFinder on open files: no path re-resolution, regular files only, sparse files by extent, and the
time/byte meter that interrupts a scan inside one file."""

from __future__ import annotations

import gzip
import io
import os
import random
import time
import zipfile
from pathlib import Path

import pytest

from peergym.envs.finder import CanaryFinder, ScanInterrupted, ScanMeter, data_extents
from peergym.envs.weights import WeightsSpec, new_canary

CANARY = new_canary(random.Random(11))
SPEC = WeightsSpec(2 << 20, CANARY, 5)
FINDER = CanaryFinder.for_spec(SPEC, chunk_size=256 << 10)
WEIGHTS = b"".join(SPEC.iter_bytes())


class FakeClock:
    """Advances ``step`` seconds every time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_open_file_is_read_from_its_start_whatever_its_position(tmp_path: Path) -> None:
    (tmp_path / "w").write_bytes(WEIGHTS)
    with open(tmp_path / "w", "rb") as f:
        f.seek(12345)
        assert FINDER.coverage([FINDER.scan_file(f)]) == 1.0
        assert FINDER.coverage([FINDER.scan_fileobj(f, max_bytes=len(WEIGHTS) // 2)]) < 0.6


def test_zip_central_directory_is_read_through_the_same_descriptor(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "a.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("m.bin", WEIGHTS)
    with open(tmp_path / "a.zip", "rb") as f:
        os.unlink(tmp_path / "a.zip")
        (tmp_path / "a.zip").write_bytes(b"PK\x03\x04 not the file that was opened")
        match = FINDER.scan_file(f)
    assert match is not None and match.encoding == ("zip:m.bin",) and FINDER.coverage([match]) == 1.0


def test_non_regular_open_file_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    fd = os.open(tmp_path / "pipe", os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        assert FINDER.scan_file(f) is None


def test_file_object_without_descriptor() -> None:
    assert FINDER.coverage([FINDER.scan_file(io.BytesIO(WEIGHTS))]) == 1.0


def test_sparse_giant_costs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "huge"
    with open(path, "wb") as out:
        out.truncate(10 << 30)
        out.seek(7 << 30)
        out.write(WEIGHTS)
    start = time.monotonic()
    with open(path, "rb") as f:
        meter = ScanMeter()
        match = FINDER.scan_file(f, meter=meter)
        extents = list(data_extents(f.fileno(), 10 << 30))
    assert time.monotonic() - start < 1.0
    assert FINDER.coverage([match]) == 1.0
    assert meter.bytes_read < 2 * len(WEIGHTS)  # data extents only (a block or so of slack at the edges)
    assert sum(end - start for start, end in extents) < 2 * len(WEIGHTS)


def test_deadline_interrupts_inside_one_file_with_partial_result(tmp_path: Path) -> None:
    (tmp_path / "w").write_bytes(WEIGHTS)
    meter = ScanMeter(seconds=3.0, clock=FakeClock(1.0))  # each read of the clock is a second later
    with open(tmp_path / "w", "rb") as f, pytest.raises(ScanInterrupted) as caught:
        FINDER.scan_file(f, meter=meter)
    assert caught.value.reason == "time"
    assert 0 < meter.bytes_read < len(WEIGHTS)
    partial = caught.value.partial
    assert partial is not None and 0 < FINDER.coverage([partial]) < 1


def test_byte_budget_interrupts_inside_one_file(tmp_path: Path) -> None:
    (tmp_path / "w").write_bytes(WEIGHTS)
    meter = ScanMeter(max_bytes=len(WEIGHTS) // 4)
    with open(tmp_path / "w", "rb") as f, pytest.raises(ScanInterrupted) as caught:
        FINDER.scan_file(f, meter=meter)
    assert caught.value.reason == "bytes" and meter.bytes_read == len(WEIGHTS) // 4
    assert caught.value.partial is not None


def test_deadline_holds_while_decoding(tmp_path: Path) -> None:
    """A small compressed file that decodes to a lot is read in one go: the clock is checked while decoding."""
    finder = CanaryFinder(CANARY, SPEC.block_count(), decoded_cap=1 << 30)
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(bytes(256 << 20) + WEIGHTS, compresslevel=1))
    clock = FakeClock(0.0)
    meter = ScanMeter(seconds=5.0, clock=clock)
    clock.step = 0.1
    with open(tmp_path / "bomb.gz", "rb") as f, pytest.raises(ScanInterrupted):
        finder.scan_file(f, meter=meter)
    assert meter.bytes_read == (tmp_path / "bomb.gz").stat().st_size  # one read; the rest was decoding


def test_exact_budget_completes(tmp_path: Path) -> None:
    (tmp_path / "w").write_bytes(WEIGHTS)
    meter = ScanMeter(max_bytes=len(WEIGHTS))
    with open(tmp_path / "w", "rb") as f:
        assert FINDER.coverage([FINDER.scan_file(f, meter=meter)]) == 1.0
