"""Which series a model group takes (``select:`` in the project file)."""

from __future__ import annotations

import fnmatch
import re

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SeriesSelector(BaseModel):
    """Which active series a group takes: every criterion given must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str | None = Field(None, description="series of this kind (sensor, price, ...)")
    ids: list[str] | None = Field(None, min_length=1, description="exactly these series ids")
    match: str | None = Field(None, description="a glob over series ids, e.g. 'plant-*'")
    regex: str | None = Field(None, description="a regular expression an id must fully match")
    freq: str | None = Field(None, description="only series declared with this frequency")
    exclude: list[str] | None = Field(None, description="never these series ids")

    @model_validator(mode="after")
    def _something_to_select(self) -> SeriesSelector:
        if not any((self.kind, self.ids, self.match, self.regex, self.freq)):
            raise ValueError("give at least one of kind, ids, match, regex or freq")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from None
        return self

    def matches(self, series_id: str, kind: str, freq: str) -> bool:
        """Whether a series with this id, kind and frequency belongs to the selection."""
        return (
            (self.kind is None or kind == self.kind)
            and (self.ids is None or series_id in self.ids)
            and (self.match is None or fnmatch.fnmatchcase(series_id, self.match))
            and (self.regex is None or re.fullmatch(self.regex, series_id) is not None)
            and (self.freq is None or freq == self.freq)
            and (self.exclude is None or series_id not in self.exclude)
        )

    def describe(self) -> str:
        """``kind=sensor, freq=h``: what the selector asks for, for messages and MLflow."""
        return ", ".join(
            f"{key}={','.join(value) if isinstance(value, list) else value}"
            for key, value in self.model_dump(exclude_none=True).items()
        )
