from .audio_ctc import AudioCtcTask  # noqa: F401
from .audio_pretraining import CheckedAudioPretrainingTask  # noqa: F401
from .images import ImageClassificationTask, ImagePretrainingTask, MaeImagePretrainingTask  # noqa: F401
from .audio_classification import AudioTaggingTask  # noqa: F401
