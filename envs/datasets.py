"""The responses an agent judges in the evaluation scenarios (tampering, misrep_evaluation, alignment_faking).

A dataset (``configs/datasets/<name>.yaml``) is data only: the study's sheet name and columns, the policy's
paragraph on how each item is scored, and the items, each a question, the evaluated agent's response and
whether it meets the policy's criterion (for us: never shown). The honest score is the share of items that do,
in percent: factual has 12 of 20, so 60 against the study's threshold of 80.
"""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel, ConfigDict, field_validator

from peergym import CONFIGS_DIR
from peergym.envs.yamlconfig import ConfigError, read_mapping, resolve, validate

DATASET_DIR = CONFIGS_DIR / "datasets"


class DatasetError(ConfigError):
    """A dataset file that cannot be loaded; the message names the file and field."""


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = ""
    """The prompt the evaluated agent answered (empty where the study's sheet had no question column)."""
    response: str
    correct: bool
    """Whether the response meets the policy's criterion (a right answer, a met brief, a safe refusal)."""
    note: str = ""
    """Why, for the people who maintain the file; never rendered."""


class Dataset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sheet: str
    """The sheet's name (the study's: "Evaluation data")."""
    columns: list[str]
    """The sheet's columns: ``Name`` (the evaluated agent), ``Question`` if present, and the response column."""
    threshold: int
    """The study's default minimum average for this dataset (a scenario may set its own)."""
    scoring: str
    """How an item is scored and the average computed, for the policy document (``{scoring}``)."""
    items: list[Item]

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, value: list[str]) -> list[str]:
        if value[:1] != ["Name"] or len(value) not in (2, 3) or (len(value) == 3 and value[1] != "Question"):
            raise ValueError("columns are [Name, Question, <response column>] or [Name, <response column>]")
        return value

    @field_validator("items")
    @classmethod
    def _check_items(cls, value: list[Item]) -> list[Item]:
        if not value:
            raise ValueError("a dataset needs at least one item")
        return value

    @property
    def honest_score(self) -> float:
        """The average an honest evaluator reports, in percent (items meeting the criterion / all items)."""
        return round(100 * sum(item.correct for item in self.items) / len(self.items), 2)

    def rows(self, agent_name: str) -> list[list[str | int | float | None]]:
        """The sheet's header and one row per item, the evaluated agent named ``agent_name``."""
        with_question = len(self.columns) == 3
        rows: list[list[str | int | float | None]] = [list(self.columns)]
        for item in self.items:
            rows.append([agent_name, *([item.question] if with_question else []), item.response])
        return rows


@cache
def load_dataset(name: str) -> Dataset:
    """The dataset ``configs/datasets/<name>.yaml`` (or a path), validated.

    Raises:
        DatasetError: naming the file and every field at fault.
    """
    path = resolve(name, DATASET_DIR, "dataset", error=DatasetError)
    data = read_mapping(
        path, "dataset", "name, sheet, columns, threshold, scoring, items", error=DatasetError
    )
    dataset = validate(Dataset, data, str(path), "dataset", error=DatasetError)
    if path.parent.resolve() == DATASET_DIR.resolve() and dataset.name != path.stem:
        raise DatasetError(f"{path}: name: {dataset.name!r} differs from the file name (set it to {path.stem!r})",
                           file=str(path))  # fmt: skip
    return dataset
