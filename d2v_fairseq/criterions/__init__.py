from .data2vec_regression import Data2VecRegressionCriterion, RepresentationCollapse  # noqa: F401
