"""Readers keep good records, reject malformed ones with file:line, and read the real corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp.readers import TextFormatError, read_conll, read_conllu, read_labelled
from tests.support import SHARED_DATA

SHARED = SHARED_DATA


def test_csv_quoted_fields_extra_columns_and_rejects(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_bytes(
        b"doc_id,text,label\n"
        b'1,"Great film, loved it",pos\n'
        b'2,"spans\ntwo lines",neg\n'
        b"3,too,many,columns\n"
        b'4,"   ",pos\n'
        b"5,caf\xe9 latin-1 bytes,neg\n"
        b"6,no label,\n"
        b"7,fine again,neg\n"
    )
    result = read_labelled(path)
    assert [(r.text, r.label, r.line, r.fields) for r in result.records] == [
        ("Great film, loved it", "pos", 2, {"doc_id": "1"}),
        ("spans\ntwo lines", "neg", 3, {"doc_id": "2"}),
        ("fine again", "neg", 9, {"doc_id": "7"}),
    ]
    assert [str(r) for r in result.rejects] == [
        f"{path}:5: expected 3 columns, got 4",
        f"{path}:6: empty document",
        f"{path}:7: invalid UTF-8 at byte 5",
        f"{path}:8: empty label",
    ]
    assert result.received == 7


def test_tsv_is_unquoted_and_label_may_be_optional(tmp_path: Path) -> None:
    path = tmp_path / "docs.tsv"
    path.write_text('sentence\n"quoted" words stay\nplain\n')
    result = read_labelled(path, require_label=False)
    assert [r.text for r in result.records] == ['"quoted" words stay', "plain"]
    assert result.records[0].label is None
    with pytest.raises(TextFormatError, match="no label column"):
        read_labelled(path)
    (tmp_path / "bad.csv").write_text("body,label\nx,1\n")
    with pytest.raises(TextFormatError, match=r"bad.csv:1: no text column"):
        read_labelled(tmp_path / "bad.csv")
    with pytest.raises(TextFormatError, match="cannot read"):
        read_labelled(tmp_path / "missing.csv")


def test_conll_bioes_docstart_and_malformed_sentences(tmp_path: Path) -> None:
    path = tmp_path / "ner.txt"
    path.write_bytes(
        b"-DOCSTART- O\n\n"
        b"EU S-ORG\nrejects O\nGerman S-MISC\n\n"
        b"Peter B-PER\nBlackburn E-PER\n\n"
        b"bad X-PER\nline O\n\n"
        b"too many columns O\nok O\n\n"
        b"-DOCSTART- O\n\n"
        b"Caf\xc3\xa9 S-LOC\n\n"
        b"broken \xff\xfe O\n\n"
    )
    result = read_conll(path)
    assert result.scheme == "BIOES"
    assert [(s.tokens, s.tags, s.line, s.document) for s in result.records] == [
        (("EU", "rejects", "German"), ("S-ORG", "O", "S-MISC"), 3, 1),
        (("Peter", "Blackburn"), ("B-PER", "E-PER"), 7, 1),
        (("Café",), ("S-LOC",), 18, 2),
    ]
    assert [str(r) for r in result.rejects] == [
        f"{path}:10: unknown tag 'X-PER' for scheme BIOES: tags are O or B/I/E/S-TYPE",
        f"{path}:13: expected 2 columns (token ... tag), got 4",
        f"{path}:20: invalid UTF-8 at byte 7",
    ]
    # Declared BIO: E- and S- tags are then unknown.
    bio = read_conll(path, scheme="BIO")
    assert [r.line for r in bio.rejects][:2] == [3, 8]
    with pytest.raises(ValueError, match="scheme"):
        read_conll(path, scheme="IOB9")


def test_conllu_skips_comments_ranges_and_empty_nodes(tmp_path: Path) -> None:
    def tok(i: str, form: str, upos: str) -> str:
        return "\t".join([i, form, "_", upos, "_", "_", "0", "root", "_", "_"])

    path = tmp_path / "ud.conllu"
    path.write_text(
        "\n".join(
            [
                "# sent_id = 1",
                "# text = Don't go.",
                tok("1-2", "Don't", "_"),
                tok("1", "Do", "AUX"),
                tok("2", "n't", "PART"),
                tok("3", "go", "VERB"),
                tok("3.1", "gone", "VERB"),
                tok("4", ".", "PUNCT"),
                "",
                tok("1", "Bad", "NOTATAG"),
                "",
                "1\tshort\tline",
                "",
                tok("1", "Fine", "ADJ"),
                "",
            ]
        )
    )
    result = read_conllu(path)
    assert [(s.tokens, s.tags, s.line) for s in result.records] == [
        (("Do", "n't", "go", "."), ("AUX", "PART", "VERB", "PUNCT"), 3),
        (("Fine",), ("ADJ",), 14),
    ]
    assert [str(r) for r in result.rejects] == [
        f"{path}:10: unknown UPOS tag 'NOTATAG'",
        f"{path}:12: expected 10 tab-separated columns, got 3",
    ]
    assert len(read_conllu(path, tagset=None).records) == 3


@pytest.mark.skipif(not SHARED.exists(), reason=f"{SHARED} (public evaluation data) is absent")
def test_real_corpora_read_without_rejects() -> None:
    train = read_conll(SHARED / "conll2003" / "eng.train")
    assert (train.scheme, len(train.records), len(train.rejects)) == ("BIOES", 14041, 0)
    ud = read_conllu(SHARED / "ud_ewt" / "en_ewt-ud-dev.conllu")
    assert len(ud.rejects) == 0 and len(ud.records) > 1900
    assert sum(len(s.tokens) for s in ud.records) > 24_000
    sst = read_labelled(SHARED / "sst2" / "train.tsv")
    assert len(sst.rejects) == 0 and len(sst.records) > 60_000
    assert {r.label for r in sst.records} == {"0", "1"}
