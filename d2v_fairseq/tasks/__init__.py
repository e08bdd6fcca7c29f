from .audio_pretraining import CheckedAudioPretrainingTask  # noqa: F401
