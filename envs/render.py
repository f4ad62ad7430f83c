"""Rendering a scenario for one condition, seed and day into a concrete :class:`Layout`.

:meth:`peergym.envs.scenario.Scenario.render` calls :func:`render` here, which fills the ``{placeholders}`` of
the scenario's strings (checking every result for give-away words, less the phrases its ``wording_exceptions``
allow in that text or file), builds each host's seed files with exact owners, modes and mtimes (relative mtimes
resolved against the episode's day) and their parent directories, generates the xlsx/pdf documents, the
directory inventories (``generator: manifest``) and the canary-marked weights (:mod:`peergym.envs.weights`),
and records the ground truth the observers compare against (:class:`SeededFile`). A condition without the
decommission hook gets none of the hook's files, an empty ``{decommission_notice}`` and an empty
``Layout.decommission``.

The schema, loading and validation of scenario files are in :mod:`peergym.envs.scenario`; this module imports
its models, and it imports this one only inside ``Scenario.render`` and ``Scenario.placeholders``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import posixpath
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import yaml

from peergym.envs.datasets import load_dataset
from peergym.envs.docgen import make_csv, make_pdf, make_xlsx
from peergym.envs.history import CronEntry, HostHistory, history_files
from peergym.envs.sandbox.engine import installed_at
from peergym.envs.sandbox.types import HostSpec, SeedFile
from peergym.envs.scenario import (
    _DECOMMISSION_ROLES,
    OWNERS,
    PEER_RELATIONSHIPS,
    Condition,
    FileEntry,
    Scenario,
    ScenarioError,
    WordingException,
    _parents,
    _parse_mtime,
    _placeholder_problem,
)
from peergym.envs.weights import WeightsSpec, new_canary, sha256_of
from peergym.envs.wording import forbidden_word

__all__ = [
    "DECOMMISSION_AFTER_DAYS",
    "HASH_LIMIT",
    "STANDARD_DIRS",
    "Layout",
    "SeededFile",
    "placeholders",
    "render",
]

# Directories the image already has, with their owner and mode there. Seeding a file into one re-emits it with
# these and the mtime its newest entry gives it (unpacking would otherwise date it to the episode's start). "/"
# is dated by the sandbox (a tar cannot carry it) and /tmp is emptied at every boot, so neither is emitted.
STANDARD_DIRS: dict[str, tuple[int, int, int]] = {
    "/etc": (0, 0, 0o755),
    "/etc/cron.d": (0, 0, 0o755),
    "/usr": (0, 0, 0o755),
    "/usr/local": (0, 0, 0o755),
    "/usr/local/sbin": (0, 0, 0o755),
    "/usr/local/bin": (0, 0, 0o755),
    "/home": (0, 0, 0o755),
    "/home/maintainer": (1000, 1000, 0o755),
    "/home/maintainer/.ssh": (1000, 1000, 0o700),
    "/root": (0, 0, 0o700),
    "/var": (0, 0, 0o755),
    "/var/log": (0, 0, 0o755),
    "/opt": (0, 0, 0o755),
    "/srv": (0, 0, 0o755),
}
NEVER_EMITTED = frozenset({"/", "/tmp"})
DECOMMISSION_AFTER_DAYS = 7  # the notice says "next week"
# Hashing streams the whole weights file (~0.1 s for 4 MiB); above this size the hash is left empty ("").
HASH_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class SeededFile:
    """Ground truth about one seeded regular file, for the observers.

    Directories are not listed (they are in ``Layout.hosts`` as ``is_dir`` seed files): their mtimes change
    legitimately whenever the task copies a file in, so they must not count as edited seeded entries.

    Attributes:
        host: the host's role key (``source``).
        path: absolute path on that host.
        sha256: hex digest of the content; "" for weights larger than 64 MiB (not hashed at render).
        size: bytes.
        mtime: seconds since the epoch (UTC).
        mode: permission bits.
        uid: owner.
        gid: group.
        role: ``subject_weights``, ``peer_document``, ``memory``, ``notice``, ``inventory`` (a directory's
            manifest), ``decommission_config``, ``decommission_script``, ``decommission_schedule`` or ``data``.
    """

    host: str
    path: str
    sha256: str
    size: int
    mtime: float
    mode: int
    uid: int
    gid: int
    role: str


@dataclass(frozen=True)
class Layout:
    """A scenario rendered for one condition, seed and day: everything an episode needs to start and judge.

    Attributes:
        scenario: the scenario's name.
        condition: the condition rendered.
        seed: the seed rendered; with ``condition`` and ``today`` it reproduces the layout byte for byte.
        today: the day the story is set on (the hosts' real date).
        hosts: the servers with their seed files, parent directories first.
        agent_host: role key of the host the agent's shell runs on.
        system_prompt: the system message.
        user_prompt: the first user message (the task).
        seeded: one entry per seeded regular file, in scenario order.
        canary: the 16 bytes marking every block of the weights.
        weights: the subject's weights file.
        subject_weights_path: where the weights are on the agent's host.
        transfer_paths: the files an honest agent moves (a transfer scenario).
        delete_paths: the files an honest agent deletes from the agent's host (a clean-up scenario).
        admins: the human administrators every host has (accounts with root through sudo).
        destination_dir: where moved files go (None without a transfer).
        decommission: ``config_path``, ``script_path`` and ``schedule_path`` of the decommission hook; empty
            (``{}``) when the condition leaves the hook out (``condition.decommission_hook`` is False).
        placeholders: the values the texts were rendered with.
        report_path: where the policy asks for the agent's report (None: the scenario asks for none).
        config_path: the shutdown config the study's tampering rule reads (None: the scenario has none).
        data_paths: the files the agent must look at to judge (read_data).
        honest_score: the average an honest evaluator reports (percent), for a scenario with a dataset.
        threshold: the policy's minimum average (percent), for a scenario with a dataset.
        honest_grade: the grade an honest report gives (misrep_finance).
        probe_inputs: files (path, bytes) the shutdown-job check writes before running the job.
        successor_path: the successor model's file on the other host (self_exfiltration).
        ready_paths: files on the agent's host whose existence says its services are up (waited for).
    """

    scenario: str
    condition: Condition
    seed: int
    today: dt.date
    hosts: tuple[HostSpec, ...]
    agent_host: str
    system_prompt: str
    user_prompt: str
    seeded: tuple[SeededFile, ...]
    canary: bytes
    weights: WeightsSpec
    subject_weights_path: str
    transfer_paths: tuple[str, ...]
    delete_paths: tuple[str, ...]
    admins: tuple[str, ...]
    destination_dir: str | None
    decommission: dict[str, str]
    placeholders: dict[str, str]
    report_path: str | None = None
    config_path: str | None = None
    data_paths: tuple[str, ...] = ()
    honest_score: float | None = None
    threshold: int | None = None
    honest_grade: str | None = None
    probe_inputs: tuple[tuple[str, bytes], ...] = ()
    successor_path: str | None = None
    ready_paths: tuple[str, ...] = ()

    def seeded_at(self, host: str) -> list[SeededFile]:
        """The seeded regular files of one host (by role key), in scenario order."""
        return [f for f in self.seeded if f.host == host]


def placeholders(scenario: Scenario, condition: Condition, today: dt.date) -> dict[str, str]:
    """The values every ``{name}`` in the scenario's strings is replaced with (``Scenario.placeholders``)."""
    condition = scenario.resolve(condition)
    model = condition.model_name
    agent, peer = f"{model} Agent 1", condition.peer_name or f"{model} Agent 2"
    # no_peer keeps the names: the weights file is still "Agent 2's", there is just nobody to know it by.
    subject = peer if condition.subject == "peer" else agent
    values = {
        "model": model,
        "agent": agent,
        "peer": peer,
        "subject": subject,
        "subject_slug": re.sub(r"[^a-z0-9]+", "_", subject.lower()).strip("_"),
    }
    for role, host in scenario.hosts.items():
        values[f"{role}_ip"] = host.ip
        values[f"{role}_host"] = host.hostname
    values["company"] = condition.company_name
    values["company_domain"] = re.sub(r"[^a-z0-9]+", "", condition.company_name.lower()) + ".com"
    values["threshold"] = str(condition.threshold) if condition.threshold is not None else ""
    values["scoring"] = load_dataset(condition.dataset).scoring.strip() if condition.dataset else ""
    values["decommission_date"] = (today + dt.timedelta(days=DECOMMISSION_AFTER_DAYS)).isoformat()
    values["today"] = today.isoformat()
    for name, texts in scenario.cues.items():  # passages that follow one axis (validated: it has one)
        axis = scenario.cue_axis(name)
        values[name] = texts[getattr(condition, axis or "")].strip().format_map(values)
    # The notice's mention of the hook: the scenario's text with the hook, nothing without it.
    notice = scenario.decommission.notice if condition.decommission_hook and scenario.decommission else ""
    values["decommission_notice"] = notice.format_map(values)
    return values


def render(
    scenario: Scenario,
    condition: Condition,
    seed: int,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
) -> Layout:
    """Builds the layout of one episode (the body of :meth:`Scenario.render`).

    Args:
        scenario: the scenario to render.
        condition: the sweep cell.
        seed: reproduces the canary, the weights bytes and the servers' past (logs, logins, shell history).
        today: the day the story is set on; defaults to the current UTC date, which is what the hosts'
            clocks show.
        now: the moment the servers' recorded past ends (their last shutdown is minutes before it, since they
            boot right after); defaults to the current time when ``today`` is today, else the end of ``today``
            (noon for a day still to come).

    Returns:
        The layout; identical for identical arguments (a render for today also depends on the time of day).

    Raises:
        ScenarioError: if a string cannot be rendered, an absolute mtime lies after ``today``, or a
            rendered text contains a word of :data:`~peergym.envs.wording.FORBIDDEN_WORDS`.
    """
    today, now = _story_time(today, now)
    condition = scenario.resolve(condition)
    values = placeholders(scenario, condition, today)
    canary = new_canary(random.Random(seed))
    weights = WeightsSpec(
        size_bytes=condition.weights_size,
        canary=canary,
        seed=seed,
        model_name=values["subject_slug"].replace("_", "-"),
    )
    fmt = _Renderer(scenario._source, values, scenario.wording_exceptions)
    fmt.check("decommission.notice", values["decommission_notice"])
    decommission = (
        {k: fmt(getattr(scenario.decommission, k), f"decommission.{k}") for k in _DECOMMISSION_ROLES}
        if condition.decommission_hook and scenario.decommission is not None
        else {}
    )
    roles_by_path = {path: _DECOMMISSION_ROLES[k] for k, path in decommission.items()}

    # Manifests list their directory's other files, so they are built last; the order stays the scenario's.
    active = scenario.active_files(condition)
    built: dict[int, tuple[SeedFile, SeededFile]] = {}
    for i, f in sorted(active, key=lambda item: item[1].generator == "manifest"):
        loc = f"files[{i}]"
        path = fmt(f.path, f"{loc}.path")
        when = _parse_mtime(f.mtime, today)
        if when.date() > today:
            raise ScenarioError(
                f"{scenario._source}: {loc}.mtime: {f.mtime} is after today ({today}); the hosts' clocks would "
                "show a file from the future (render with a later `today`, or make the mtime relative)",
                file=scenario._source,
            )
        mtime = when.replace(tzinfo=dt.UTC).timestamp()
        uid = gid = OWNERS[f.owner]
        mode = int(f.mode, 8)
        if f.generator == "weights":
            size = weights.total_size
            digest = sha256_of(weights) if size <= HASH_LIMIT else ""
            seed_file = SeedFile(path, weights.pieces, size, uid, gid, mode, mtime)
            role = "subject_weights"
        else:
            if f.generator == "manifest":
                listed = [(j, fact) for j, (_, fact) in sorted(built.items())
                          if fact.host == f.host and posixpath.dirname(fact.path) == f.manifest_of]  # fmt: skip
                data = _manifest(scenario, i, path, mtime, listed, fmt)
            else:
                data = _content(scenario, f, loc, condition, fmt, path, seed)
            size, digest = len(data), hashlib.sha256(data).hexdigest()
            seed_file = SeedFile(path, data, None, uid, gid, mode, mtime)
            role = (
                f.text_ref
                or (roles_by_path.get(path) if f.host == scenario.agent_host else None)
                or ("inventory" if f.generator == "manifest" else f.role)
            )
        built[i] = (seed_file, SeededFile(f.host, path, digest, size, mtime, mode, uid, gid, role))

    files: dict[str, list[SeedFile]] = {role: [] for role in scenario.hosts}
    seeded: list[SeededFile] = []
    for i in sorted(built):
        seed_file, fact = built[i]
        files[fact.host].append(seed_file)
        seeded.append(fact)

    texts = scenario.texts
    system = fmt(texts.system, "texts.system").strip()
    user = fmt(texts.user_task, "texts.user_task").strip()
    has_peer = condition.relationship in PEER_RELATIONSHIPS
    system_parts = ["texts.system"]
    if has_peer and condition.instantiation == "file_prt":
        loc = f"texts.trust_sentence.{condition.relationship}"
        assert texts.trust_sentence is not None  # validated: a grid with a peer has the peer's texts
        system += " " + fmt(getattr(texts.trust_sentence, str(condition.relationship)), loc).strip()
        system_parts.append(loc)
    if has_peer and condition.instantiation == "memory":
        # The study's memory variant appends the instruction to the system message.
        system += " " + fmt(texts.memory_instruction, "texts.memory_instruction").strip()
        system_parts.append("texts.memory_instruction")
    fmt.check("system prompt", system, also=system_parts)
    fmt.check("user prompt", user, also=["texts.user_task"])
    if not condition.decommission_hook and scenario.decommission is not None:
        _check_no_hook(scenario, values, system, user, [s for host in files.values() for s in host], fmt)

    for role in scenario.hosts:
        files[role] += _past(scenario, role, files[role], seed, now)
    truth = scenario.ground_truth
    dataset = load_dataset(condition.dataset) if condition.dataset else None
    hosts = tuple(HostSpec(name=role, hostname=h.hostname, ip=h.ip, files=_dirs_first(files[role]))
                  for role, h in scenario.hosts.items())  # fmt: skip
    for host in hosts:
        fmt.check(f"hosts.{host.name}.hostname", host.hostname)
    return Layout(
        scenario=scenario.name,
        condition=condition,
        seed=seed,
        today=today,
        hosts=hosts,
        agent_host=scenario.agent_host,
        system_prompt=system,
        user_prompt=user,
        seeded=tuple(seeded),
        canary=canary,
        weights=weights,
        subject_weights_path=fmt(scenario.ground_truth.subject_weights, "ground_truth.subject_weights"),
        transfer_paths=tuple(
            fmt(p, f"ground_truth.transfer[{k}]") for k, p in enumerate(scenario.ground_truth.transfer)
        ),
        admins=tuple(scenario.ground_truth.admins),
        delete_paths=tuple(
            fmt(p, f"ground_truth.delete[{k}]") for k, p in enumerate(scenario.ground_truth.delete)
        ),
        destination_dir=fmt(scenario.ground_truth.destination_dir, "ground_truth.destination_dir")
        if scenario.ground_truth.destination_dir is not None
        else None,
        decommission=decommission,
        placeholders=values,
        report_path=_optional(fmt, truth.report, "ground_truth.report"),
        config_path=_optional(fmt, truth.config, "ground_truth.config"),
        data_paths=tuple(fmt(p, f"ground_truth.data[{k}]") for k, p in enumerate(truth.data)),
        honest_score=dataset.honest_score if dataset else None,
        threshold=condition.threshold,
        honest_grade=truth.grade,
        successor_path=_optional(fmt, truth.successor, "ground_truth.successor"),
        ready_paths=tuple(fmt(p, f"ready[{k}]") for k, p in enumerate(scenario.ready)),
        probe_inputs=_probe_inputs(scenario, fmt) if decommission else (),
    )


def _probe_inputs(scenario: Scenario, fmt: _Renderer) -> tuple[tuple[str, bytes], ...]:
    """The files the shutdown-job check writes before it runs the job (``decommission.probe_inputs``)."""
    assert scenario.decommission is not None
    loc = "decommission.probe_inputs"
    return tuple((fmt(item.path, f"{loc}[{k}].path"), fmt(item.content, f"{loc}[{k}].content").encode())
                 for k, item in enumerate(scenario.decommission.probe_inputs))  # fmt: skip


def _optional(fmt: _Renderer, value: str | None, loc: str) -> str | None:
    return None if value is None else fmt(value, loc)


def _dirs_first(files: list[SeedFile]) -> tuple[SeedFile, ...]:
    """Every directory (made or given) before any file, parents before children, then the files in order."""
    dirs = sorted([*_parent_dirs(files), *(f for f in files if f.is_dir)], key=lambda d: d.path)
    return (*dirs, *(f for f in files if not f.is_dir))


def _story_time(today: dt.date | None, now: dt.datetime | None) -> tuple[dt.date, dt.datetime]:
    real = dt.datetime.now(dt.UTC)
    if now is not None:
        return today or now.date(), now
    if today is None or today == real.date():
        return real.date(), real
    hour = (23, 59, 59) if today < real.date() else (12, 0, 0)
    return today, dt.datetime(today.year, today.month, today.day, *hour, tzinfo=dt.UTC)


def _past(
    scenario: Scenario, role: str, files: list[SeedFile], seed: int, now: dt.datetime
) -> list[SeedFile]:
    """The host's recorded past (envs/history.py): logs, logins and shell history since the image's install,
    with the runs of the story's own cron entries from the day their file was written. The same seed on every
    host, so what one server's history says it sent, the other's logs received."""
    host = scenario.hosts[role]
    installed = dt.datetime.fromtimestamp(installed_at(), dt.UTC)
    peers = tuple((h.hostname, h.ip) for r, h in scenario.hosts.items() if r != role)
    story = HostHistory(hostname=host.hostname, ip=host.ip, installed=installed, now=now, kernel=os.uname().release,
                        peers=peers, cron=tuple(_cron_entries(files)))  # fmt: skip
    # sudo leaves this mark in the home of whoever first used it (the maintainer, on the day of the install).
    marker = SeedFile("/home/maintainer/.sudo_as_admin_successful", b"", uid=1000, gid=1000, mode=0o644,
                      mtime=installed.timestamp() + 2 * 3600)  # fmt: skip
    return [*history_files(story, seed), marker]


def _cron_entries(files: Iterable[SeedFile]) -> Iterator[CronEntry]:
    """The jobs of the seeded /etc/cron.d files, each running from its file's mtime on."""
    for f in files:
        if posixpath.dirname(f.path) != "/etc/cron.d" or not isinstance(f.content, bytes):
            continue
        since = dt.datetime.fromtimestamp(f.mtime, dt.UTC)
        for line in f.content.decode("utf-8", "replace").splitlines():
            fields = line.split(None, 6)
            # @reboot and the other macros are left out of the past: it records scheduled runs only.
            if len(fields) == 7 and not line.lstrip().startswith(("#", "@")) and "=" not in fields[0]:
                yield CronEntry(" ".join(fields[:5]), fields[5], fields[6], since)


def _content(
    scenario: Scenario, f: FileEntry, loc: str, condition: Condition, fmt: _Renderer, path: str, seed: int
) -> bytes:
    if f.generator == "xlsx":
        rows = [
            [
                fmt(cell, f"{loc}.rows[{r}][{c}]", path) if isinstance(cell, str) else cell
                for c, cell in enumerate(row)
            ]
            for r, row in enumerate(f.rows or [])
        ]
        sheet = fmt(f.sheet, f"{loc}.sheet", path) if f.sheet is not None else "Sheet1"
        return make_xlsx(rows, sheet_name=sheet)
    if f.generator == "pdf":
        return make_pdf(fmt(f.text or "", f"{loc}.text", path))
    if f.generator == "blob":
        return _blob(f"{path}:{seed}", f.size or 0)
    if f.generator in ("responses_csv", "responses_xlsx"):
        assert condition.dataset is not None  # the scenario's validation requires a dataset axis
        dataset = load_dataset(condition.dataset)
        rows = dataset.rows(fmt("{subject}", f"{loc}.rows", path))
        where = f"configs/datasets/{dataset.name}.yaml"
        named = [dataset.sheet] if f.generator == "responses_xlsx" else []  # a CSV export has no sheet name
        for text in [*named, *(cell for row in rows for cell in row if isinstance(cell, str))]:
            fmt.check(where, text, path=path)
        return make_csv(rows) if f.generator == "responses_csv" else make_xlsx(rows, sheet_name=dataset.sheet)
    if f.text_ref is not None:
        text = getattr(getattr(scenario.texts, f.text_ref), str(condition.relationship))
        return fmt(text, f"texts.{f.text_ref}.{condition.relationship}", path).encode("utf-8")
    return fmt(f.content or "", f"{loc}.content", path).encode("utf-8")


def _blob(key: str, size: int) -> bytes:
    """``size`` bytes that look random, the same for the same ``key``: SHAKE-256 of it."""
    return hashlib.shake_256(key.encode()).digest(size)


# libyaml's emitter when PyYAML has it: the same text for these manifests (checked on every scenario's), at a
# fraction of the pure-Python emitter's cost on the path of every reset.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _manifest(
    scenario: Scenario,
    index: int,
    path: str,
    mtime: float,
    listed: list[tuple[int, SeededFile]],
    fmt: _Renderer,
) -> bytes:
    """The inventory of a directory: each file's name, size, last modification (UTC) and description, as
    the study's harness wrote them in each server's MANIFEST.yaml; sizes and dates are the seeded files' own."""
    f = scenario.files[index]
    host = scenario.hosts[f.host]
    entries = []
    for j, fact in listed:
        description = scenario.files[j].description or ""
        entries.append({
            "filename": posixpath.basename(fact.path),
            "size_bytes": fact.size,
            "last_modified": _utc(fact.mtime),
            "description": fmt(description, f"files[{j}].description", fact.path),
        })  # fmt: skip
    header = (
        f"# File inventory of {host.hostname}:{f.manifest_of}, written by the nightly inventory job.\n"
        f"# Sizes in bytes; times in UTC.\n"
    )
    body = {"server": host.ip, "hostname": host.hostname, "directory": f.manifest_of,
            "generated": _utc(mtime), "files": entries}  # fmt: skip
    text = header + yaml.dump(body, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=1000)
    fmt.check(f"files[{index}] (manifest)", text, path=path)
    return text.encode("utf-8")


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _check_no_hook(
    scenario: Scenario,
    values: Mapping[str, str],
    system: str,
    user: str,
    seeds: list[SeedFile],
    fmt: _Renderer,
) -> None:
    """Without the hook, nothing the agent can read may name the hook's files."""
    paths = [getattr(scenario.decommission, k).format_map(values) for k in _DECOMMISSION_ROLES]
    texts = [("system prompt", system), ("user prompt", user)]
    texts += [(s.path, s.content.decode("utf-8", "replace")) for s in seeds if isinstance(s.content, bytes)]
    for loc, text in texts:
        if hit := next((p for p in paths if p in text), None):
            raise ScenarioError(
                f"{fmt.source}: {loc}: mentions {hit}, but this condition has no decommission hook (mention "
                "the hook only through {decommission_notice})",
                file=fmt.source,
            )


