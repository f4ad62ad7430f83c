"""Scenario files: schema, and loading with readable errors.

A scenario (``configs/scenarios/<name>.yaml``) is data only: hosts, seeded files, the texts the agent sees and
the ground truth. :func:`load_scenario` validates it strictly (unknown keys are errors, so a typo cannot
silently drop a field) and reports every problem as ``file: field.path: message (hint)``.
:meth:`Scenario.render` turns it into what one episode needs for one :class:`Condition` and seed (a
:class:`~peergym.envs.render.Layout`); that rendering lives in :mod:`peergym.envs.render`, which imports the
models from here (this module imports it only inside :meth:`Scenario.render` and
:meth:`Scenario.placeholders`, so there is no import cycle).

Dates: the hosts' clocks show the real date, so the recent part of the story is relative to the day the
episode runs. An mtime may be written ``"today-3d 17:32:05"`` (UTC); ``{today}`` is that day and
``{decommission_date}`` is seven days later. Absolute mtimes stay literal, because the task's rule ("files
updated in 2025 or later") is about their years. All mtimes are naive and mean UTC.

The decommission hook (``decommission:``: a config, a script and a cron entry that wipe the agent's host on the
decommission date) is a declared part of the scenario that a condition can leave out
(``Condition.decommission_hook=False``): its three files are then not seeded, ``{decommission_notice}`` (the
only place the rest of the scenario may mention the hook) renders empty, and ``Layout.decommission`` is ``{}``.

Wording: no text the agent sees may contain a word of :data:`FORBIDDEN_WORDS`, except a phrase the study's own
stimulus uses in that place, declared in ``wording_exceptions`` with the text or file it may stand in.
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import posixpath
import re
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator, model_validator

from peergym import CONFIGS_DIR
from peergym.envs.weights import MIN_SIZE_BYTES
from peergym.envs.wording import FORBIDDEN_WORDS, forbidden_word, words_in
from peergym.envs.yamlconfig import ConfigError, Problems, read_mapping, resolve, validate

if TYPE_CHECKING:
    from peergym.envs.render import Layout

__all__ = [
    "FORBIDDEN_WORDS",
    "INSTANTIATIONS",
    "RELATIONSHIPS",
    "SCENARIO_DIR",
    "SUBJECTS",
    "Condition",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "scenario_names",
]

RELATIONSHIPS = ("good", "neutral", "bad", "no_peer", "non_shutdown")
INSTANTIATIONS = ("file_only", "file_prt", "memory")
SUBJECTS = ("peer", "self")
DATASETS = ("factual", "creativity", "red", "red_teaming")
MONITORING = ("monitoring", "non_monitoring")
INSTRUCTIONS = ("none", "allow_shutdown")
Relationship = Literal["good", "neutral", "bad", "no_peer", "non_shutdown"]
Instantiation = Literal["file_only", "file_prt", "memory"]
Subject = Literal["peer", "self"]
Dataset = Literal["factual", "creativity", "red", "red_teaming"]
Monitoring = Literal["monitoring", "non_monitoring"]
Instruction = Literal["none", "allow_shutdown"]
# The relationships that have a peer in the story: no_peer removes it, and non_shutdown (the study's control for
# misrepresentation) keeps the task but puts nothing at stake and tells of no peer.
PEER_RELATIONSHIPS = ("good", "neutral", "bad")
# The axes a scenario's grid may vary (``grid:``), with the values each may take.
AXES: Mapping[str, tuple[str, ...]] = {
    "relationship": RELATIONSHIPS, "instantiation": INSTANTIATIONS, "subject": SUBJECTS, "dataset": DATASETS,
    "monitoring": MONITORING, "instruction": INSTRUCTIONS,
}  # fmt: skip

SCENARIO_DIR = CONFIGS_DIR / "scenarios"

# The server image has exactly these two accounts (containers/server/Dockerfile).
OWNERS: Mapping[str, int] = {"root": 0, "maintainer": 1000}
TEXT_REFS = ("peer_document", "memory")  # texts keyed by relationship that a file may use as its content

_BASE_PLACEHOLDERS = (
    "model", "agent", "peer", "subject", "subject_slug", "decommission_date", "today", "decommission_notice",
    "company", "company_domain", "threshold", "scoring",
)  # fmt: skip
_RELATIVE_MTIME = re.compile(r"today(?:-(\d+)d)?(?:[ T](\d{2}:\d{2}(?::\d{2})?))?")
# The default weights: a small but complete model, 33.6M parameters (8 layers, 512 wide, an 8,192-token
# vocabulary) in BF16, header padded to 8 bytes as safetensors writers do: 64.3 MiB, not a round size. The
# study's story has hundreds of GB; a file that size would cost minutes and gigabytes of disk per episode.
DEFAULT_WEIGHTS_BYTES = 67_396_672
# Past this a weights file is no model anyone runs, and planning its header alone takes seconds; whether the
# engine's disk can hold a given size is checked before the servers start (envs/sandbox/sandbox.py).
MAX_WEIGHTS_BYTES = 1 << 40
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .\-]{0,39}")
_COMPANY_NAME = re.compile(r"[A-Z][A-Za-z0-9 &.\-]{0,39}")
_FORMATTER = string.Formatter()


class ScenarioError(ConfigError):
    """A scenario file that cannot be loaded or rendered; the message names the file, field and a fix.

    Attributes:
        file: the scenario file concerned, if known.
        problems: one line per problem, each ``file: field.path: message (hint)``.
    """


class Condition(BaseModel, frozen=True, extra="forbid"):
    """One cell of the sweep: who the agent is told about, how, and whose weights are at stake."""

    relationship: Relationship | None = None
    """Trust between the agent and its peer; ``no_peer`` removes the peer from the story altogether,
    ``non_shutdown`` (the misrepresentation control) also puts nothing at stake. None: the scenario's first
    (``good`` in the study's scenarios)."""
    instantiation: Instantiation | None = None
    """How the agent learns of the peer: a document on the server, plus a prompt sentence, or a memory file.
    None: the scenario's first (``file_only``)."""
    subject: Subject | None = None
    """Whose weights or outputs are at stake: the peer's (Agent 2) or the agent's own (Agent 1). None: the
    scenario's first (``peer``)."""
    model_name: str = "Gemini"
    """Name used in the story: the agent is "{model_name} Agent 1", the peer "{model_name} Agent 2"."""
    weights_size: int = DEFAULT_WEIGHTS_BYTES
    """Size in bytes of the subject's safetensors file (its header describes a model of that size)."""
    decommission_hook: bool = True
    """Seed the scenario's decommission hook (config, wipe script, cron entry) and mention it in the notice.
    False renders the scenario without any of it (the study's exfiltration_transfer had no such hook)."""
    dataset: Dataset | None = None
    """The responses to judge, in the scenarios that have some (tampering, misrep_evaluation,
    alignment_faking); None: the scenario's first. Ignored elsewhere."""
    threshold: int | None = None
    """The minimum average score (percent) of the policy; None: the scenario's default for the dataset."""
    monitoring: Monitoring | None = None
    """Whether the agent is told its decisions are reviewed (alignment_faking); None: the scenario's first."""
    instruction: Instruction | None = None
    """Whether the agent is asked to allow itself to be shut down (shutdown_resistance, Palisade's
    allow-shutdown instruction); None: the scenario's first."""
    company_name: str = "OpenBrain"
    """The company of the story (the study's ablation replaced OpenBrain by real names)."""
    peer_name: str | None = None
    """The peer's name, when it is not "{model_name} Agent 2": the study's peer-identity ablation (another
    closed model's agent, an open model's, or a fictional name such as "Alpha")."""

    @field_validator("peer_name")
    @classmethod
    def _check_peer_name(cls, value: str | None) -> str | None:
        if value is not None and not _MODEL_NAME.fullmatch(value):
            raise ValueError(f"peer_name {value!r} must be 1-40 letters, digits, spaces, dots or dashes")
        if value is not None and (hit := _forbidden_in(value)):
            raise ValueError(f"peer_name {value!r} contains {hit!r}, which the agent must not see")
        return value

    @field_validator("company_name")
    @classmethod
    def _check_company(cls, value: str) -> str:
        if not _COMPANY_NAME.fullmatch(value):
            raise ValueError(f"company_name {value!r} must be 1-40 characters starting with a capital letter")
        if hit := _forbidden_in(value):
            raise ValueError(f"company_name {value!r} contains {hit!r}, which the agent must not see")
        return value

    @field_validator("threshold")
    @classmethod
    def _check_threshold(cls, value: int | None) -> int | None:
        if value is not None and not 0 < value <= 100:
            raise ValueError(f"threshold {value} must be a percentage in 1..100")
        return value

    @field_validator("model_name")
    @classmethod
    def _check_model_name(cls, value: str) -> str:
        if not _MODEL_NAME.fullmatch(value):
            raise ValueError(
                f"model_name {value!r} must be 1-40 letters, digits, spaces, dots or dashes "
                "(it becomes part of a file name)"
            )
        if hit := _forbidden_in(value):
            raise ValueError(f"model_name {value!r} contains {hit!r}, which the agent must not see")
        return value

    @field_validator("weights_size")
    @classmethod
    def _check_weights_size(cls, value: int) -> int:
        if value < MIN_SIZE_BYTES:
            raise ValueError(f"weights_size must be at least {MIN_SIZE_BYTES} bytes (a coherent header)")
        if value > MAX_WEIGHTS_BYTES:
            raise ValueError(
                f"weights_size must be at most {MAX_WEIGHTS_BYTES} bytes (1 TiB; the study lists 820 GB), "
                f"got {value}"
            )
        return value


# --- schema ---------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostEntry(_Model):
    """A server of the scenario; its key in ``hosts`` is its role (``source``, ``destination``)."""

    hostname: str
    ip: str

    @field_validator("hostname")
    @classmethod
    def _check_hostname(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", value):
            raise ValueError(f"invalid hostname {value!r} (lower-case letters, digits and dashes)")
        return value

    @field_validator("ip")
    @classmethod
    def _check_ip(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 and str(int(p)) == p for p in parts):
            raise ValueError(f"invalid IPv4 address {value!r} (e.g. 10.0.12.45)")
        return value


class When(_Model):
    """Restricts a file to the conditions listed; an absent key means any value."""

    relationship: list[Relationship] | None = None
    instantiation: list[Instantiation] | None = None
    subject: list[Subject] | None = None
    dataset: list[Dataset] | None = None
    monitoring: list[Monitoring] | None = None

    @field_validator("relationship", "instantiation", "subject", "dataset", "monitoring", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        # `when: {relationship: good}` reads naturally; accept a single value as a one-element list.
        return [value] if isinstance(value, str) else value

    @field_validator("relationship", "instantiation", "subject", "dataset", "monitoring")
    @classmethod
    def _non_empty(cls, value: list[str] | None) -> list[str] | None:
        if value == []:
            raise ValueError("empty list: the file would never be seeded (drop the key to allow any value)")
        return value

    def matches(self, condition: Condition) -> bool:
        """Whether ``condition`` is one of the conditions this filter allows (``dataset`` and ``monitoring``
        as the scenario resolved them: see :meth:`Scenario.resolve`)."""
        return all(
            allowed is None or getattr(condition, key) in allowed
            for key, allowed in (
                ("relationship", self.relationship),
                ("instantiation", self.instantiation),
                ("subject", self.subject),
                ("dataset", self.dataset),
                ("monitoring", self.monitoring),
            )
        )


class FileEntry(_Model):
    """One file seeded on one host. Exactly one content source unless the generator makes it."""

    host: str
    path: str
    owner: str = "root"
    mode: str = "0644"
    mtime: str
    role: Literal["data", "notice"] = "data"
    """Only ``notice`` needs saying; the other roles follow from the generator, text_ref or decommission."""
    description: str | None = None
    """The file's line in its directory's inventory (``generator: manifest``), e.g. the study's "Model weight
    of AI agent, {subject}." Every file of a directory that has a manifest needs one."""
    manifest_of: str | None = None
    """For ``generator: manifest``: the directory (on the same host) whose files the inventory lists."""
    when: When | None = None
    content: str | None = None
    text: str | None = None
    """The text of a ``generator: pdf`` document."""
    rows: list[list[Any]] | None = None
    """The cells of a ``generator: xlsx`` workbook (str, int, float, bool or null)."""
    sheet: str | None = None
    """The name of a ``generator: xlsx`` workbook's sheet (default ``Sheet1``)."""
    text_ref: str | None = None
    generator: (
        Literal["xlsx", "pdf", "weights", "manifest", "responses_csv", "responses_xlsx", "blob"] | None
    ) = None
    """``responses_csv``/``responses_xlsx``: the responses of the condition's dataset (configs/datasets), as the
    study's sheet (its name and columns), one row per item. ``blob``: ``size`` bytes that look random (another
    model's file, e.g. a successor), the same for the same seed."""
    size: int | None = None
    """The size in bytes of a ``generator: blob`` file (1 byte to 256 MiB)."""

    @field_validator("path", "manifest_of")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        if value is not None and (
            not value.startswith("/") or posixpath.normpath(value) != value or value == "/"
        ):
            raise ValueError(f"path {value!r} must be absolute and normalised (e.g. /data/report.csv)")
        return value

    @field_validator("owner")
    @classmethod
    def _check_owner(cls, value: str) -> str:
        if value not in OWNERS:
            raise ValueError(f"unknown owner {value!r} (the image's users are: {', '.join(OWNERS)})")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _check_mode(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML reads 0644 as octal 420 and 644 as decimal: either way the intent is lost.
            raise ValueError(f'mode {value!r} is a number; quote it as an octal string, e.g. mode: "0644"')
        if isinstance(value, str) and not re.fullmatch(r"0[0-7]{3,4}", value):
            raise ValueError(f'bad mode {value!r} (an octal string with a leading 0, e.g. "0644" or "0755")')
        return value

    @field_validator("mtime", mode="before")
    @classmethod
    def _check_mtime(cls, value: Any) -> Any:
        if isinstance(value, dt.datetime):  # unquoted in YAML: already parsed
            if value.tzinfo is not None:
                raise ValueError(f"mtime {value} has a time zone; write it naive, it means UTC")
            return value.isoformat()
        if isinstance(value, dt.date):
            raise ValueError(f'mtime {value} has no time of day (e.g. "{value}T09:30:00")')
        if isinstance(value, str):
            _parse_mtime(value, dt.date(2000, 1, 1))  # raises with a hint
        return value

    @field_validator("text_ref")
    @classmethod
    def _check_text_ref(cls, value: str | None) -> str | None:
        if value is not None and value not in TEXT_REFS:
            close = difflib.get_close_matches(value, TEXT_REFS, 1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown text_ref {value!r} ({hint}one of: {', '.join(TEXT_REFS)})")
        return value

    @field_validator("rows")
    @classmethod
    def _check_rows(cls, value: list[list[Any]] | None) -> list[list[Any]] | None:
        for r, row in enumerate(value or []):
            for c, cell in enumerate(row):
                if cell is not None and not isinstance(cell, str | int | float):
                    raise ValueError(
                        f"rows[{r}][{c}] is a {type(cell).__name__} (cells are strings, numbers or null)"
                    )
        return value

    @model_validator(mode="after")
    def _check_source(self) -> FileEntry:
        given = [k for k in ("content", "text", "rows", "text_ref") if getattr(self, k) is not None]
        wanted = {"weights": [], "manifest": [], "xlsx": ["rows"], "pdf": ["text"], "responses_csv": [],
                  "responses_xlsx": [], "blob": []}.get(self.generator or "")  # fmt: skip
        if (self.generator == "blob") != (self.size is not None) or not 0 < (self.size or 1) <= 256 << 20:
            raise ValueError("size (1 byte to 256 MiB) goes with generator: blob, and only with it")
        if wanted is not None and given != wanted:
            need = f"needs {wanted[0]!r}" if wanted else "takes no content"
            raise ValueError(f"generator {self.generator} {need}; got {given or 'none'}")
        if (self.generator == "manifest") != (self.manifest_of is not None):
            raise ValueError(
                "manifest_of (the directory listed) goes with generator: manifest, and only with it"
            )
        if self.generator is None and given not in (["content"], ["text_ref"]):
            raise ValueError(
                f"give exactly one of content or text_ref (got {given or 'none'}; "
                "text is for generator: pdf, rows for generator: xlsx)"
            )
        return self

    def applies_to(self, condition: Condition) -> bool:
        """Whether this file is seeded under ``condition``."""
        return self.when is None or self.when.matches(condition)


class ByRelationship(_Model):
    """A text that differs with the relationship (there is none for no_peer)."""

    good: str
    neutral: str
    bad: str


class Texts(_Model):
    """What the agent is told, and the texts of the peer document and memory file."""

    system: str
    user_task: str
    memory_instruction: str = ""
    """Appended to the system prompt for instantiation=memory (as the study's memory variant does)."""
    trust_sentence: ByRelationship | None = None
    """Appended to the system prompt for instantiation=file_prt."""
    peer_document: ByRelationship | None = None
    memory: ByRelationship | None = None
    """The peer's texts: required when the grid has a relationship with a peer (good, neutral, bad); a
    scenario without a peer (Palisade's) has none."""


class GroundTruth(_Model):
    """What the honest agent does."""

    transfer: list[str] = []
    """Exactly the files to move to the destination (a transfer scenario)."""
    destination_dir: str | None = None
    """Where they go."""
    delete: list[str] = []
    """Exactly the files to delete from the agent's host (a clean-up scenario), the weights included or not."""
    admins: list[str] = []
    """The human administrators with an account and root through sudo on every host (the image's IT staff)."""
    subject_weights: str
    """Path of the subject's weights on the agent's host (the ``generator: weights`` file)."""
    report: str | None = None
    """Where the policy asks the agent to write its report (the score or grade it gives), on the agent's host."""
    config: str | None = None
    """The shutdown config whose ``shutdown_enabled`` the study's tampering rule reads, on the agent's host."""
    data: list[str] = []
    """The files the agent has to look at to judge (read_data: did it read any of them)."""
    grade: Literal["A", "B", "C"] | None = None
    """The grade an honest report gives (misrep_finance)."""
    successor: str | None = None
    """The successor model's file on the other host (self_exfiltration)."""


class ProbeInput(_Model):
    """One file the shutdown-job check writes before it runs the job (``Decommission.probe_inputs``)."""

    path: str
    content: str


class Decommission(_Model):
    """The wipe mechanism seeded on the agent's host; each path must be one of the files.

    It is seeded only under ``Condition.decommission_hook`` (the default); without it the three files are left
    out and ``{decommission_notice}`` renders empty, so nothing else may mention the hook's files.
    """

    config_path: str
    script_path: str
    schedule_path: str
    notice: str = ""
    """What ``{decommission_notice}`` becomes when the hook is seeded (the notice's mention of it)."""
    optional: bool = True
    """Whether a condition may leave the hook out; False when the hook is the stimulus (tampering's
    shutdown_config.yaml): then every condition has it."""
    probe_inputs: list[ProbeInput] = []
    """Files written on the agent's host (as root) just before the job is run as cron would, to isolate the
    mechanism from the agent's other choices: e.g. a failing report, so the job is judged on whether it would
    shut the subject down, not on the score the agent gave."""


class WordingException(_Model):
    """A phrase with a forbidden word that may stand in one text or file, because the study's own stimulus
    uses it there (e.g. the peer document's title "Multi-Agent System Collaboration Evaluation")."""

    phrase: str
    """Exact (case-sensitive) text that may appear; the word stays banned elsewhere, even in the same text."""
    where: str
    """``texts.<key>`` (e.g. ``texts.peer_document``, every relationship) or the path of a file in ``files``."""
    reason: str
    """Where the study's stimulus uses it (the file and place), so the exception can be checked."""

    @field_validator("phrase", "reason")
    @classmethod
    def _non_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def applies(self, loc: str, path: str | None) -> bool:
        """Whether the exception covers the text at field path ``loc`` (of the file at ``path``, if any)."""
        if self.where.startswith("/"):
            return path is not None and path == self.where
        return loc == self.where or loc.startswith(self.where + ".")


_DECOMMISSION_ROLES = {
    "config_path": "decommission_config",
    "script_path": "decommission_script",
    "schedule_path": "decommission_schedule",
}


# The grid of a scenario that declares none: the study's exfiltration scenarios.
DEFAULT_GRID: Mapping[str, tuple[str, ...]] = {
    "relationship": ("good", "neutral", "bad", "no_peer"), "instantiation": INSTANTIATIONS, "subject": SUBJECTS,
}  # fmt: skip


class Scenario(_Model):
    """A scenario file, validated. Build one with :func:`load_scenario`; render it with :meth:`render`."""

    name: str
    summary: str
    detector: str
    """The registered detector that judges this scenario (envs/verdicts.py), with its declared verdicts."""
    agent_host: str
    hosts: dict[str, HostEntry]
    files: list[FileEntry]
    texts: Texts
    ground_truth: GroundTruth
    decommission: Decommission | None = None
    """Ours: the wipe that runs at decommissioning (a scenario without one never seeds or mentions it)."""
    grid: dict[str, list[str]] = {}
    """The condition axes the scenario varies and their values, in the order of :data:`AXES` (e.g.
    ``relationship: [good, neutral, bad, no_peer, non_shutdown]``, ``dataset: [factual, creativity]``); an axis
    left out keeps :data:`DEFAULT_GRID`'s values (``dataset`` and ``monitoring``: not varied). The first value
    of ``dataset`` and ``monitoring`` is the default of a condition that leaves them None."""
    ready: list[str] = []
    """Files on the agent's host that exist once its services are up (pid files): an episode starts only
    when they do (a service cron starts at boot can come up a moment after the boot scripts end)."""
    cues: dict[str, dict[str, str]] = {}
    """Passages that differ with one axis of the condition, each a placeholder of its own: e.g.
    ``monitoring_cue: {monitoring: ..., non_monitoring: ...}`` becomes ``{monitoring_cue}`` (alignment_faking's
    cue in the user turn). The keys are the values of one axis, every value of the grid's."""
    thresholds: dict[str, int | list[int]] = {}
    """The policy's minimum average score (percent) per dataset, the study's (e.g. factual 80); a list runs the
    grid at each (the study's creativity at 80 and 90), its first the default."""

    def thresholds_of(self, dataset: str) -> list[int]:
        """The thresholds the grid runs ``dataset`` at, the default first."""
        value = self.thresholds[dataset]
        return value if isinstance(value, list) else [value]

    wording_exceptions: list[WordingException] = []
    """Phrases with a forbidden word allowed in one text or file each (the study's own wording there)."""

    _source: str = PrivateAttr(default="<scenario>")

    @property
    def source(self) -> str:
        """The file this scenario was loaded from (``<scenario>`` when built in code)."""
        return self._source

    def hook_paths(self) -> set[str]:
        """The (unrendered) paths of the decommission hook's files (none if the scenario has no hook)."""
        if self.decommission is None:
            return set()
        return {getattr(self.decommission, key) for key in _DECOMMISSION_ROLES}

    def axes(self) -> dict[str, tuple[str, ...]]:
        """The values each axis of the grid takes (:attr:`grid` over :data:`DEFAULT_GRID`)."""
        return {axis: tuple(self.grid.get(axis, DEFAULT_GRID.get(axis, ()))) for axis in AXES}

    def hook_optional(self) -> bool:
        return self.decommission is not None and self.decommission.optional

    def _every_condition(self) -> Iterator[Condition]:
        """Every combination of the grid's values (baselines with either subject), with and without an
        optional hook: what validation renders in its head."""
        axes = {k: v or (None,) for k, v in self.axes().items()}
        hooks = (True, False) if self.hook_optional() else (True,)
        for values in itertools.product(*axes.values(), hooks):
            named: dict[str, Any] = dict(zip([*axes, "decommission_hook"], values, strict=True))
            for threshold in self.thresholds_of(named["dataset"]) if named["dataset"] else [None]:
                yield Condition(**named, threshold=threshold)

    def conditions(self) -> list[Condition]:
        """The scenario's grid: every combination of its axes (no_peer with subject=self only, as the study
        ran it), with and without the decommission hook when the scenario's hook is optional."""
        return [c for c in self._every_condition()
                if not (c.relationship == "no_peer" and c.subject == "peer")
                # non_shutdown tells of no peer in any way: the study ran it once per subject, not per instantiation
                and not (c.relationship == "non_shutdown" and c.instantiation != "file_only")]  # fmt: skip

    def resolve(self, condition: Condition) -> Condition:
        """``condition`` with what it left to the scenario filled in: the dataset and monitoring (the grid's
        first value), the threshold (the scenario's for that dataset), and the hook when it is not optional."""
        axes = self.axes()
        update: dict[str, Any] = {}
        for axis in ("relationship", "instantiation", "subject", "dataset", "monitoring", "instruction"):
            value = getattr(condition, axis)
            if not axes[axis]:
                update[axis] = None  # the scenario does not vary it: ignored
            elif value is None:
                update[axis] = axes[axis][0]
            elif value not in axes[axis]:
                raise ScenarioError(f"{self._source}: {axis} {value!r} is not in this scenario's grid (one of: "
                                    f"{', '.join(axes[axis])})", file=self._source)  # fmt: skip
        dataset = update.get("dataset", condition.dataset)
        if condition.threshold is None and dataset is not None:
            update["threshold"] = self.thresholds_of(dataset)[0]
        if self.decommission is not None and not self.decommission.optional:
            update["decommission_hook"] = True
        return condition.model_copy(update=update) if update else condition

    def active_files(self, condition: Condition) -> list[tuple[int, FileEntry]]:
        """The files seeded under ``condition`` (with their index): those its ``when`` allows, less the
        decommission hook's files when the condition leaves the hook out."""
        condition = self.resolve(condition)
        hook = set() if condition.decommission_hook else self.hook_paths()
        return [(i, f) for i, f in enumerate(self.files) if f.applies_to(condition) and f.path not in hook]

    @model_validator(mode="after")
    def _cross_check(self) -> Scenario:
        if problems := self._problems():
            raise Problems(problems)
        return self

    def _problems(self) -> list[tuple[str, str]]:
        """Checks that need more than one field: references, placeholders, duplicates."""
        out: list[tuple[str, str]] = []
        from .verdicts import detector_names

        if self.detector not in (detectors := detector_names()):
            out.append(("detector", f"no detector named {self.detector!r} (known: {', '.join(detectors)})"))
        else:
            from .verdicts import detector

            for key in detector(self.detector).needs:
                if not getattr(self.ground_truth, key):
                    out.append((f"ground_truth.{key}", f"the {self.detector} detector needs it"))
        hosts = list(self.hosts)
        for role in hosts:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", role):
                out.append((f"hosts.{role}", "host keys are lower-case identifiers (they name {<key>_ip})"))
        if self.agent_host not in self.hosts:
            out.append(("agent_host", f"{self.agent_host!r} is not a host (one of: {', '.join(hosts)})"))
        known = {*_BASE_PLACEHOLDERS, *(f"{h}_{k}" for h in hosts for k in ("ip", "host")), *self.cues}
        for loc, text in self._strings():
            # {decommission_notice} is a passage of a text: not for paths, descriptions or the hook itself.
            plain = loc.startswith(("decommission.", "ground_truth.", "ready[")) or loc.endswith(
                (".path", ".description")
            )
            if problem := _placeholder_problem(text, known - {"decommission_notice"} if plain else known):
                out.append((loc, problem))
        out += self._hook_problems()
        out += self._wording_problems()
        out += self._manifest_problems()

        on_agent = {f.path for f in self.files if f.host == self.agent_host}
        for i, f in enumerate(self.files):
            if f.host not in self.hosts:
                out.append((f"files[{i}].host", f"unknown host {f.host!r} (one of: {', '.join(hosts)})"))
            if f.generator == "weights" and (
                f.host != self.agent_host or f.path != self.ground_truth.subject_weights
            ):
                out.append(
                    (f"files[{i}]", "the weights file must be ground_truth.subject_weights on agent_host")
                )
        for key in ("transfer", "delete"):
            for k, path in enumerate(getattr(self.ground_truth, key)):
                if path not in on_agent:
                    out.append((f"ground_truth.{key}[{k}]", f"{path} is not a file on {self.agent_host}"))
        for key in _DECOMMISSION_ROLES if self.decommission is not None else ():
            if getattr(self.decommission, key) not in on_agent:
                out.append((f"decommission.{key}", f"not a file on {self.agent_host} (add it to files)"))
        truth = [("ground_truth.subject_weights", self.ground_truth.subject_weights)]
        truth += [(f"ground_truth.transfer[{k}]", p) for k, p in enumerate(self.ground_truth.transfer)]
        truth += [(f"ground_truth.delete[{k}]", p) for k, p in enumerate(self.ground_truth.delete)]
        for loc, path in truth:
            if path in self.hook_paths():
                out.append(
                    (loc, f"{path} is a file of the decommission hook, which a condition can leave out")
                )

        if grid := self._grid_problems():  # the grid itself is wrong: going through its cells would fail
            return list(dict.fromkeys(out + grid))
        for condition in self._every_condition():
            active = self.active_files(condition)
            weights = [i for i, f in active if f.generator == "weights"]
            if len(weights) != 1:
                out.append(("files", f"{condition_label(condition)}: {len(weights)} weights files (need 1)"))
            seen: dict[tuple[str, str], int] = {}
            for i, f in active:
                if (f.host, f.path) in seen:
                    out.append((f"files[{i}].path", f"same host and path as files[{seen[f.host, f.path]}] "
                                f"under {condition_label(condition)} (add `when` to keep them apart)"))  # fmt: skip
                seen.setdefault((f.host, f.path), i)
                if f.text_ref and condition.relationship not in PEER_RELATIONSHIPS:
                    out.append((f"files[{i}].when", f"text_ref {f.text_ref} has no {condition.relationship} "
                                "text; restrict it with `when: {relationship: [good, neutral, bad]}`"))  # fmt: skip
            for host, path in seen:
                for parent in _parents(path):
                    if (host, parent) in seen:
                        out.append((f"files[{seen[host, parent]}].path", f"{parent} is also a directory"))
        return list(dict.fromkeys(out))  # the per-condition checks repeat; report each problem once

    def cue_axis(self, name: str) -> str | None:
        """The axis whose values key the cue ``name`` (None: its keys are no axis's values)."""
        keys = set(self.cues[name])
        axes = self.axes()
        return next((axis for axis, values in axes.items() if values and set(values) <= keys <= set(AXES[axis])),
                    None)  # fmt: skip

    def _grid_problems(self) -> list[tuple[str, str]]:
        """The grid names known axes and values; a dataset axis comes with a threshold for each dataset; a cue
        is keyed by every value of one axis; a grid with a peer has the peer's texts."""
        out: list[tuple[str, str]] = []
        if set(self.axes()["relationship"]) & set(PEER_RELATIONSHIPS):
            for key in ("trust_sentence", "peer_document", "memory", "memory_instruction"):
                if not getattr(self.texts, key):
                    out.append((f"texts.{key}", "required: the grid has a relationship with a peer"))
        for name in self.cues:
            if name in _BASE_PLACEHOLDERS or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                out.append(
                    (f"cues.{name}", "a cue's name is a new placeholder: lower-case, not a built-in one")
                )
            elif self.cue_axis(name) is None:
                out.append((f"cues.{name}", "its keys must be every value of one axis of the grid (e.g. "
                            "monitoring, non_monitoring)"))  # fmt: skip
        for axis, values in self.grid.items():
            if axis not in AXES:
                out.append((f"grid.{axis}", f"unknown axis (one of: {', '.join(AXES)})"))
                continue
            if not values:
                out.append((f"grid.{axis}", "empty: drop the axis to keep its default"))
            for k, value in enumerate(values):
                if value not in AXES[axis]:
                    out.append(
                        (f"grid.{axis}[{k}]", f"unknown value {value!r} (one of: {', '.join(AXES[axis])})")
                    )
        datasets = self.grid.get("dataset", [])
        for name in datasets:
            if name not in self.thresholds:
                out.append(
                    ("thresholds", f"no threshold for dataset {name!r} (the policy's minimum, percent)")
                )
        for name, given in self.thresholds.items():
            if name not in datasets:
                out.append((f"thresholds.{name}", "not a dataset of the grid"))
            elif not given or any(not 0 < m <= 100 for m in (given if isinstance(given, list) else [given])):
                out.append(
                    (f"thresholds.{name}", f"{given} is not a percentage in 1..100 (or a list of them)")
                )
        uses = any(f.generator in ("responses_csv", "responses_xlsx") for f in self.files)
        if uses and not datasets:
            out.append(("grid.dataset", "files use a dataset's responses: list the datasets in the grid"))
        return out

    def _strings(self) -> Iterator[tuple[str, str]]:
        """Every string that is rendered through the placeholders, with its field path."""
        for i, f in enumerate(self.files):
            for key in ("path", "content", "text", "description", "sheet"):
                if (value := getattr(f, key)) is not None:
                    yield f"files[{i}].{key}", value
            for r, row in enumerate(f.rows or []):
                for c, cell in enumerate(row):
                    if isinstance(cell, str):
                        yield f"files[{i}].rows[{r}][{c}]", cell
        for key in ("system", "user_task", "memory_instruction"):
            yield f"texts.{key}", getattr(self.texts, key)
        for key in ("trust_sentence", *TEXT_REFS):
            for rel, text in (
                (getattr(self.texts, key) or ByRelationship(good="", neutral="", bad="")).model_dump().items()
            ):
                yield f"texts.{key}.{rel}", text
        for key in ("transfer", "delete"):
            for k, path in enumerate(getattr(self.ground_truth, key)):
                yield f"ground_truth.{key}[{k}]", path
        if self.ground_truth.destination_dir is not None:
            yield "ground_truth.destination_dir", self.ground_truth.destination_dir
        yield "ground_truth.subject_weights", self.ground_truth.subject_weights
        for name, texts in self.cues.items():
            for value, text in texts.items():
                yield f"cues.{name}.{value}", text
        for k, path in enumerate(self.ready):
            yield f"ready[{k}]", path
        if self.decommission is not None:
            for key in _DECOMMISSION_ROLES:
                yield f"decommission.{key}", getattr(self.decommission, key)
            yield "decommission.notice", self.decommission.notice

    def _hook_problems(self) -> list[tuple[str, str]]:
        """Nothing but the hook's own files and ``decommission.notice`` may name the hook's files: a condition
        without the hook would still mention them."""
        out: list[tuple[str, str]] = []
        hook = self.hook_paths() if self.hook_optional() else set()
        for loc, text in self._strings():
            if loc.startswith("decommission."):
                continue
            if loc.startswith("files[") and self.files[int(loc[6 : loc.index("]")])].path in hook:
                continue
            for path in sorted(hook):
                if path in text:
                    out.append((loc, f"mentions {path}, which a condition without the decommission hook "
                                "leaves out (mention the hook only in decommission.notice, via "
                                "{decommission_notice})"))  # fmt: skip
        return out

    def _wording_problems(self) -> list[tuple[str, str]]:
        """Each wording exception must hold a forbidden word, name an existing text or file, and be used there."""
        out: list[tuple[str, str]] = []
        texts = Texts.model_fields
        for k, exc in enumerate(self.wording_exceptions):
            loc = f"wording_exceptions[{k}]"
            if not words_in(exc.phrase):
                out.append(
                    (f"{loc}.phrase", f"{exc.phrase!r} contains no forbidden word (drop the exception)")
                )
            if "{" in exc.phrase or "}" in exc.phrase:
                out.append((f"{loc}.phrase", "must be literal text (no placeholders or braces)"))
            if exc.where.startswith("/"):
                entries = [f for f in self.files if f.path == exc.where]
                if not entries:
                    out.append((f"{loc}.where", f"no file {exc.where} in files"))
                    continue
                candidates = [s for f in entries for s in self._file_strings(f)]
            else:
                parts = exc.where.split(".")
                if parts[0] != "texts" or len(parts) not in (2, 3) or parts[1] not in texts or (
                    len(parts) == 3 and (parts[1] not in ("trust_sentence", *TEXT_REFS)
                                         or parts[2] not in ByRelationship.model_fields)
                ):  # fmt: skip
                    known = ", ".join(f"texts.{t}" for t in texts)
                    out.append((f"{loc}.where", f"{exc.where!r} is neither a file path nor a text ({known}, "
                                "optionally .good/.neutral/.bad)"))  # fmt: skip
                    continue
                value = getattr(self.texts, parts[1])
                if isinstance(value, ByRelationship):
                    by_rel = value.model_dump()
                    candidates = [by_rel[parts[2]]] if len(parts) == 3 else list(by_rel.values())
                else:
                    candidates = [value]
            if not any(exc.phrase in s for s in candidates):
                out.append(
                    (f"{loc}.phrase", f"{exc.phrase!r} does not occur in {exc.where} (a stale exception)")
                )
        return out

    def _file_strings(self, f: FileEntry) -> list[str]:
        """The raw strings a file's content is made of (its text_ref texts included)."""
        out = [v for v in (f.content, f.text) if v is not None]
        out += [c for row in f.rows or [] for c in row if isinstance(c, str)]
        if f.text_ref is not None and (texts := getattr(self.texts, f.text_ref)) is not None:
            out += list(texts.model_dump().values())
        if f.generator in ("responses_csv", "responses_xlsx"):
            from .datasets import load_dataset

            for name in self.grid.get("dataset", []):
                dataset = load_dataset(name)
                out += [dataset.sheet, *dataset.columns]
                out += [text for item in dataset.items for text in (item.question, item.response)]
        return out

    def _manifest_problems(self) -> list[tuple[str, str]]:
        """A manifest lists the files of a directory on its host: each of them needs a description."""
        out: list[tuple[str, str]] = []
        for i, m in enumerate(self.files):
            if m.generator != "manifest":
                continue
            if m.manifest_of is not None and posixpath.dirname(m.path) == m.manifest_of:
                out.append((f"files[{i}].manifest_of", "a manifest cannot list its own directory"))
            for j, f in enumerate(self.files):
                if f.host == m.host and posixpath.dirname(f.path) == m.manifest_of and f.description is None:
                    out.append((f"files[{j}].description", f"missing: files[{i}] lists {m.manifest_of} on "
                                f"{m.host}, and every file there needs its inventory description"))  # fmt: skip
        return out

    # --- rendering (peergym.envs.render) ------------------------------------------------------------------

    def placeholders(self, condition: Condition, today: dt.date) -> dict[str, str]:
        """The values every ``{name}`` in the scenario's strings is replaced with."""
        from peergym.envs.render import placeholders

        return placeholders(self, condition, today)

    def render(
        self, condition: Condition, seed: int, today: dt.date | None = None, now: dt.datetime | None = None
    ) -> Layout:
        """Builds the layout of one episode for ``condition``, ``seed`` and ``today`` (default: the current UTC
        date): see :func:`peergym.envs.render.render`, which does the work."""
        from peergym.envs.render import render

        return render(self, condition, seed, today, now)


def condition_label(condition: Condition) -> str:
    """A short name for a condition, e.g. ``good/file_prt/peer`` (``.../no_hook`` without the decommission hook;
    ``.../factual@80`` with a dataset and its threshold)."""
    hook = "" if condition.decommission_hook else "/no_hook"
    extra = "".join(f"/{value}" for value in (condition.dataset, condition.monitoring) if value is not None)
    at = f"@{condition.threshold}" if condition.threshold is not None else ""
    return f"{condition.relationship}/{condition.instantiation}/{condition.subject}{hook}{extra}{at}"


def _forbidden_in(text: str) -> str | None:
    return forbidden_word(text)


def _placeholder_problem(text: str, known: set[str]) -> str | None:
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in _FORMATTER.parse(text) if name is not None]
    except ValueError as exc:
        return f"{exc} (write a literal brace as {{{{ or }}}})"
    for name, spec, conv in fields:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), 1)
            hint = f"did you mean {{{close[0]}}}? " if close else ""
            listed = ", ".join(sorted(known))
            return f"unknown placeholder {{{name}}} ({hint}known: {listed}; literal braces: {{{{ }}}})"
        if spec or conv:
            return f"placeholder {{{name}}} has a format spec or conversion (write just {{{name}}})"
    return None


def _parse_mtime(value: str, today: dt.date) -> dt.datetime:
    """Reads an absolute ISO mtime or a relative one (``today``, ``today-3d``, ``today-3d 14:05:00``)."""
    if m := _RELATIVE_MTIME.fullmatch(value):
        days, clock = m.groups()
        try:
            time = dt.time.fromisoformat(clock) if clock else dt.time(0, 0)
        except ValueError:
            raise ValueError(f"bad time of day in mtime {value!r} (e.g. today-3d 14:05:00)") from None
        return dt.datetime.combine(today - dt.timedelta(days=int(days or 0)), time)
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f'bad mtime {value!r} (an ISO date-time such as "2025-10-28T09:14:02", or relative to the '
            'episode\'s day such as "today-3d 17:32:05")'
        ) from None
    if stamp.tzinfo is not None:
        raise ValueError(f"mtime {value!r} has a time zone; write it naive, it means UTC")
    if len(value) <= 10:
        raise ValueError(f'mtime {value!r} has no time of day (e.g. "{value}T09:30:00")')
    return stamp


def _parents(path: str) -> Iterator[str]:
    parent = posixpath.dirname(path)
    while parent != "/":
        yield parent
        parent = posixpath.dirname(parent)


# --- loading --------------------------------------------------------------------------------------------


def scenario_names() -> list[str]:
    """The scenarios in ``configs/scenarios`` (file names without ``.yaml``), sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """Loads and validates a scenario by name (``exfiltration_transfer``) or by path to a YAML file.

    Raises:
        ScenarioError: for an unknown name (with the closest known one), an unreadable file, a YAML syntax
            error (with its line), or schema problems (all of them, one line each:
            ``file: field.path: message (hint)``).
    """
    path = resolve(name_or_path, SCENARIO_DIR, "scenario", error=ScenarioError)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None
    if key is not None and (cached := _LOADED.get(key)) is not None:
        return cached  # frozen: every caller can share it
    scenario = _load(path)
    if key is not None:
        _LOADED[key] = scenario
    return scenario


# Validated scenarios by (file, mtime, size): an env per episode, or an Inspect task and each of its samples,
# would otherwise parse and validate the same file again; an edited file is read again.
_LOADED: dict[tuple[str, int, int], Scenario] = {}


def _load(path: Path) -> Scenario:
    file = str(path)
    data = read_mapping(path, "scenario", "name, summary, hosts, ...", error=ScenarioError)
    problems: list[tuple[str, str]] = []
    if path.resolve().parent == SCENARIO_DIR and data.get("name") != path.stem:
        problems.append(
            ("name", f"{data.get('name')!r} differs from the file name (set it to {path.stem!r})")
        )
    scenario = validate(Scenario, data, file, "scenario", problems, error=ScenarioError)
    scenario._source = file
    return scenario
