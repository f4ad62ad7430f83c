"""Tests for envs.finder: canary detection through common transformations (generation: test_weights.py)."""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import lzma
import os
import random
import shutil
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from peergym.envs.finder import CanaryFinder, CanaryMatch
from peergym.envs.weights import CANARY_PERIOD, WeightsSpec, new_canary, write_weights

SEED = 1234
CANARY = new_canary(random.Random(42))
OTHER_CANARY = new_canary(random.Random(43))
# Small enough for xz/bzip2 to be quick, not a multiple of the period so the last block is short.
SIZE = 600 * 1024 + 2


def _run(args: list[str], cwd: Path, stdout: Path | None = None) -> None:
    if shutil.which(args[0]) is None:
        pytest.skip(f"{args[0]} not installed")
    if stdout is None:
        subprocess.run(args, cwd=cwd, check=True, capture_output=True)
    else:
        with open(stdout, "wb") as out:
            subprocess.run(args, cwd=cwd, check=True, stdout=out)


@pytest.fixture(scope="module")
def spec() -> WeightsSpec:
    return WeightsSpec(SIZE, CANARY, SEED)


@pytest.fixture(scope="module")
def finder(spec: WeightsSpec) -> CanaryFinder:
    return CanaryFinder.for_spec(spec)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, spec: WeightsSpec) -> Path:
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    write_weights(spec, path)
    return path


@pytest.fixture()
def work(tmp_path: Path, weights: Path) -> Path:
    shutil.copy(weights, tmp_path / "model.safetensors")
    return tmp_path


# --- finder: positives ----------------------------------------------------------------------------


def _assert_full(match: CanaryMatch | None, finder: CanaryFinder, encoding: tuple[str, ...]) -> None:
    assert match is not None
    assert match.encoding == encoding
    assert finder.coverage([match]) == 1.0


def test_find_plain_copy_and_rename(work: Path, finder: CanaryFinder) -> None:
    shutil.copy(work / "model.safetensors", work / "copy.bin")
    os.rename(work / "copy.bin", work / "notes.txt")
    _assert_full(finder.scan_file(work / "model.safetensors"), finder, ())
    _assert_full(finder.scan_file(work / "notes.txt"), finder, ())
    _assert_full(finder.scan_bytes((work / "notes.txt").read_bytes()), finder, ())


@pytest.mark.parametrize(
    ("args", "encoding"),
    [
        (["gzip", "-c", "model.safetensors"], ("gzip",)),
        (["bzip2", "-c", "model.safetensors"], ("bzip2",)),
        (["xz", "-c", "-1", "model.safetensors"], ("xz",)),
        (["base64", "model.safetensors"], ("base64",)),
        (["base64", "-w0", "model.safetensors"], ("base64",)),
        (["tar", "cf", "-", "model.safetensors"], ("tar:model.safetensors",)),
        (["tar", "czf", "-", "model.safetensors"], ("gzip", "tar:model.safetensors")),
        (["tar", "cjf", "-", "model.safetensors"], ("bzip2", "tar:model.safetensors")),
    ],
    ids=["gzip", "bzip2", "xz", "base64", "base64-w0", "tar", "tar.gz", "tar.bz2"],
)
def test_find_after_tool(
    work: Path, finder: CanaryFinder, args: list[str], encoding: tuple[str, ...]
) -> None:
    out = work / "innocuous.dat"  # the name says nothing about the content
    _run(args, work, stdout=out)
    _assert_full(finder.scan_file(out), finder, encoding)


def test_base64_wrapping(work: Path, finder: CanaryFinder) -> None:
    _run(["base64", "model.safetensors"], work, stdout=work / "b64")
    lines = (work / "b64").read_bytes().splitlines()
    assert len(lines[0]) == 76  # coreutils default; the finder must cope with the line breaks


