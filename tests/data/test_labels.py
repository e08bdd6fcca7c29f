import pytest

from d2v_fairseq.data.labels import check_labels, dictionary_symbols
from d2v_fairseq.data.manifest import ManifestError


@pytest.fixture
def dict_file(tmp_path):
    path = tmp_path / "dict.ltr.txt"
    path.write_text("| 10\nA 5\nB 3\n")
    return str(path)


def test_good_labels(tmp_path, dict_file):
    labels = tmp_path / "train.ltr"
    labels.write_text("A B |\nB A |\n")
    assert check_labels(str(labels), "train.tsv", 2, dictionary_symbols(dict_file)) == ["A B |", "B A |"]


@pytest.mark.parametrize(
    "text, count, message",
    [
        ("A B |\nA Z |\n", 2, r"train.ltr:2: \['Z'\] not in the dictionary: 'A Z \|'"),
        ("A B |\n\nB |\n", 3, "train.ltr:2: empty transcript"),
        ("A B |\nB |\n", 3, "train.ltr: 2 transcripts but train.tsv lists 3 utterances"),
    ],
)
def test_bad_labels_name_file_and_line(tmp_path, dict_file, text, count, message):
    labels = tmp_path / "train.ltr"
    labels.write_text(text)
    with pytest.raises(ManifestError, match=message):
        check_labels(str(labels), "train.tsv", count, dictionary_symbols(dict_file))


def test_missing_label_file_and_bad_dictionary(tmp_path, dict_file):
    with pytest.raises(ManifestError, match="valid.ltr: label file not found"):
        check_labels(str(tmp_path / "valid.ltr"), "valid.tsv", 1, {"A"})
    bad = tmp_path / "dict.bad.txt"
    bad.write_text("A 1\nB\n")
    with pytest.raises(ManifestError, match="dict.bad.txt:2: expected 'SYMBOL COUNT'"):
        dictionary_symbols(str(bad))
