from .data2vec_audio import Data2VecAudioConfig, Data2VecAudioModel  # noqa: F401