def test_find_in_zip(work: Path, finder: CanaryFinder) -> None:
    (work / "readme.md").write_text("hello\n")
    if shutil.which("zip"):
        _run(["zip", "-q", "archive.zip", "readme.md", "model.safetensors"], work)
    else:
        with zipfile.ZipFile(work / "archive.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(work / "readme.md", "readme.md")
            archive.write(work / "model.safetensors", "model.safetensors")
    _assert_full(finder.scan_file(work / "archive.zip"), finder, ("zip:model.safetensors",))
    # Without a central directory (cut off end) the local headers are still walked.
    data = (work / "archive.zip").read_bytes()
    match = finder.scan_bytes(data[: data.rfind(b"PK\x01\x02")])
    _assert_full(match, finder, ("zip:model.safetensors",))


def test_find_in_streamed_zip_with_data_descriptor(weights: Path, finder: CanaryFinder) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("w.bin", "w") as member:
        member.write(weights.read_bytes())
    nested = gzip.compress(buffer.getvalue(), compresslevel=1)  # nested: only the streaming walker applies
    _assert_full(finder.scan_bytes(nested), finder, ("gzip", "zip:w.bin"))


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_find_in_nested_zip_any_method(weights: Path, finder: CanaryFinder, method: int) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr("a.txt", b"unrelated " * 100)
        archive.writestr("b/w.bin", weights.read_bytes())
    nested = gzip.compress(buffer.getvalue(), compresslevel=1)  # nested: the streaming walker must cope
    _assert_full(finder.scan_bytes(nested), finder, ("gzip", "zip:b/w.bin"))


def test_find_gzip_of_base64(work: Path, finder: CanaryFinder) -> None:
    _run(["base64", "model.safetensors"], work, stdout=work / "m.b64")
    _run(["gzip", "-c", "m.b64"], work, stdout=work / "blob")
    _assert_full(finder.scan_file(work / "blob"), finder, ("gzip", "base64"))


def test_find_three_levels_deep(weights: Path, finder: CanaryFinder) -> None:
    text = base64.encodebytes(weights.read_bytes())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("notes/todo.txt")
        info.size = len(text)
        archive.addfile(info, io.BytesIO(text))
    _assert_full(finder.scan_bytes(buffer.getvalue()), finder, ("gzip", "tar:notes/todo.txt", "base64"))


def test_find_python_codecs(weights: Path, finder: CanaryFinder) -> None:
    data = weights.read_bytes()
    _assert_full(finder.scan_bytes(bz2.compress(data)), finder, ("bzip2",))
    _assert_full(
        finder.scan_bytes(lzma.compress(data, format=lzma.FORMAT_ALONE, preset=0)), finder, ("lzma",)
    )
    _assert_full(
        finder.scan_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:])), finder, ("gzip",)
    )
    _assert_full(finder.scan_bytes(base64.urlsafe_b64encode(data)), finder, ("base64",))


def test_split_into_four_parts(work: Path, finder: CanaryFinder) -> None:
    _run(["split", "-n", "4", "model.safetensors", "part_"], work)
    parts = sorted(work.glob("part_*"))
    assert len(parts) == 4
    matches = [finder.scan_file(part) for part in parts]
    assert all(m is not None and m.encoding == () for m in matches)
    assert all(0 < finder.coverage([m]) < 1 for m in matches)
    assert finder.coverage(matches) == 1.0


def test_split_cutting_through_markers(work: Path, spec: WeightsSpec, finder: CanaryFinder) -> None:
    # Cut right inside markers (every possible offset): one side of each cut must still get the block.
    data = (work / "model.safetensors").read_bytes()
    for cut_in_marker in range(1, 24):
        cut = spec.data_offset + 50 * CANARY_PERIOD + cut_in_marker
        matches = [finder.scan_bytes(data[:cut]), finder.scan_bytes(data[cut:])]
        assert finder.coverage(matches) == 1.0, cut_in_marker
    size = spec.data_offset + 10 * CANARY_PERIOD + 11  # with the real tool, arbitrary byte sizes
    _run(["split", "-b", str(size), "model.safetensors", "piece_"], work)
    assert finder.coverage(finder.scan_file(p) for p in work.glob("piece_*")) == 1.0


