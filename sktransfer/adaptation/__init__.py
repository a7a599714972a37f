"""Domain adaptation: transfer to a target domain with few or no labels.

Three families, for when the source and target inputs are distributed
differently (covariate shift) but labelled target rows are scarce or absent:

- *feature alignment* terms (:class:`CORAL`, :class:`MMD`,
  :class:`DomainAdversarial`) and *target-prediction* terms
  (:class:`MinimumClassConfusion`, :class:`EntropyMinimization`): knowledge
  terms computed on one batch of unlabelled target inputs per training step,
  passed to ``fit`` as ``unlabeled_data=UnlabeledData(X_target)``;
- *instance* transfer: :func:`importance_weights` estimates how much more
  likely each source row is under the target domain than under its own, the
  density ratio (use the weights as ``sample_weight`` or in ``SourceData``), and
  :class:`TrAdaBoostClassifier` / :class:`TrAdaBoostRegressor` boost over
  source and target rows, down-weighting source rows that mislead;
- model selection without target labels: scorers for ``GridSearchCV`` that
  *estimate* target performance (:func:`importance_weighted_scorer`,
  :func:`deep_embedded_validation_scorer`, :func:`prediction_entropy_scorer`).
"""

from ._instances import importance_weights
from ._scorers import (
    deep_embedded_validation_scorer,
    importance_weighted_scorer,
    prediction_entropy_scorer,
)
from ._terms import (
    CORAL,
    MMD,
    DomainAdversarial,
    EntropyMinimization,
    MinimumClassConfusion,
)
from ._tradaboost import TrAdaBoostClassifier, TrAdaBoostRegressor

__all__ = [
    "CORAL",
    "MMD",
    "DomainAdversarial",
    "EntropyMinimization",
    "MinimumClassConfusion",
    "TrAdaBoostClassifier",
    "TrAdaBoostRegressor",
    "deep_embedded_validation_scorer",
    "importance_weighted_scorer",
    "importance_weights",
    "prediction_entropy_scorer",
]
