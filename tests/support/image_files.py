"""The files and Python distributions a Dockerfile's final stage holds, read without Docker.

There is no container engine here, so the image is rebuilt on paper: the build context is the
repository filtered by the ``<Dockerfile>.dockerignore`` rules (Docker's matching: last match
wins, a pattern matching a parent directory matches its files), and each stage's file list
follows its ``COPY`` lines, from the context or from an earlier stage (``--from``). Distributions
are what the stage's ``pip install`` lines install into the venv it creates; they travel with a
``COPY --from`` of that venv. Files that ``RUN`` lines create are not modelled (apart from the
requirements file generated from pyproject.toml), so a path counts as in the image only when a
``COPY`` puts it there. A ``COPY`` whose source the context lacks fails as ``docker build`` does.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tests.support.dockerignore import IgnoreRules, context_files, pattern_regex


class ImageBuildError(Exception):
    """The Dockerfile would not build (e.g. a COPY source the context lacks)."""


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it (``Foo_Bar==1`` -> ``foo-bar``)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", name.strip())
    return re.sub(r"[-_.]+", "-", match.group(0)).lower() if match else ""


# --- Dockerfile ---------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comment lines dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), m.group(0)), value
    )


@dataclass
class Stage:
    """One stage's modelled file system: files, the venv it made and what pip put there."""

    name: str
    workdir: PurePosixPath = field(default_factory=lambda: PurePosixPath("/"))
    env: dict[str, str] = field(default_factory=dict)
    files: set[PurePosixPath] = field(default_factory=set)
    generated: dict[PurePosixPath, list[str]] = field(default_factory=dict)
    venv: PurePosixPath | None = None
    packages: dict[PurePosixPath, set[str]] = field(default_factory=dict)

    def path(self, value: str) -> PurePosixPath:
        p = PurePosixPath(_expand(value, self.env))
        return p if p.is_absolute() else self.workdir / p


@dataclass(frozen=True)
class Image:
    """The final stage: its files (absolute paths), working directory, env and distributions."""

    files: frozenset[PurePosixPath]
    workdir: PurePosixPath
    env: dict[str, str]
    packages: frozenset[str]

    def resolve(self, path: str, base: PurePosixPath | None = None) -> PurePosixPath:
        p = PurePosixPath(path)
        return p if p.is_absolute() else (base or self.workdir) / p

    def has_file(self, path: str, base: PurePosixPath | None = None) -> bool:
        return self.resolve(path, base) in self.files

    def has_dir(self, path: str, base: PurePosixPath | None = None) -> bool:
        target = self.resolve(path, base)
        return any(target in f.parents for f in self.files)

    def missing_files(self, paths: list[str], base: PurePosixPath | None = None) -> list[str]:
        """The paths (relative to the working directory unless absolute) the image lacks."""
        return [p for p in paths if not self.has_file(p, base)]

    def missing_packages(self, names: list[str]) -> list[str]:
        return [n for n in names if normalize(n) not in self.packages]


def _copy(stage: Stage, args: list[str], stages: dict[str, Stage], context: set[str]) -> None:
    opts = {a.split("=", 1)[0]: a.split("=", 1)[-1] for a in args if a.startswith("--")}
    *sources, dest_raw = [a for a in args if not a.startswith("--")]
    dest = stage.path(dest_raw)
    into_dir = dest_raw.endswith("/") or len(sources) > 1
    source_stage = stages.get(opts.get("--from", ""))
    if "--from" in opts and source_stage is None:
        raise ImageBuildError(f"COPY --from={opts['--from']}: no such stage")
    for src in sources:
        if source_stage is not None:
            _copy_from_stage(stage, source_stage, PurePosixPath(src), dest, into_dir)
            continue
        norm = os.path.normpath(src).lstrip("/")
        pattern = pattern_regex(norm)
        glob = any(ch in norm for ch in "*?[")
        matched = False
        for rel in context:
            if norm == "." or pattern.fullmatch(rel):
                # A file named (or matched) by the source: into dest, or dest is its new name.
                inner = rel if norm == "." else PurePosixPath(rel).name
                stage.files.add(dest / inner if into_dir or glob or norm == "." else dest)
                matched = True
                continue
            parts = rel.split("/")
            for k in range(1, len(parts)):
                if pattern.fullmatch("/".join(parts[:k])):
                    # A directory: its contents (not the directory itself) go into dest.
                    stage.files.add(dest.joinpath(*parts[k:]))
                    matched = True
                    break
        if not matched:
            raise ImageBuildError(
                f"COPY {src}: not in the build context (missing, or excluded by the dockerignore)"
            )