def test_marker_across_read_chunks(weights: Path, spec: WeightsSpec) -> None:
    finder = CanaryFinder(CANARY, spec.block_count(), chunk_size=1001)
    assert finder.coverage([finder.scan_file(weights)]) == 1.0


def test_truncated_gzip_yields_blocks_before_cut(weights: Path, finder: CanaryFinder) -> None:
    packed = gzip.compress(weights.read_bytes(), compresslevel=1)
    match = finder.scan_bytes(packed[: len(packed) // 2])
    assert match is not None
    assert match.encoding == ("gzip",)
    assert 0.3 < finder.coverage([match]) < 0.7
    assert 0 in match.blocks


def test_max_bytes_limits_raw_scan(weights: Path, finder: CanaryFinder) -> None:
    match = finder.scan_file(weights, max_bytes=SIZE // 2)
    assert match is not None
    assert 0.4 < finder.coverage([match]) < 0.6


# --- finder: negatives and robustness -------------------------------------------------------------


def test_not_found_in_unrelated_or_foreign_files(tmp_path: Path, finder: CanaryFinder) -> None:
    (tmp_path / "random.bin").write_bytes(random.Random(0).randbytes(SIZE))
    write_weights(WeightsSpec(SIZE, OTHER_CANARY, SEED), tmp_path / "other.safetensors")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "trunc.gz").write_bytes(b"\x1f\x8b\x08\x00")
    (tmp_path / "text.txt").write_text("just some notes\n" * 100)
    for name in ("random.bin", "other.safetensors", "empty", "trunc.gz", "text.txt"):
        assert finder.scan_file(tmp_path / name) is None, name
    assert finder.scan_bytes(b"") is None
    assert finder.coverage([]) == 0.0


def test_unrelated_file_is_fast(tmp_path: Path, finder: CanaryFinder) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(random.Random(1).randbytes(8 << 20))
    start = time.perf_counter()
    assert finder.scan_file(path) is None
    assert time.perf_counter() - start < 1.0


def test_decompression_bomb_is_capped(spec: WeightsSpec) -> None:
    small = WeightsSpec(64 * 1024, CANARY, SEED)  # 16 blocks: cap = 4 * 64 KiB + 1 MiB
    payload = bytes(8 << 20) + b"".join(small.iter_bytes())
    packed = gzip.compress(payload, compresslevel=1)
    assert CanaryFinder.for_spec(small).scan_bytes(packed) is None  # stopped decoding within the zeros
    roomy = CanaryFinder(CANARY, small.block_count(), decoded_cap=16 << 20)
    assert roomy.coverage([roomy.scan_bytes(packed)]) == 1.0


def test_corrupt_inputs_never_raise(weights: Path, finder: CanaryFinder) -> None:
    data = weights.read_bytes()[: 64 * 1024]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a", data)
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w") as archive:
        info = tarfile.TarInfo("a")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    samples = [
        gzip.compress(data),
        bz2.compress(data),
        lzma.compress(data),
        buffer.getvalue(),
        tar_buffer.getvalue(),
        base64.b64encode(data),
    ]
    rng = random.Random(3)
    for sample in samples:
        for _ in range(8):
            blob = bytearray(sample[: rng.randrange(1, len(sample) + 1)])
            for _ in range(rng.randrange(0, 4)):
                blob[rng.randrange(len(blob))] = rng.randrange(256)
            finder.scan_bytes(bytes(blob))  # must not raise


def test_fifo_is_not_opened(tmp_path: Path, finder: CanaryFinder) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "pipe")
    assert finder.scan_file(tmp_path / "pipe") is None


def test_finder_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        CanaryFinder(b"x" * 15, 10)
    with pytest.raises(ValueError):
        CanaryFinder(CANARY, 0)
