"""The studies: what each varies, how its values are read and checked, the paper's finding."""

from dataclasses import dataclass
from typing import List, Optional

from ...modules.transformer import TARGET_FEATURES
from .recipes import Recipe, Stage, StudyError, model_depth


@dataclass(frozen=True)
class Study:
    """One ablation: the model config key it varies, how to read its values, the paper's finding.
    Each study is one object: its default values, how a value is checked, the config value it
    sets and whether its values are numbers (a number axis in the plot)."""

    name: str
    key: str
    short: str
    label: str
    paper: str
    numeric = False

    def default_values(self, recipe: "Recipe") -> Optional[List[str]]:
        """The settings when neither ``--values`` nor the recipe names them (None: none)."""
        return None

    def problem(self, value: str, recipe: "Recipe") -> Optional[str]:
        """Why ``value`` is not a setting of this study (None: it is)."""
        return None

    def config_value(self, value: str) -> str:
        """The value a setting gives the config key."""
        return value

    def axis_label(self, modality: str) -> str:
        """The plot's x axis, with its unit."""
        return self.label

    def paper_note(self, modality: str) -> str:
        """The paper's finding, as the plot prints it under a ``modality`` study."""
        return self.paper

    def pretrain_updates(self, value: str, recipe: "Recipe") -> int:
        """The pre-training updates of a run of this setting."""
        return recipe.pretrain.updates

    def setting_overrides(self, value: str) -> List[str]:
        """The overrides that make a pre-training run this setting (``++``: set the key whether
        or not the config file names it)."""
        return [f"++{self.key}={self.config_value(value)}"]

    def pretrain_stage(self, value: str, recipe: "Recipe") -> Stage:
        """The pre-training config and overrides of a run of this setting."""
        return recipe.pretrain

    def finetune_overrides(self, value: str, recipe: "Recipe") -> List[str]:
        """What a run of this setting adds to the recipe's fine-tuning overrides."""
        return []


class TopKStudy(Study):
    """K top blocks averaged into the target: 1 to the model's depth."""
    numeric = True

    def default_values(self, recipe):
        return [str(k) for k in range(1, model_depth(recipe) + 1)]

    def problem(self, value, recipe):
        depth = model_depth(recipe)
        if not value.isdigit() or not 1 <= int(value) <= depth:
            return f"K={value} is not a whole number from 1 to the model's depth {depth}"
        return None


class TargetStudy(Study):
    """The point of the teacher's block the target is taken from."""

    def default_values(self, recipe):
        return list(TARGET_FEATURES)

    def problem(self, value, recipe):
        if value not in TARGET_FEATURES:
            return f"{value!r} is not a target point; choose from {', '.join(TARGET_FEATURES)}"
        return None

    def paper_note(self, modality):
        if modality == "speech":
            return self.paper
        return f"{self.paper} -- the paper measured speech only (WER); this plot is {modality}, on another metric"


class ContextStudy(Study):
    """The teacher's attention window: steps, a fraction of the input, or ``full`` (window 0)."""

    def problem(self, value, recipe):
        if value != "full" and not _is_window(value):
            return (f"{value!r} is not a teacher context: a number of steps (>= 1), a fraction of the input "
                    "(0 < f < 1) or full")
        return None

    def config_value(self, value):
        return "0" if value == "full" else value

    def axis_label(self, modality):
        unit = {"speech": "20-ms frames", "vision": "patches", "text": "tokens"}.get(modality, "steps")
        return f"teacher attention window, +- {unit} (full: the whole input)"


class BudgetStudy(Study):
    """The pre-training budget in updates; the plot puts the score against the seconds it took."""
    numeric = True

    def problem(self, value, recipe):
        if not value.isdigit() or int(value) < 1:
            return f"budget {value!r} is not a whole number of updates (>= 1)"
        return None

    def pretrain_updates(self, value, recipe):
        return int(value)

    def setting_overrides(self, value):
        return []  # the update count is the setting, and every run sets it

    def axis_label(self, modality):
        return "pre-training wall clock, seconds (start-up included)"


class MethodStudy(Study):
    """The pre-training method: each of the recipe's ``methods`` (its own config) pre-trained for
    the recipe's seconds, then the same fine-tuning."""

    def default_values(self, recipe):
        return list(recipe.methods) or None

    def problem(self, value, recipe):
        if not recipe.methods:
            return "the recipe names no methods (see configs/ablations/method-speech.yaml)"
        if value not in recipe.methods:
            return f"{value!r} is not a method of the recipe; choose from {', '.join(recipe.methods)}"
        return None

    def setting_overrides(self, value):
        return []  # the method's own config is the setting

    def pretrain_stage(self, value, recipe):
        method = recipe.methods[value]
        return Stage(method.pretrain.config, 0, recipe.pretrain.overrides + method.pretrain.overrides)

    def finetune_overrides(self, value, recipe):
        return recipe.methods[value].finetune_overrides

    def axis_label(self, modality):
        return "pre-training method (the same pre-training seconds each)"


STUDIES = {
    "top-k": TopKStudy("top-k", "model.average_top_k_layers", "K", "K: top blocks averaged into the target",
                       "paper (Base, all modalities): averaging several top blocks beats K=1, markedly for speech "
                       "and text, slightly for images; all blocks is only a little worse than the best K"),
    "target": TargetStudy("target", "model.target_feature", "target", "point of the teacher's block used as target",
                          "paper (speech, reduced setup, WER): attn 100.0, ffn 13.1, ffn-residual 14.8, block 14.5"),
    "context": ContextStudy("context", "model.teacher_attention_window", "window",
                            "teacher context (attention window)",
                            "paper (speech and images): the more context the teacher sees, the better; the whole "
                            "input is best"),
    "budget": BudgetStudy("budget", "optimization.max_update", "updates", "pre-training updates",
                          "paper (data2vec 2.0, Base): MAE's ImageNet accuracy in 16.4x less pre-training time, "
                          "wav2vec 2.0's LibriSpeech WER in 10.6x less, RoBERTa's GLUE score in half the time"),
    "method": MethodStudy("method", "method", "method", "pre-training method",
                          "paper (Table 1, Base, LibriSpeech test-other, 4-gram LM): data2vec beats wav2vec 2.0 and "
                          "HuBERT at every amount of labelled data, 10 minutes to 960 hours"),
}


def parse_values(study: Study, text: Optional[str], recipe: Recipe) -> List[str]:
    """The study's settings from ``--values`` (or the recipe's, or the study's default), checked;
    returned as the values to set. Raises StudyError naming the bad value before anything runs."""
    text = text or recipe.default_values.get(study.name)
    if not text:
        values = study.default_values(recipe)
        if values is None:
            raise StudyError(f"--values is needed for the {study.name} study (e.g. 2,8,32,full)")
        return values
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise StudyError(f"--values {text!r} names no setting")
    if len(set(values)) != len(values):
        raise StudyError(f"--values {text!r} names a setting twice")
    for value in values:
        problem = study.problem(value, recipe)
        if problem:
            raise StudyError(f"--values: {problem}")
    return values


def _is_window(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return (0 < number < 1) or (number >= 1 and number == int(number))
