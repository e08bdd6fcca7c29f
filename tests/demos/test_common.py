"""What the demos share: fine-tuning over seeds, and tables of the mean over the seeds."""

import pytest

from d2v_fairseq.demos.common import finetune_seeds, mean_scores, print_seed_comparison


def test_mean_scores_average_each_score_and_keep_the_test_size():
    runs = [{"accuracy": 50.4, "mcc": 0.45, "n": 1000}, {"accuracy": 54.4, "mcc": 0.49, "n": 1000},
            {"accuracy": 53.0, "mcc": 0.47, "n": 1000}]
    mean = mean_scores(runs)
    assert mean["accuracy"] == pytest.approx(52.6) and mean["mcc"] == pytest.approx(0.47)
    assert mean["n"] == 1000 and isinstance(mean["n"], int)


def test_mean_scores_leave_out_what_is_not_a_number():
    # the tagger's evaluation also returns per-class AP (a dict): only mAP is averaged
    runs = [{"mAP": 40.0, "per_class": {"bell": 50.0}, "n": 400}, {"mAP": 35.0, "per_class": {"bell": 10.0}, "n": 400}]
    assert mean_scores(runs) == {"mAP": 37.5, "n": 400}


def test_finetune_seeds_runs_each_seed_in_its_own_directory(tmp_path):
    calls = []
    runs = finetune_seeds(str(tmp_path), "random init", 2, "10 updates",
                          lambda save_dir, log_path, seed: calls.append((save_dir, log_path, seed)),
                          lambda checkpoint: {"mAP": float(len(calls)), "checkpoint": checkpoint})
    assert calls == [(f"{tmp_path}/finetune_random_init_seed{s}", f"{tmp_path}/finetune_random_init_seed{s}.log", s)
                     for s in (1, 2)]
    assert [r["checkpoint"] for r in runs] == [f"{tmp_path}/finetune_random_init_seed{s}/checkpoint_best.pt" for s in (1, 2)]
    assert [r["mAP"] for r in runs] == [1.0, 2.0]
    # one seed keeps the directory name of a single run (what earlier demo runs left is reused)
    single = finetune_seeds(str(tmp_path), "pretrained", 1, "10 updates", lambda *a: None, lambda checkpoint: checkpoint)
    assert single == [f"{tmp_path}/finetune_pretrained/checkpoint_best.pt"]


def test_seed_comparison_prints_each_seed_and_the_mean(capsys):
    runs = {"pretrained": [{"mAP": 41.5, "n": 400}, {"mAP": 38.3, "n": 400}],
            "random init": [{"mAP": 38.9, "n": 400}, {"mAP": 32.9, "n": 400}]}
    print_seed_comparison(runs, [("mAP", "mAP", False)], "mAP", "400 test clips")
    out = capsys.readouterr().out
    assert "pretrained: mAP per fine-tuning seed 41.5, 38.3" in out
    assert "random init: mAP per fine-tuning seed 38.9, 32.9" in out
    assert "pre-training wins: +4.0 mAP points (400 test clips, mean of 2 fine-tuning seeds)" in out
    print_seed_comparison({k: v[:1] for k, v in runs.items()}, [("mAP", "mAP", False)], "mAP", "400 test clips")
    out = capsys.readouterr().out
    assert "per fine-tuning seed" not in out and "pre-training wins: +2.6 mAP points (400 test clips)\n" in out



def test_a_model_that_did_not_learn_is_marked_not_ranked(capsys):
    from d2v_fairseq.demos.common import print_comparison
    from d2v_fairseq.demos.own_speech import not_learned

    columns = [("v_cer", "viterbi CER", True), ("valid_uer", "valid UER", True)]
    results = {"pretrained": {"v_cer": 96.3, "valid_uer": 93.9}, "random init": {"v_cer": 95.2, "valid_uer": 92.9}}
    failed = not_learned({k: v["valid_uer"] for k, v in results.items()}, {"pretrained": 2000, "random init": 1500})
    assert set(failed) == {"pretrained", "random init"} and "2000 CTC updates" in failed["pretrained"]
    assert "1500 CTC updates" in failed["random init"]  # each with the updates it ran (early stopping)
    assert not print_comparison(results, columns, "v_cer", "n", lower_is_better=True, not_learned=failed)
    out = capsys.readouterr().out
    assert "not learned: pretrained: best valid UER 93.9 > 90" in out and "does NOT win" not in out
    assert "pre-training: not ranked" in out

    results = {"pretrained": {"v_cer": 74.0, "valid_uer": 69.5}, "random init": {"v_cer": 96.0, "valid_uer": 93.7}}
    failed = not_learned({k: v["valid_uer"] for k, v in results.items()}, {})
    assert set(failed) == {"random init"}
    assert print_comparison(results, columns, "v_cer", "n", lower_is_better=True, not_learned=failed)
    assert "pre-training wins: -22.0 viterbi CER points (n; random init did not learn)" in capsys.readouterr().out
    # learned (just) where random init did not, yet worse on the score: said as it is
    results = {"pretrained": {"v_cer": 97.8, "valid_uer": 89.6}, "random init": {"v_cer": 95.7, "valid_uer": 93.0}}
    failed = not_learned({k: v["valid_uer"] for k, v in results.items()}, {})
    assert not print_comparison(results, columns, "v_cer", "n", lower_is_better=True, not_learned=failed)
    assert "pre-training does NOT win: +2.1 viterbi CER points" in capsys.readouterr().out
    assert not_learned({"pretrained": None}, {"pretrained": 10}) == {}  # no UER recorded: no verdict
