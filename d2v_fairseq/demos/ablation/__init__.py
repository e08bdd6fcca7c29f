"""The paper's ablations as studies anyone can rerun (Baevski et al., 2022, sec. 5.3):

* ``top-k``: how many of the teacher's top blocks the target averages (``average_top_k_layers``);
* ``target``: which point of the teacher's block is the target (``target_feature``: ``ffn``,
  ``ffn-residual``, ``attn``, ``block``);
* ``context``: how much of the input the teacher's self-attention sees
  (``teacher_attention_window``: steps, a fraction of the input, or ``full``);
* ``budget``: the number of pre-training updates, scored against the pre-training seconds they
  took (a time-to-quality curve; ``--replot`` joins several recipes' curves in one plot);
* ``method``: data2vec, data2vec 2.0, wav2vec 2.0 and HuBERT (a recipe's ``methods``), each
  pre-trained for the recipe's seconds of training, then fine-tuned alike (``labels``: HuBERT's
  MFCC k-means labels).

A study runs, for every setting and pre-training seed, one pre-training and one fine-tuning +
scoring with a *recipe* (``configs/ablations/MODALITY.yaml`` by default: the demo's data and a
narrow 8-block model; ``--recipe FILE`` for another). Every run lives in a directory keyed by
what determines it: the resolved pre-training config (overrides, update count, seed) and a
fingerprint of the data; the fine-tuning directory below it is keyed the same way. A finished
run is reused, a changed setting gets a new directory, an interrupted one resumes from its
``checkpoint_last.pt``. Settings that resolve to the same config (``K = 8`` in ``top-k`` and
``ffn`` in ``target``) share one run. A recipe whose fine-tuning names ``random_init`` overrides
also fine-tunes the same model from random initialization once per seed: the study's baseline,
drawn in its plot. ``--scores-from`` takes the scores of runs an earlier table lists under the
same run directory (same resolved pre-training config, seed and data) instead of training them
again.

    d2v ablate top-k --modality vision --values 1,4 --seeds 1 --work W

prints one row per setting (score per seed, mean, std), writes W/STUDY.png and the table into
W/results.json.
"""

from .keys import data_fingerprint, model_default, model_shape, run_key  # noqa: F401
from .plots import plot_curves, plot_entry, replot  # noqa: F401
from .recipes import (  # noqa: F401
                      MODALITIES,
                      PLACEHOLDERS,
                      Recipe,
                      Stage,
                      StudyError,
                      default_recipe,
                      load_recipe,
                      model_depth,
                      resolved_config,
                      stage_overrides,
)
from .running import (  # noqa: F401
                      RANDOM_INIT,
                      Progress,
                      RunResult,
                      default_score,
                      earlier_scores,
                      provenance,
                      run_random_init,
                      run_setting,
                      run_study,
                      work_lock,
)
from .studies import STUDIES, Study, parse_values  # noqa: F401
from .tables import format_table, summarize  # noqa: F401