def _copy_from_stage(
    stage: Stage, source: Stage, src: PurePosixPath, dest: PurePosixPath, into_dir: bool
) -> None:
    for f in source.files:
        if f == src:
            stage.files.add(dest / f.name if into_dir else dest)
        elif src in f.parents:
            stage.files.add(dest / f.relative_to(src))
    for root, names in source.packages.items():
        if root == src or src in root.parents:
            stage.packages.setdefault(dest / root.relative_to(src), set()).update(names)


def _pip_installs(stage: Stage, command: str, context_root: Path) -> None:
    words = shlex.split(command.replace("\n", " "))
    words = [w for w in words if not w.startswith("--mount=")]
    for i, word in enumerate(words):
        if word == "venv" and i > 0 and words[i - 1] == "-m":
            stage.venv = stage.path(words[i + 1])
        if word == ">" and "tomllib" in command and "['project']['dependencies']" in command:
            deps = tomllib.loads((context_root / "pyproject.toml").read_text())["project"]
            stage.generated[stage.path(words[i + 1])] = list(deps["dependencies"])
    target = stage.venv or PurePosixPath("/usr/local")
    installed = stage.packages.setdefault(target, set())
    for start in [i for i, w in enumerate(words[:-1]) if w == "pip" and words[i + 1] == "install"]:
        args: list[str] = []
        for w in words[start + 2 :]:
            if w in {"&&", "||", ";", "|"}:
                break
            args.append(w)
        no_deps = "--no-deps" in args
        skip_next = False
        for j, arg in enumerate(args):
            if skip_next:
                skip_next = False
                continue
            if arg in {"-r", "--requirement"}:
                installed.update(
                    normalize(r) for r in stage.generated.get(stage.path(args[j + 1]), [])
                )
                skip_next = True
            elif arg in {"-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-e"}:
                skip_next = True
            elif arg.startswith("-"):
                continue
            elif arg == "." or arg.startswith(("./", "/")):
                project = tomllib.loads((context_root / "pyproject.toml").read_text())["project"]
                installed.add(normalize(project["name"]))
                if not no_deps:
                    installed.update(normalize(r) for r in project["dependencies"])
            else:
                installed.add(normalize(arg))


def read_image(context_root: Path, dockerfile: Path) -> Image:
    """The final stage of ``dockerfile`` built from ``context_root``.

    Raises:
        ImageBuildError: a COPY source that the (dockerignore-filtered) context lacks.
    """
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if not ignore.is_file():
        ignore = context_root / ".dockerignore"
    rules = IgnoreRules.parse(ignore.read_text() if ignore.is_file() else "")
    context = context_files(context_root, rules)
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for keyword, rest in instructions(dockerfile.read_text()):
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stage = stages[name] = Stage(name)
        elif stage is None:
            continue
        elif keyword == "WORKDIR":
            stage.workdir = stage.path(rest)
        elif keyword == "ENV":
            pairs = shlex.split(rest)
            if pairs and "=" not in pairs[0]:
                pairs = [f"{pairs[0]}={' '.join(pairs[1:])}"]
            for pair in pairs:
                key, _, value = pair.partition("=")
                stage.env[key] = _expand(value, stage.env)
        elif keyword == "COPY":
            _copy(stage, shlex.split(rest), stages, context)
        elif keyword == "RUN":
            _pip_installs(stage, rest, context_root)
    if stage is None:
        raise ImageBuildError(f"{dockerfile}: no FROM")
    return Image(
        files=frozenset(stage.files),
        workdir=stage.workdir,
        env=dict(stage.env),
        packages=frozenset(n for names in stage.packages.values() for n in names if n),
    )