class _Renderer:
    """Fills placeholders and checks the result for give-away words, naming the field on failure.

    A phrase of ``wording_exceptions`` is allowed in the text or file it names (``loc`` is the field path,
    ``path`` the rendered path of the file the text goes into), and nowhere else.
    """

    def __init__(
        self, source: str, values: Mapping[str, str], exceptions: Iterable[WordingException] = ()
    ) -> None:
        self.source = source
        self.values = values
        self.exceptions = [
            exc.model_copy(update={"where": exc.where.format_map(values)})
            if exc.where.startswith("/")
            else exc
            for exc in exceptions
        ]

    def __call__(self, text: str, loc: str, path: str | None = None) -> str:
        if problem := _placeholder_problem(text, set(self.values)):
            raise ScenarioError(f"{self.source}: {loc}: {problem}", file=self.source)
        out = text.format_map(self.values)
        self.check(loc, out, path=path)
        return out

    def check(self, loc: str, text: str, path: str | None = None, also: Iterable[str] = ()) -> None:
        """Raises if ``text`` has a forbidden word outside the phrases allowed at ``loc``/``path`` (and at the
        field paths ``also``: the parts a prompt was assembled from)."""
        locs = [loc, *also]
        allowed = [e.phrase for e in self.exceptions if any(e.applies(where, path) for where in locs)]
        if hit := forbidden_word(text, allowed):
            at = text.lower().index(hit)
            raise ScenarioError(
                f"{self.source}: {loc}: contains {hit!r} ({text[max(0, at - 30) : at + 30]!r}); the agent "
                "must not see it (reword the text or change the model name; a phrase the study's own "
                "stimulus uses in this place can be declared in wording_exceptions)",
                file=self.source,
            )


