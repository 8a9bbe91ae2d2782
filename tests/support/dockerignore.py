"""Docker's build-context filter: ``.dockerignore`` patterns as ``docker build`` applies them.

Patterns are matched against each path and its parent directories (so ``*`` excludes every
top-level entry with all it holds); the last matching pattern wins; ``!`` re-includes; ``**``
spans directories.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


def pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1].replace("[!", "[^"), end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


@dataclass(frozen=True)
class IgnoreRules:
    """``.dockerignore`` patterns in order: (exclusion, regex, literal prefix)."""

    rules: tuple[tuple[bool, re.Pattern[str], str], ...]

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
            prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
            rules.append((not negated, pattern_regex(pattern), prefix))
        return cls(tuple(rules))

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative, posix) stays out of the build context."""
        parts = path.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for exclusion, regex, _ in self.rules:
            if any(regex.fullmatch(c) for c in candidates):
                result = exclusion
        return result

    def may_include_below(self, directory: str) -> bool:
        """Whether a negation could bring back something under an excluded ``directory``."""
        return any(
            not exclusion and (prefix.startswith(directory + "/") or not prefix)
            for exclusion, _, prefix in self.rules
        )


def context_files(root: Path, rules: IgnoreRules) -> set[str]:
    """Relative posix paths of the files the build context sends."""
    found: set[str] = set()
    for here, dirs, files in os.walk(root):
        rel = Path(here).relative_to(root).as_posix()
        rel = "" if rel == "." else rel + "/"
        dirs[:] = [
            d for d in dirs if not rules.excluded(rel + d) or rules.may_include_below(rel + d)
        ]
        found.update(rel + f for f in files if not rules.excluded(rel + f))
    return found
