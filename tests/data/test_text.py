import pytest

from d2v_fairseq.data.text import TextInputError, prepare, read_lines
from d2v_fairseq.demos.wordnet import read_glosses


def test_non_utf8_line_is_named(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("first line\nsecond line\ncaf\xe9 ok\n".encode("utf-8") + b"bad \xff byte\n")
    with pytest.raises(TextInputError, match=r"bad.txt:4: not UTF-8"):
        read_lines(str(path))


def test_empty_file_is_named(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n  \n")
    with pytest.raises(TextInputError, match=r"empty.txt: empty"):
        read_lines(str(path))


def test_prepare_checks_inputs_before_training_bpe(tmp_path):
    (tmp_path / "train.txt").write_text("some words here\n")
    with pytest.raises(TextInputError, match=r"valid.txt: no such file"):
        prepare(str(tmp_path / "train.txt"), str(tmp_path / "valid.txt"), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "sentencepiece.bpe.model").exists()


def test_prepare_writes_masked_lm_input(text_corpus):
    import os

    from fairseq.data import Dictionary

    names = set(os.listdir(text_corpus))
    assert {"dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx", "sentencepiece.bpe.model"} <= names
    assert 200 < len(Dictionary.load(os.path.join(text_corpus, "dict.txt"))) <= 410


def test_wordnet_glosses_carry_their_category():
    glosses = read_glosses()
    assert len(glosses) > 100000
    by_category = {}
    for definition, gloss, category in glosses:
        by_category.setdefault(category, definition)
        assert gloss.startswith(definition)
    assert {"noun.animal", "noun.food", "noun.artifact", "verb.motion"} <= set(by_category)


def test_every_line_that_is_not_utf8_is_named_at_once(tmp_path):
    from d2v_fairseq.data.text import TextInputError, read_lines

    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\n\xff\xfe bad\nanother good\nbad \xc3\x28 too\n")
    with pytest.raises(TextInputError) as err:
        read_lines(str(path))
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"{path}: 2 of 4 lines cannot be used")
    assert f"{path}:2: not UTF-8" in lines[1] and f"{path}:4: not UTF-8" in lines[2]
