"""Checking a prepared speech corpus against its recipes before any training: long recordings
(the batch limit follows them, or --max-seconds leaves them out), recordings shorter than the
front end, transcripts longer than CTC can align, pre-training's skips and crops."""


import pytest

from d2v_fairseq.data.manifest import read_lines
from d2v_fairseq.data.speech_plan import (LETTER_MIN_COUNT, MIN_UPDATES, StagePlan,
                                          choose_budget, conv_layers, ctc_frames_needed, epoch_batches,
                                          format_plan, frames, plan_stages, receptive_field)
from d2v_fairseq.modules.errors import InputError

FRONT_END = "[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2"
PRETRAIN = {"model": {"conv_feature_layers": FRONT_END}, "task": {"min_sample_size": 8000, "max_sample_size": 48000}}
FINETUNE = {"task": {"max_sample_size": 400000}, "dataset": {"max_tokens": 320000}}


def letters_of(text):
    return " ".join(" ".join(word) + " |" for word in text.split())


def write_split(folder, split, rows):
    """rows: (samples, transcript)."""
    with open(folder / f"{split}.tsv", "w") as f:
        f.write("/audio\n" + "".join(f"{split}{i}.flac\t{n}\n" for i, (n, _) in enumerate(rows)))
    with open(folder / f"{split}.ltr", "w") as f:
        f.write("".join(letters_of(t) + "\n" for _, t in rows))
    with open(folder / f"{split}.wrd", "w") as f:
        f.write("".join(t + "\n" for _, t in rows))


@pytest.fixture
def corpus(tmp_path):
    """train: a 30-s monologue, a 300-sample click, a 1-s clip with 60 letters, normal clips;
    valid: a 21.9-s recording; test: a 1-s clip with too many letters."""
    long_text = "ALL OF THIS " * 20
    write_split(tmp_path, "train", [(48000, "HELLO THERE"), (481489, long_text), (300, "A"),
                                    (16000, "ABCDEFGHIJ " * 6), (32000, "GOOD MORNING")])
    write_split(tmp_path, "valid", [(350400, "A LONG ONE"), (24000, "SHORT")])
    write_split(tmp_path, "test", [(16000, "ABCDEFGHIJ " * 6), (24000, "FINE")])
    write_split(tmp_path, "pretrain", [(48000, "x"), (481489, "x"), (300, "x"), (16000, "x"), (32000, "x")])
    return tmp_path


def test_front_end_arithmetic():
    layers = conv_layers(FRONT_END, "cfg")
    assert layers[0] == (64, 10, 5) and len(layers) == 7
    assert receptive_field(layers) == 400  # 25 ms at 16 kHz
    assert frames(399, layers) == 0 and frames(400, layers) == 1
    assert frames(16000, layers) == 49  # 50 Hz
    assert ctc_frames_needed("A A B".split()) == 4  # a blank between the repeated A's
    with pytest.raises(InputError, match="conv_feature_layers"):
        conv_layers("__import__('os')", "cfg")


def test_long_recordings_are_kept_and_the_batch_limit_follows_them(corpus):
    plan = plan_stages(str(corpus), PRETRAIN, FINETUNE)
    assert "dataset.max_tokens=481489" in plan.finetune_overrides
    assert "task.max_sample_size=481489" in plan.finetune_overrides
    # the click and the over-long transcript are left out of fine-tuning, with their manifest lines
    assert {r: len(v) for r, v in plan.left_out.items()} == {"shorter than the front end": 1,
                                                              "transcript too long for CTC": 1}
    assert plan.left_out["shorter than the front end"][0].startswith("train.tsv:4: train2.flac: 300 samples")
    assert plan.left_out["transcript too long for CTC"][0].startswith("train.tsv:5: train3.flac: 66 frames needed")
    assert plan.subsets == {"train": "train_usable", "valid": "valid", "test": "test"}
    kept = read_lines(corpus / "train_usable.tsv")
    assert [line.split("\t")[1] for line in kept[1:]] == ["48000", "481489", "32000"]
    assert read_lines(corpus / "train_usable.ltr")[1] == letters_of("ALL OF THIS " * 20)
    # the test clip CTC cannot align is still scored, and said so
    assert any(note.startswith("test.tsv:2: its transcript needs 66 CTC frames") for note in plan.notes)
    assert any("pre-training skips 1 recording" in n for n in plan.notes)
    assert any("pre-training crops 1 recording" in n for n in plan.notes)
    text = format_plan(plan)
    assert "train" in text and "30.09" in text and "left out before training: 1 shorter than the front end" in text


def test_max_seconds_leaves_long_recordings_out_of_fine_tuning(corpus):
    plan = plan_stages(str(corpus), PRETRAIN, FINETUNE, max_seconds=20)
    assert len(plan.left_out["longer than --max-seconds"]) == 2  # the 30.1-s train and 21.9-s valid rows
    assert plan.subsets["valid"] == "valid_usable"
    assert not any(o.startswith("dataset.max_tokens") for o in plan.finetune_overrides)  # 320000 holds the rest
    assert len(read_lines(corpus / "valid_usable.tsv")) == 2  # root + the short one


def test_a_split_left_empty_stops_before_training(corpus):
    write_split(corpus, "valid", [(200, "A")])
    with pytest.raises(InputError, match="valid.tsv: no valid utterance is left"):
        plan_stages(str(corpus), PRETRAIN, FINETUNE)


def test_epoch_batches_pad_each_batch_to_its_longest():
    assert epoch_batches([10, 10, 10, 10], 40) == 1
    assert epoch_batches([10, 10, 10, 11], 40) == 2  # four padded to 11 exceed 40
    assert epoch_batches([30, 5, 5, 5], 30) == 2  # in length order: three short ones, then the long one
    assert epoch_batches([], 40) == 0 and epoch_batches([1, 2], 0) == 2


def test_the_plan_counts_batches_and_letters_of_what_stages_read(corpus):
    plan = plan_stages(str(corpus), PRETRAIN, FINETUNE)
    # fine-tuning reads the 3 kept training rows (48000, 16000... the 60-letter clip is left out), pre-training
    # the 4 rows of at least 8000 samples, cropped to 48000
    kept = [48000, 481489, 32000]
    assert plan.batches_per_epoch["finetune"] == epoch_batches(kept, 481489)
    assert plan.batches_per_epoch["pretrain"] == len([48000, 48000, 16000, 32000])  # no max_tokens: one each
    assert plan.letter_counts["L"] == "HELLO THERE".count("L") + ("ALL OF THIS " * 20).count("L")
    assert "|" not in plan.letter_counts and "Z" not in plan.letter_counts


def test_budgets_follow_the_alphabet_and_the_audio():
    rare = {chr(0x410 + i): 1 for i in range(17)}  # one stray Cyrillic row adds no work
    plan = StagePlan(subsets={}, finetune_overrides=[], batches_per_epoch={"pretrain": 245, "finetune": 172},
                     letter_counts={**{chr(65 + i): LETTER_MIN_COUNT for i in range(26)}, **rare})
    budget = choose_budget(plan)
    assert budget.finetune_updates == 3000  # 100 per letter for 26 letters, rounded up to a validation
    plan.letter_counts.update({f"{c}\u030c": 50 for c in "CDENRSTZ"})  # a wider alphabet: more CTC updates
    assert choose_budget(plan).finetune_updates == 3500  # 34 letters
    assert budget.pretrain_updates == 1500  # 6 passes of 245 batches
    plan.batches_per_epoch = {"pretrain": 2, "finetune": 3}
    assert choose_budget(plan).pretrain_updates == MIN_UPDATES
    assert any("26 letters" in line for line in budget.reasons)