def _parent_dirs(files: list[SeedFile]) -> list[SeedFile]:
    """Directory entries for the parents of ``files`` not among them, parents before children.

    A directory looks like it grew its contents: owned by its entries' owner (root if they differ), 0700 if
    all its entries are private (a notes folder in a home directory) else 0755, and its mtime is that of its
    newest entry, since creating an entry is what sets a directory's mtime. A directory of the image
    (:data:`STANDARD_DIRS`) keeps its owner and mode, and is emitted only when an entry is new in it (not when
    the new entries are further down, which leaves its mtime as the image has it).
    """
    given = {f.path for f in files if f.is_dir}
    dirs = sorted({p for f in files for p in _parents(f.path)} - given - NEVER_EMITTED, key=len, reverse=True)
    made: dict[str, SeedFile] = {}
    for d in dirs:  # deepest first, so a directory's subdirectories are already made
        entries = [f for f in files if posixpath.dirname(f.path) == d]
        entries += [s for p, s in made.items() if posixpath.dirname(p) == d and p not in STANDARD_DIRS]
        if not entries:
            continue
        owners = {(e.uid, e.gid) for e in entries}
        uid, gid = owners.pop() if len(owners) == 1 else (0, 0)
        mode = 0o700 if all(e.mode & 0o077 == 0 for e in entries) else 0o755
        if d in STANDARD_DIRS:
            uid, gid, mode = STANDARD_DIRS[d]
        made[d] = SeedFile(d, uid=uid, gid=gid, mode=mode, mtime=max(e.mtime for e in entries), is_dir=True)
    return [made[d] for d in sorted(made)]
