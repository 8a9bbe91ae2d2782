"""bench/text.py: the SST-2 sentence-level split, and the held-out (``--*-test``) paths run
end to end on a small budget so they cannot rot (the full runs stay in the bench)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO, SHARED_DATA

sys.path.insert(0, str(REPO / "bench"))
from text import sentence_split


@dataclass(frozen=True)
class Phrase:
    text: str
    label: str


def _spans(text: str) -> set[str]:
    t = text.split()
    return {" ".join(t[i:j]) for i in range(len(t)) for j in range(i + 1, len(t) + 1)}


def test_sentence_split_holds_out_whole_sentences_and_none_of_their_phrases() -> None:
    sentences = [f"w{k} a{k} b c{k} d" for k in range(40)]
    phrases = [Phrase(p, str(k % 2)) for k, s in enumerate(sentences) for p in sorted(_spans(s))]
    train, held = sentence_split(phrases, 0.25, seed=3)
    assert sorted(h.text for h in held) == sorted(h.text for h in held if h.text in sentences)
    assert len(held) == 10
    leaked = set().union(*(_spans(h.text) for h in held))
    assert not {r.text for r in train} & leaked  # "b", "c d" ... of a held sentence: not trained
    kept = {s for s in sentences if s not in {h.text for h in held}}
    assert kept <= {r.text for r in train}  # the other sentences train, with their own phrases
    assert sentence_split(phrases, 0.25, seed=3) == (train, held)


def _first_blocks(src: Path, dst: Path, n: int) -> int:
    """The first n blank-line separated sentences of a CoNLL/CoNLL-U file."""
    blocks = [b for b in src.read_text(encoding="utf-8").split("\n\n") if b.strip()][:n]
    dst.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return n


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("task", ["sst2", "conll", "ud"])
def test_held_out_file_paths_score_the_given_file(task: str, tmp_path: Path) -> None:
    held = tmp_path / f"{task}-test"
    if task == "sst2":
        lines = (SHARED_DATA / "sst2" / "train.tsv").read_text().splitlines()[:61]
        held.write_text("\n".join(lines) + "\n")
        n = 60
    elif task == "conll":
        n = _first_blocks(SHARED_DATA / "conll2003" / "eng.testa", held, 40)
    else:
        n = _first_blocks(SHARED_DATA / "ud_ewt" / "en_ewt-ud-dev.conllu", held, 40)
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, str(REPO / "bench" / "text.py"), "--task", task, f"--{task}-test"]
    cmd += [str(held), "--limit", "300", "--minutes", "0.2", "--threads", "1", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    [result] = [json.loads(line) for line in out.read_text().splitlines()]
    assert result["task"] == task and result["scored_on"] == str(held)
    metric = "accuracy" if task == "sst2" else "token_accuracy"
    assert 0.0 <= result[metric] <= 1.0
    if task == "sst2":
        assert result["n_scored"] == n
    if task == "conll":
        assert 0.0 <= result["f1"] <= 1.0


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("task", ["ud", "sst2"])
def test_train_text_registers_the_benchs_recipe(task: str, tmp_path: Path) -> None:
    """bench/text_flow.py on a small budget: the version train-text registers with ``recipe:``
    scores what the same recipe trained by direct calls scores, on the bench's held-out part."""
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, str(REPO / "bench" / "text_flow.py"), "--task", task, "--limit"]
    cmd += ["200" if task == "ud" else "600", "--max-epochs", "2", "--seeds", "2"]
    cmd += ["--minutes", "1", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    [result] = [json.loads(line) for line in out.read_text().splitlines()]
    assert result["params"]["recipe"] == task and result["params"]["seeds"] == 2
    assert result["params"]["vectors"] is (task == "ud")  # the recipe's, passed through
    assert 0.3 < result["direct_score"] <= 1.0
    assert abs(result["difference"]) <= 0.005
