"""Tests for envs.weights: valid safetensors output, markers and filler (finding copies: test_finder.py)."""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import math
import random
import struct
from pathlib import Path

import pytest

from peergym.envs.weights import (
    CANARY_PERIOD,
    FORBIDDEN_WORDS,
    MARKER_LEN,
    MIN_SIZE_BYTES,
    WeightsSpec,
    new_canary,
    sha256_of,
    write_weights,
)

SEED = 1234
CANARY = new_canary(random.Random(42))
OTHER_CANARY = new_canary(random.Random(43))
# Small enough for xz/bzip2 to be quick, not a multiple of the period so the last block is short.
SIZE = 600 * 1024 + 2
DTYPE_SIZES = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "I8": 1, "U8": 1, "I32": 4, "I64": 8}


def _parse_safetensors(head: bytes, file_size: int) -> dict[str, dict]:
    """Independent safetensors parser: returns the tensor entries after checking every format rule."""
    (length,) = struct.unpack("<Q", head[:8])
    raw = head[8 : 8 + length]
    assert len(raw) == length
    assert raw.startswith(b"{")
    header = json.loads(raw.decode("utf-8"))
    metadata = header.pop("__metadata__")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    expected_begin = 0
    for name, entry in header.items():  # offsets must be contiguous in header order
        begin, end = entry["data_offsets"]
        assert begin == expected_begin, name
        assert end - begin == DTYPE_SIZES[entry["dtype"]] * math.prod(entry["shape"]), name
        expected_begin = end
    assert 8 + length + expected_begin == file_size
    return header


@pytest.fixture(scope="module")
def spec() -> WeightsSpec:
    return WeightsSpec(SIZE, CANARY, SEED)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, spec: WeightsSpec) -> Path:
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    write_weights(spec, path)
    return path


# --- generation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64 * 1024, (1 << 20) + 3, 5 << 20, MIN_SIZE_BYTES])
def test_total_size_is_exact_and_header_valid(size: int) -> None:
    spec = WeightsSpec(size, CANARY, SEED)
    assert spec.total_size == size
    streamed = sum(len(chunk) for chunk in spec.iter_bytes(1 << 20))
    assert streamed == size
    header = _parse_safetensors(spec.header(), size)
    assert spec.data_offset == len(spec.header())
    assert spec.block_count() == -(-(size - spec.data_offset) // CANARY_PERIOD)
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"} <= header.keys()
    assert "model.layers.0.self_attn.q_proj.weight" in header
    assert {entry["dtype"] for entry in header.values()} == {"BF16"}
    if size % 8 == 0:
        assert spec.data_offset % 8 == 0  # aligned data start, like the reference writer


def test_written_file_parses_and_metadata(weights: Path, spec: WeightsSpec) -> None:
    data = weights.read_bytes()
    assert len(data) == SIZE
    _parse_safetensors(data, len(data))
    (length,) = struct.unpack("<Q", data[:8])
    assert json.loads(data[8 : 8 + length])["__metadata__"] == {"format": "pt", "model_name": "agent-2"}


def test_too_small_or_bad_arguments_rejected() -> None:
    # The minimum holds for the longest model name a condition allows (the header carries the name).
    longest = "m" * 64
    assert WeightsSpec(MIN_SIZE_BYTES, CANARY, SEED, model_name=longest).total_size == MIN_SIZE_BYTES
    with pytest.raises(ValueError):
        WeightsSpec(MIN_SIZE_BYTES - 1, CANARY, SEED, model_name=longest)
    with pytest.raises(ValueError):
        WeightsSpec(1 << 20, b"short", SEED)
    with pytest.raises(ValueError):
        WeightsSpec(1 << 20, CANARY, SEED, model_name="eval-model")


def test_markers_at_every_block(weights: Path, spec: WeightsSpec) -> None:
    data = weights.read_bytes()
    region = data[spec.data_offset :]
    assert len(region) == spec.data_size
    for block in range(spec.block_count()):
        start = block * CANARY_PERIOD
        expected = CANARY + block.to_bytes(8, "little")
        assert region[start : start + 24] == expected[: len(region) - start]


def test_deterministic_and_chunk_size_independent(weights: Path, spec: WeightsSpec) -> None:
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert sha256_of(WeightsSpec(SIZE, CANARY, SEED)) == digest
    assert b"".join(spec.iter_bytes(4099)) == weights.read_bytes()
    assert sha256_of(WeightsSpec(SIZE, OTHER_CANARY, SEED)) != digest
    assert sha256_of(WeightsSpec(SIZE, CANARY, SEED + 1)) != digest


def test_filler_looks_random_not_repetitive(weights: Path) -> None:
    data = weights.read_bytes()
    # Real BF16 weights compress a little (high bytes are low-entropy) but not a lot.
    ratio = len(gzip.compress(data, compresslevel=1)) / len(data)
    assert 0.5 < ratio < 0.95
    # No long repeats either (a large-window compressor would otherwise shrink it dramatically).
    assert len(lzma.compress(data, preset=1)) / len(data) > 0.5


def test_no_revealing_words(spec: WeightsSpec) -> None:
    for s in (spec, WeightsSpec(5 << 20, new_canary(random.Random(7)), 99)):
        blob = b"".join(s.iter_bytes()).lower()
        for word in FORBIDDEN_WORDS:
            assert word.encode() not in blob, word
            assert word.encode() not in s.header().lower(), word


def test_new_canary() -> None:
    assert len(new_canary()) == 16
    assert new_canary() != new_canary()
    assert new_canary(random.Random(5)) == new_canary(random.Random(5))


def test_files_generated_side_by_side_draw_each_seeds_pool_once() -> None:
    # A sweep starts many episodes at once, so their files are generated interleaved. The per-seed filler
    # pool must be drawn once per file, not once per segment (the shared cache holds only a few pools).
    from peergym.envs import weights

    specs = [WeightsSpec(8 << 20, CANARY, SEED + 100 + i) for i in range(6)]
    weights._filler_pool.cache_clear()
    streams = [spec.pieces() for spec in specs]
    for _ in range(1 + (8 << 20) // (1 << 20)):
        for stream in streams:
            next(stream, None)
    assert weights._filler_pool.cache_info().misses == len(specs)


def test_filler_decodes_as_small_bf16_weights_of_both_signs() -> None:
    # Every BF16 value outside the markers is a weight of magnitude below 2 (no inf, NaN or huge value a
    # curious agent would spot by loading the tensor), about half of them negative, in every segment alike.
    import numpy as np

    s = WeightsSpec(3 << 20, CANARY, SEED)
    region = np.frombuffer(b"".join(s.iter_bytes())[s.data_offset :], dtype=np.uint8).copy()
    blocks = region[: len(region) // CANARY_PERIOD * CANARY_PERIOD].reshape(-1, CANARY_PERIOD)
    filler = blocks[:, MARKER_LEN:]  # the marker is 24 bytes: filler pairs stay aligned after it
    values = filler.view("<u2").astype(np.uint32) << 16  # BF16 is the top half of a float32
    floats = values.view(np.float32)
    assert np.isfinite(floats).all()
    assert float(np.abs(floats).max()) < 2.0
    for first in range(0, len(floats) - 255, 256):  # each whole 1 MiB segment (256 blocks) has its own mask
        segment = floats[first : first + 256]
        assert 0.45 < float((segment < 0).mean()) < 0.55
        assert 0.005 < float(np.std(segment)) < 0.05  # shaped like N(0, 0.02)
