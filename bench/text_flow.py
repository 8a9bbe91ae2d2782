"""train-text's recipes through the service path, against the same recipe called directly.

    .venv/bin/python bench/text_flow.py [--task ud|conll|sst2] [--minutes 8] [--threads 1]
        [--limit N] [--max-epochs E] [--seeds S] [--out FILE]

The bench's training part (ud: the 80 % sentence split of en_ewt-ud-dev; conll: eng.train;
sst2: the phrases of the sentences not held out) is written to a file and loaded with
``ingest-text`` into a fresh SQLite database; ``train-text`` trains it with ``recipe: TASK``
(MLflow on SQLite, Prefect without a server); the version it registers is loaded from the
registry and scored on the bench's held-out part (ud: the other 20 %; conll: eng.testa; sst2:
the held-out sentences). Then the same documents, read back from the database and split by
document id exactly as train-text splits them, train the same recipe by direct calls
(nlp/), scored on the same held-out part. Prints both scores and their difference (issue 20:
within 0.005) and appends them to ``--out`` as JSON.

The scores are not bench/text.py's: train-text holds out a validation and a test part of the
documents it is given (10 % each by document id), so it trains on less than the bench does.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from text import sentence_split  # noqa: E402

from nlp.readers import read_conll, read_conllu, read_labelled  # noqa: E402

TASK_KIND = {"ud": "tagger", "conll": "tagger", "sst2": "classifier"}


def _blocks(path: Path) -> list[str]:
    return [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]


def prepare(task: str, data: Path, work: Path, limit: int | None) -> tuple[Path, list[Any]]:
    """(the training file to ingest, the held-out records to score), as bench/text.py cuts."""
    if task == "ud":
        source = data / "ud_ewt" / "en_ewt-ud-dev.conllu"
        records, blocks = read_conllu(source).records, _blocks(source)
        if len(records) != len(blocks):
            raise SystemExit(f"{source}: {len(blocks)} blocks but {len(records)} sentences")
        pairs = list(zip(records, blocks, strict=True))[:limit]
        random.Random(0).shuffle(pairs)  # bench/text.py's split: the same permutation
        cut = int(len(pairs) * 0.8)
        out = work / "ud-train.conllu"
        out.write_text("\n\n".join(b for _, b in pairs[:cut]) + "\n\n", encoding="utf-8")
        return out, [r for r, _ in pairs[cut:]]
    if task == "conll":
        source, out = data / "conll2003" / "eng.train", work / "conll-train.conll"
        blocks = _blocks(source)[: None if limit is None else limit + 1]  # + the DOCSTART
        out.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
        testa = read_conll(data / "conll2003" / "eng.testa").records
        return out, testa[: None if limit is None else max(40, limit // 4)]
    phrases = read_labelled(data / "sst2" / "train.tsv").records[:limit]
    train, held = sentence_split(phrases, 0.15)
    out = work / "sst2-train.tsv"
    lines = ["sentence\tlabel", *(f"{r.text}\t{r.label}" for r in train)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out, held


def score(kind: str, model: Any, held: list[Any]) -> float:
    if kind == "classifier":
        return float(model.evaluate([r.text for r in held], [r.label for r in held])["accuracy"])
    return float(model.evaluate([r.tokens for r in held], [r.tags for r in held])["score"])


def via_flow(task: str, train_file: Path, params: dict[str, Any]) -> tuple[Any, Any, float]:
    """ingest-text + train-text; (the registered model, its params, training seconds)."""
    from flows.text.ingest import ingest_text
    from flows.text.params import ClassifierParams, IngestTextParams, TaggerParams
    from flows.text.params import TrainTextParams as Train
    from flows.text.train import train_text
    from flows.tracking.registry import load_text_model

    [loaded] = ingest_text(IngestTextParams(paths=[str(train_file)], task=task))
    print(f"[{task}] ingested {loaded['accepted']} of {loaded['received']}", flush=True)
    if TASK_KIND[task] == "classifier":
        p: ClassifierParams | TaggerParams = ClassifierParams(**params)
        run = Train(classifier=p, tagger=None)
    else:
        p = TaggerParams(**params)
        run = Train(classifier=None, tagger=p)
    t0 = time.perf_counter()
    trained = train_text(run).task(task)
    seconds = time.perf_counter() - t0
    return load_text_model(trained.registered_model, trained.version), p, seconds


def direct(kind: str, task: str, p: Any, database_url: str) -> tuple[Any, float]:
    """The same recipe on the same documents (read back, split as train-text splits them)."""
    from db import make_engine
    from db.documents import read_labelled_documents
    from flows.text.candidates import split_by_doc_id
    from nlp.classifier import TextClassifier
    from nlp.tagger import SequenceTagger

    engine = make_engine(database_url)
    frame = read_labelled_documents(engine, task)
    engine.dispose()
    train, val, _ = split_by_doc_id(frame, p.val_fraction, p.test_fraction)
    vectors = p.word_vectors()
    t0 = time.perf_counter()
    if kind == "classifier":
        model: Any = TextClassifier(p.spec())
        model.fit(train["text"].tolist(), train["label"].tolist(), val["text"].tolist(),
                  val["label"].tolist(), vectors=vectors)  # fmt: skip
    else:
        schemes = train["scheme"].dropna().unique().tolist()
        model = SequenceTagger(p.spec())
        model.fit([list(t) for t in train["tokens"]], [list(t) for t in train["tags"]],
                  [list(t) for t in val["tokens"]], [list(t) for t in val["tags"]],
                  scheme=schemes[0] if len(schemes) == 1 else None, vectors=vectors)  # fmt: skip
    return model, time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    task, kind = args.task, TASK_KIND[args.task]
    work = Path(tempfile.mkdtemp(prefix="seqcast-text-flow-"))
    database_url = f"sqlite:///{work / 'seqcast.db'}"
    os.environ.update(
        SEQCAST_DATABASE_URL=database_url,
        MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}",
        SEQCAST_EXPERIMENT="text-flow-bench",
    )
    os.chdir(work)  # MLflow's local artifacts
    from db import make_engine
    from db.migrate import upgrade

    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    train_file, held = prepare(task, args.data, work, args.limit)
    params: dict[str, Any] = {"task": task, "recipe": task, "max_minutes": args.minutes}
    params.update({k: v for k, v in (("max_epochs", args.max_epochs), ("seeds", args.seeds))
                   if v is not None})  # fmt: skip
    flow_model, p, flow_s = via_flow(task, train_file, params)
    direct_model, direct_s = direct(kind, task, p, database_url)
    a, b = score(kind, flow_model, held), score(kind, direct_model, held)
    return {
        "task": task,
        "recipe": task,
        "params": p.model_dump(),
        "flow_score": a,
        "direct_score": b,
        "difference": a - b,
        "n_scored": len(held),
        "flow_train_text_seconds": flow_s,
        "direct_fit_seconds": direct_s,
        "threads": args.threads,
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASK_KIND), default="ud")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--minutes", type=float, default=8.0, help="training time cap")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, help="smoke runs: the first N records only")
    parser.add_argument("--max-epochs", type=int, help="instead of the recipe's")
    parser.add_argument("--seeds", type=int, help="instead of the recipe's")
    parser.add_argument("--out", type=Path, help="append the result as a JSON line")
    args = parser.parse_args()
    args.data = args.data.resolve()
    torch.set_num_threads(args.threads)
    result = run(args)
    print(json.dumps(result, default=str), flush=True)
    if args.out:
        with args.out.open("a") as fh:
            fh.write(json.dumps(result, default=str) + "\n")


if __name__ == "__main__":
    main()
