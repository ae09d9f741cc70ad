"""Models: the article's network, its correction and the multi-task family, in native Keras 3."""

from mtrec_study.models.classic import Popularity
from mtrec_study.models.layers import (
           CGC,
           ExpertGroup,
           FeatureEncoder,
           MixtureOfExperts,
           RatingHead,
           mlp,
)
from mtrec_study.models.zoo import MODELS, build_model, loss_tasks, model_inputs

__all__ = ["CGC", "ExpertGroup", "FeatureEncoder", "MODELS", "MixtureOfExperts", "Popularity", "RatingHead",
           "build_model", "loss_tasks", "mlp", "model_inputs"]
