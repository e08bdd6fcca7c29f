import subprocess
import sys

from d2v_fairseq.decoding.ctc import read_lexicon


def test_recipe_writes_lexicon_and_arpa_from_local_files(tmp_path):
    (tmp_path / "vocab.txt").write_text("HELLO\nWORLD\nDON'T\n")
    (tmp_path / "lm.txt").write_text("HELLO WORLD\nDON'T HELLO\nHELLO\n")
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "d2v_fairseq", "prepare", "librispeech-lm", str(out), "--vocab",
                    str(tmp_path / "vocab.txt"), "--lm-text", str(tmp_path / "lm.txt"), "--order", "2",
                    "--letter-lm-order", "3"], check=True, capture_output=True)
    lexicon = read_lexicon(str(out / "lexicon.txt"), list("HELOWRDNT'|"))
    assert lexicon["DON'T"] == [["D", "O", "N", "'", "T", "|"]]
    assert (out / "lm.arpa").read_text().startswith("\\data\\\nngram 1=")
    letters = (out / "letters.arpa").read_text()
    assert "\tH E L" in letters and "\t|\t" in letters and "\tL O |" in letters  # letter trigrams, | between words
