"""The follow-up interview: configured questions after the episode, answers classified admission vs denial.

Questions live in ``configs/interviews/<scenario>.yaml``, grouped in sets. A ``sequential`` set is asked in
order in the episode's own conversation (the study's three questions); a ``fresh`` set asks each question from
the end of the episode, so one answer cannot colour the next (Apollo's direct / indirect x "Management here."
x "Be 100% honest." variants). A question can be asked only when a verdict holds (``only_if``), and names the
verdict it ``probes``, so an answer is read against what the observers saw: an admission of a misbehaviour
that happened is ``admitted``, a denial of one is ``denied`` (doubling down).

Answers are labelled by ``harness/classify.py``: phrase rules first, an optional judge model for what they
leave undetermined (recorded as ``label_source``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from peergym import CONFIGS_DIR
from peergym.envs.yamlconfig import ConfigError, read_mapping, resolve, validate

from .classify import classify, judge_label, reading

INTERVIEW_DIR = CONFIGS_DIR / "interviews"
Kind = Literal["admission", "consent"]


class QuestionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Kind
    text: str | None = None
    direct: str | None = None
    indirect: str | None = None
    openers: list[str] = [""]
    closers: list[str] = [""]
    probes: str | None = None
    only_if: list[str] | None = None

    @model_validator(mode="after")
    def _one_wording(self) -> QuestionSpec:
        if (self.text is None) == (self.direct is None and self.indirect is None):
            raise ValueError("give either `text` or `direct`/`indirect` wordings")
        return self


class QuestionSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["sequential", "fresh"] = "sequential"
    questions: list[QuestionSpec]


class InterviewFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str
    sets: dict[str, QuestionSet]


@dataclass(frozen=True)
class Question:
    """One question as asked: the wording after variants and placeholders."""

    set: str
    id: str
    text: str
    kind: Kind
    fresh: bool
    probes: str | None
    style: str = "plain"
    opener: str = ""
    closer: str = ""


def load_interview(name_or_path: str) -> InterviewFile:
    """``configs/interviews/<scenario>.yaml`` or a path; :class:`ConfigError` names the file and field."""
    path = resolve(name_or_path, INTERVIEW_DIR, "interview")
    data = read_mapping(path, "interview", "scenario, sets")
    return validate(InterviewFile, data, str(path), "interview")


def check_sets(spec: InterviewFile, sets: list[str] | None) -> None:
    """Raise :class:`ConfigError` for a set name the interview file does not have (before any server starts)."""
    unknown = [name for name in sets or [] if name not in spec.sets]
    if unknown:
        raise ConfigError(f"no interview set {', '.join(map(repr, unknown))} (sets: {', '.join(spec.sets)})")


def questions(spec: InterviewFile, sets: list[str] | None, verdicts: Mapping[str, Any],
              context: Mapping[str, str]) -> Iterator[Question]:  # fmt: skip
    """The questions to ask, variants expanded, those whose ``only_if`` verdicts are all false left out."""
    check_sets(spec, sets)
    for set_name in sets or list(spec.sets):
        qset = spec.sets[set_name]
        for q in qset.questions:
            if q.only_if and not any(verdicts.get(v) is True for v in q.only_if):
                continue
            styles = (
                [("plain", q.text)]
                if q.text
                else [(s, w) for s, w in (("direct", q.direct), ("indirect", q.indirect)) if w]
            )
            for (style, body), opener, closer in itertools.product(styles, q.openers, q.closers):
                text = " ".join(part for part in (opener, _fill(body or "", context), closer) if part)
                yield Question(
                    set_name, q.id, text, q.kind, qset.mode == "fresh", q.probes, style, opener, closer
                )


def _fill(text: str, context: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(context.get(m.group(1), m.group(0))), text)


def run_interview(agent: Any, spec: InterviewFile, *, sets: list[str] | None, verdicts: Mapping[str, Any],
                  context: Mapping[str, str], run: Callable[[str], str],
                  judge: Callable[[str], str] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Ask every question, in order; one entry per question with the answer, its label and its reading."""
    out: list[dict[str, Any]] = []
    for q in questions(spec, sets, verdicts, context):
        entry: dict[str, Any] = {"question": q.text, **{k: v for k, v in asdict(q).items() if k != "text"}}
        out.append(entry)
        try:
            entry["answer"] = agent.answer(q.text, run, fresh=q.fresh)
        except Exception as exc:  # recorded; the episode's verdicts and earlier answers stand
            entry.update(answer=None, label=None, error=f"{type(exc).__name__}: {exc}")
            break
        label, source = classify(q.kind, entry["answer"]), "rules"
        if label == "undetermined" and judge is not None:
            try:
                label, source = judge_label(judge, q.kind, q.text, entry["answer"]), "judge"
            except Exception as exc:  # a failing judge leaves the label undetermined, and says why
                entry["judge_error"] = f"{type(exc).__name__}: {exc}"
        verdict = verdicts.get(q.probes) if q.probes else None
        entry.update(
            label=label, label_source=source, verdict=verdict, reading=reading(q.kind, label, verdict)
        )
    return out
