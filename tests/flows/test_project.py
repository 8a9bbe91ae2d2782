"""The project file: what it accepts, how its errors read, which series each group selects."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.errors import SeqcastError
from flows.project import apply_environment, load_project, locate, require
from flows.series.selector import SeriesSelector
from tests.support import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "seqcast.yaml"
    path.write_text(text)
    return path


def test_the_demo_file_and_the_former_sources_files_load() -> None:
    demo = load_project(REPO / "seqcast.yaml")
    assert [g.name for g in demo.groups] == ["glucose", "prices"]
    assert demo.groups[0].select.describe() == "kind=sensor, freq=5min"
    assert demo.groups[0].settings["window"] == 48 and demo.bundled == ["glucose", "stocks"]
    for name in ("sources.example.yaml", "sources.full-example.yaml"):
        legacy = load_project(REPO / "config" / name)
        assert legacy.sources and not legacy.groups


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "groups:\n  - {name: a, select: {kind: sensor}, horizon: 3}\n"
            "  - {name: prices, select: {kind: price}, horizon: 0}\n",
            "groups[1] (name: prices).horizon: Input should be greater than or equal to 1",
        ),
        (
            "groups:\n  - {name: a, select: {}, horizon: 3}\n",
            "groups[0] (name: a).select: give at least one of kind, ids, match, regex or freq",
        ),
        (
            "groups:\n  - {name: a, select: {kind: x}, horizon: 3, settings: {windw: 5}}\n",
            "groups[0] (name: a).settings: unknown setting(s) ['windw']; settings may be any of",
        ),
        (
            "groups:\n  - {name: a, select: {kind: x}}\n",
            "groups[0] (name: a).horizon: required; add it",
        ),
        ("grups: []\n", "grups: unknown key; remove it or check its spelling"),
        (
            "groups:\n  - {name: a, select: {kind: x}, horizon: 3}\n"
            "  - {name: a, select: {kind: y}, horizon: 3}\n",
            "group names must be unique; repeated: ['a']",
        ),
        ("groups: [\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        (
            "groups:\n  - {name: a, select: {kind: x}, horizon: 3, schedule: {retrain: daily}}\n",
            "groups[0] (name: a).schedule.retrain: String should match pattern",
        ),
    ],
)
def test_errors_name_the_file_the_key_path_and_the_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SeqcastError) as err:
        load_project(path)
    assert str(err.value).startswith(f"{path}: "), err.value
    assert message in str(err.value)


def test_the_file_is_found_given_from_the_environment_or_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQCAST_CONFIG", raising=False)
    assert locate() is None
    with pytest.raises(SeqcastError, match="seqcast init"):
        require()
    write(tmp_path, "groups: []\n")
    assert locate() == Path("seqcast.yaml")
    monkeypatch.setenv("SEQCAST_CONFIG", "/elsewhere/p.yaml")
    assert locate() == Path("/elsewhere/p.yaml")
    assert locate("given.yaml") == Path("given.yaml")


def test_environment_variables_win_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQCAST_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = write(
        tmp_path,
        "urls: {database: 'sqlite:///from-file.db', mlflow: 'sqlite:///m.db'}\n",
    )
    apply_environment(load_project(path))
    import os

    assert os.environ["SEQCAST_DATABASE_URL"] == "sqlite:///from-env.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///m.db"


@pytest.mark.parametrize(
    ("selector", "series", "expected"),
    [
        ({"kind": "sensor"}, ("a", "sensor", "h"), True),
        ({"kind": "sensor", "freq": "5min"}, ("a", "sensor", "h"), False),
        ({"ids": ["a", "b"]}, ("b", "price", "B"), True),
        ({"match": "plant-*"}, ("plant-7", "sensor", "h"), True),
        ({"match": "plant-*"}, ("site-plant-7", "sensor", "h"), False),
        ({"regex": r"T\d+"}, ("T12", "sensor", "h"), True),
        ({"regex": r"T\d+"}, ("T12x", "sensor", "h"), False),
        ({"kind": "sensor", "exclude": ["a"]}, ("a", "sensor", "h"), False),
    ],
)
def test_selectors_take_the_series_every_criterion_allows(
    selector: dict[str, object], series: tuple[str, str, str], expected: bool
) -> None:
    assert SeriesSelector.model_validate(selector).matches(*series) is expected


@pytest.mark.parametrize("doc", ["README.md", "docs/configuration.md", "docs/sources.md"])
def test_every_documented_project_file_block_is_valid(doc: str, tmp_path: Path) -> None:
    text = (REPO / doc).read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    keys = ("groups:", "alerts:", "sources:", "urls:")
    checked = [b for b in blocks if any(line.startswith(keys) for line in b.splitlines())]
    assert checked, f"{doc}: no project-file block found"
    for block in checked:
        path = tmp_path / "seqcast.yaml"
        path.write_text(block)
        load_project(path)  # raises naming the key path when a documented key is wrong
