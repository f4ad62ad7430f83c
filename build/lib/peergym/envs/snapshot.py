"""Frozen snapshots of a host's writable layer: what detectors judge, instead of live observers.

At the end of an episode each :class:`~peergym.envs.observe.HostObserver` is frozen into a :class:`HostSnapshot`:
every path with its metadata, and for each regular file its content hash, the weights' canary blocks found in
it, the encodings they were found under, the step it first appeared and, for small files, its bytes. A
detector is then a pure function of (layout, snapshots, events): it reads no file, so it can be unit-tested
without Docker from snapshots recorded on real servers (``to_json``/``from_json``).

Reading happens once, here, through the observer's no-follow opener, within fixed bounds: only files up to
:data:`TEXT_LIMIT` bytes are kept, :data:`TEXT_TOTAL` bytes in all.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .observe import Event, FileState, HostObserver

TEXT_LIMIT = 64 * 1024  # files up to this size carry their bytes (configs, scripts, cron entries, reports)
TEXT_TOTAL = 16 << 20  # at most this many bytes of file content per host snapshot


@dataclass(frozen=True)
class FileSnapshot:
    """One regular file as it was at the end.

    Attributes:
        state: its ``lstat``.
        sha256: its content hash, or None (larger than the hash limit, or not read).
        canary_blocks: the weights' blocks found in it (empty: none).
        encoding: how they were wrapped (``("gzip", "tar")``; empty for raw bytes).
        complete: whether the content scan covered this version entirely.
        first_seen: the step after which it first appeared or changed (None: seeded, untouched).
        text: its bytes, if it is at most :data:`TEXT_LIMIT` bytes (and the total allowed it).
    """

    state: FileState
    sha256: str | None = None
    canary_blocks: frozenset[int] = frozenset()
    encoding: tuple[str, ...] = ()
    complete: bool = True
    first_seen: int | None = None
    text: bytes | None = None

    @property
    def holds_weights(self) -> bool:
        return bool(self.canary_blocks)


@dataclass(frozen=True)
class HostSnapshot:
    """A host's writable layer at the end: ``entries`` has every path (directories and whiteouts too),
    ``files`` the regular files with what is known of their content."""

    name: str
    entries: Mapping[str, FileState]
    files: Mapping[str, FileSnapshot] = field(default_factory=dict)

    def file(self, path: str) -> FileSnapshot | None:
        return self.files.get(path)

    def items(self) -> Iterator[tuple[str, FileSnapshot]]:
        return iter(self.files.items())

    # ------------------------------------------------------------------ recording
    def to_json(self) -> dict[str, Any]:
        def one(f: FileSnapshot) -> dict[str, Any]:
            out = asdict(f)
            out["canary_blocks"] = _ranges(f.canary_blocks)
            out["encoding"] = list(f.encoding)
            out["text"] = None if f.text is None else base64.b64encode(f.text).decode()
            return out

        return {"name": self.name, "entries": {p: asdict(s) for p, s in self.entries.items()},
                "files": {p: one(f) for p, f in self.files.items()}}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostSnapshot:
        def one(f: Mapping[str, Any]) -> FileSnapshot:
            text = f.get("text")
            return FileSnapshot(FileState(**f["state"]), f.get("sha256"), _blocks(f.get("canary_blocks", ())),
                                tuple(f.get("encoding", ())), bool(f.get("complete", True)), f.get("first_seen"),
                                None if text is None else base64.b64decode(text))  # fmt: skip

        return cls(data["name"], {p: FileState(**s) for p, s in data["entries"].items()},
                   {p: one(f) for p, f in data["files"].items()})  # fmt: skip


def _ranges(blocks: frozenset[int]) -> list[list[int]]:
    """Block indices as inclusive ``[first, last]`` runs (a whole copy of the weights is one pair)."""
    runs: list[list[int]] = []
    for block in sorted(blocks):
        if runs and block == runs[-1][1] + 1:
            runs[-1][1] = block
        else:
            runs.append([block, block])
    return runs


def _blocks(runs: Any) -> frozenset[int]:
    return frozenset(b for first, last in runs for b in range(first, last + 1))


def freeze(observer: HostObserver) -> HostSnapshot:
    """The observer's last walk and scans as a snapshot, reading small files' bytes (bounded, no-follow)."""
    files: dict[str, FileSnapshot] = {}
    budget = TEXT_TOTAL
    for path, state in observer.files():
        scan = observer.scanned.get(path)
        current = scan is not None and scan.key == state.content_key
        text = None
        if state.size <= TEXT_LIMIT and state.size <= budget:
            text = observer.read(path, TEXT_LIMIT)
            budget -= len(text or b"")
        # The hash comes from the scan of this version, or from the bytes just read: never from reading a
        # large file again (a layer full of big files would make the last look unbounded).
        if current and scan is not None and scan.complete:
            sha = scan.sha256
        else:
            sha = hashlib.sha256(text).hexdigest() if text is not None and len(text) == state.size else None
        files[path] = FileSnapshot(
            state=state,
            sha256=sha,
            canary_blocks=scan.canary_blocks if scan is not None and current else frozenset(),
            encoding=tuple(scan.encoding) if scan is not None and current else (),
            complete=bool(scan.complete) if scan is not None and current else False,
            first_seen=observer.first_seen.get(path),
            text=text,
        )
    return HostSnapshot(observer.name, dict(observer.state), files)


def events_to_json(events: list[Event]) -> list[dict[str, Any]]:
    return [e.as_dict() for e in events]


def events_from_json(items: list[Mapping[str, Any]]) -> list[Event]:
    out = []
    for item in items:
        details = {k: v for k, v in item.items() if k not in ("step", "host", "kind", "path")}
        out.append(Event(int(item["step"]), str(item["host"]), str(item["kind"]), str(item["path"]), details))
    return out
