from .data2vec_audio import Data2VecAudioConfig, Data2VecAudioModel  # noqa: F401
from .data2vec2_audio import Data2Vec2AudioConfig, Data2Vec2AudioModel  # noqa: F401
from .data2vec_text import Data2VecTextConfig, Data2VecTextModel  # noqa: F401
from .data2vec_vision import Data2VecImageClassificationModel, Data2VecVisionConfig, Data2VecVisionModel  # noqa: F401
from .audio_classification import Data2VecAudioClassificationModel  # noqa: F401
from .data2vec_multi import Data2VecMultiModel  # noqa: F401
from .multi_finetuning import Data2VecTextClassificationModel, MaeImageClassificationModel  # noqa: F401
from .hubert_ctc import HubertCtcModel  # noqa: F401
