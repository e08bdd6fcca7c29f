from .data2vec_regression import Data2VecRegressionCriterion, RepresentationCollapse  # noqa: F401
from .image_classification import ImageClassificationCriterion  # noqa: F401
from .multilabel import MultiLabelCriterion  # noqa: F401
