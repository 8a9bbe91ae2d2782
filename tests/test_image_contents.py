"""The worker image carries everything its deployments reference.

Docker has no engine here, so the image's file list is read from docker/Dockerfile's COPY
lines and its dockerignore (tests/support/image_files.py); every path that prefect.yaml's
deployments and the project files they name reference must be in it, relative to the image's
working directory, and the data packages the bundled data sets read must be installed.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.project import load_project
from flows.sources.bundled import DATA_PACKAGE
from flows.text.ingest import TEXT_DATA_PACKAGES
from tests.support.image_files import Image, ImageBuildError, read_image

ROOT = Path(__file__).resolve().parents[1]
SPEC: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
DEPLOYMENTS: list[dict[str, Any]] = SPEC["deployments"]
SET_WORKING_DIRECTORY = "prefect.deployments.steps.set_working_directory"


@pytest.fixture(scope="module")
def image() -> Image:
    return read_image(ROOT, ROOT / "docker" / "Dockerfile")


def _file_parameters(deployment: dict[str, Any]) -> list[str]:
    """The entrypoint's file and every file the deployment's parameters name."""
    files = [deployment["entrypoint"].partition(":")[0]]
    params = (deployment.get("parameters") or {}).get("params") or {}
    if params.get("config"):
        files.append(params["config"])
    files += params.get("paths", [])
    return files


def _project_files() -> list[str]:
    names = {
        d["parameters"]["params"]["config"]
        for d in DEPLOYMENTS
        if ((d.get("parameters") or {}).get("params") or {}).get("config")
    }
    return sorted(names)


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_every_file_a_deployment_names_is_in_the_image(
    image: Image, deployment: dict[str, Any]
) -> None:
    assert image.missing_files(_file_parameters(deployment)) == []
    bundled = ((deployment.get("parameters") or {}).get("params") or {}).get("bundled", [])
    if deployment["entrypoint"].startswith("flows/text/") and bundled:
        assert image.missing_packages(list(TEXT_DATA_PACKAGES.values())) == []


def test_the_deployments_pass_a_project_file() -> None:
    assert _project_files() == ["seqcast.yaml"]


@pytest.mark.parametrize("project_file", _project_files())
def test_what_the_project_file_references_is_in_the_image(image: Image, project_file: str) -> None:
    project = load_project(ROOT / project_file)
    # A files source's glob may match nothing; a plain path must be an existing directory.
    plain = [
        s.path
        for s in [*project.sources, *project.documents]
        if s.type == "files" and not any(ch in s.path for ch in "*?[")
    ]
    assert [p for p in plain if not image.has_dir(p)] == []
    if project.bundled:
        assert image.missing_packages([DATA_PACKAGE]) == []


def test_the_bundled_text_corpora_are_installed(image: Image) -> None:
    # ingest-text --bundled (and so train-text's documents) read these packages' data files.
    assert image.missing_packages(list(TEXT_DATA_PACKAGES.values())) == []


def test_the_config_examples_ship(image: Image) -> None:
    examples = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "config").glob("*.yaml"))
    assert examples
    assert image.missing_files(examples) == []


def test_the_working_directory_is_seqcast_home(image: Image) -> None:
    assert image.env.get("SEQCAST_HOME") == str(image.workdir) == "/app"
    assert image.has_file("prefect.yaml")


def test_the_pull_step_changes_into_the_images_project_directory(image: Image) -> None:
    (step,) = SPEC["pull"]
    directory = step[SET_WORKING_DIRECTORY]["directory"]
    # Prefect's run-time env-var placeholder, resolved with the image's environment.
    resolved = re.sub(r"{{\s*\$(\w+)\s*}}", lambda m: image.env.get(m.group(1), "?"), directory)
    assert resolved == str(image.workdir)
    assert not any("pull" in d for d in DEPLOYMENTS)  # none overrides the shared step


@pytest.mark.usefixtures("prefect_harness")
def test_the_pull_step_runs_from_seqcast_home_and_fails_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.deployments.steps.core import StepExecutionError, run_steps

    monkeypatch.chdir(ROOT)  # restored after the test: the step changes the process's cwd
    monkeypatch.setenv("SEQCAST_HOME", str(tmp_path))
    outputs = asyncio.run(run_steps(SPEC["pull"]))
    assert outputs["directory"] == os.getcwd() == str(tmp_path)

    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SEQCAST_HOME")
    with pytest.raises(StepExecutionError):  # loudly, not from whatever directory it was in
        asyncio.run(run_steps(SPEC["pull"]))
    assert os.getcwd() == str(ROOT)


# --- the reader itself: it must be able to say no -------------------------------------------


def _context(tmp_path: Path, dockerfile: str, ignore: str, files: list[str]) -> Path:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / "Dockerfile").write_text(dockerfile)
    (tmp_path / "Dockerfile.dockerignore").write_text(ignore)
    return tmp_path / "Dockerfile"


def test_a_file_the_dockerignore_excludes_is_reported_missing(tmp_path: Path) -> None:
    dockerfile = _context(
        tmp_path,
        "FROM python:3.11-slim AS runtime\nWORKDIR /app\n"
        "COPY prefect.yaml ./\nCOPY config ./config\n",
        "*\n!prefect.yaml\n!config/\nconfig/secret.yaml\n**/__pycache__\n",
        ["prefect.yaml", "config/a.yaml", "config/secret.yaml", "config/__pycache__/x.pyc"],
    )
    image = read_image(tmp_path, dockerfile)
    wanted = ["prefect.yaml", "config/a.yaml", "config/secret.yaml", "config/__pycache__/x.pyc"]
    assert image.missing_files(wanted) == ["config/secret.yaml", "config/__pycache__/x.pyc"]


def test_copying_a_directory_the_dockerignore_excludes_fails_the_build(tmp_path: Path) -> None:
    dockerfile = _context(
        tmp_path,
        "FROM python:3.11-slim\nWORKDIR /app\nCOPY config ./config\n",
        "*\n!prefect.yaml\n",
        ["prefect.yaml", "config/a.yaml"],
    )
    with pytest.raises(ImageBuildError, match="COPY config"):
        read_image(tmp_path, dockerfile)


def test_a_file_only_an_earlier_stage_has_is_missing(tmp_path: Path) -> None:
    build = (
        "FROM python:3.11-slim AS build\nRUN python -m venv /opt/venv\nWORKDIR /src\n"
        "COPY seqcast.yaml ./\nRUN pip install --no-deps Turkish_Treebanks==1.0.0\n"
    )
    runtime = "FROM python:3.11-slim AS runtime\nENV HOME_DIR=/app\nWORKDIR $HOME_DIR\n"
    files = ["seqcast.yaml", "pyproject.toml"]
    image = read_image(tmp_path, _context(tmp_path, build + runtime, "", files))
    assert image.missing_files(["seqcast.yaml", "/src/seqcast.yaml"]) == [
        "seqcast.yaml",
        "/src/seqcast.yaml",
    ]
    assert image.missing_packages(["turkish-treebanks"]) == ["turkish-treebanks"]

    runtime += "COPY --from=build /opt/venv /opt/venv\nCOPY --from=build /src/seqcast.yaml ./\n"
    image = read_image(tmp_path, _context(tmp_path, build + runtime, "", files))
    assert image.missing_files(["seqcast.yaml"]) == []
    assert image.missing_packages(["turkish-treebanks"]) == []
