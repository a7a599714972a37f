"""Importance weights: how much more likely each source row is under the target."""

from numbers import Integral, Real

import numpy as np
from scipy import optimize, sparse
from scipy.sparse.linalg import eigsh
from scipy.spatial.distance import pdist
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_params,
)

__all__ = [
    "check_domains",
    "classifier_density_ratio",
    "importance_weights",
    "normalise_and_cap",
]

# Probabilities of the domain classifier are kept this far from 0 and 1, so
# that no ratio p / (1 - p) is zero or infinite.
_PROBABILITY_MARGIN = 1e-6
# Pairwise distances for the median heuristic are computed on at most this
# many rows (drawn at random): the median of a sample is a close estimate.
_MEDIAN_SAMPLE = 1000
# KLIEP's bandwidth candidates, as multiples of the median distance.
_KLIEP_BANDWIDTH_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
_KLIEP_FOLDS = 5
_KMM_MAX_ITER = 2000
_KMM_TOL = 1e-6
_KMM_RIDGE = 1.0


@validate_params(
    {
        # Sparse matrices pass here to be refused with how to convert them.
        "X_source": ["array-like", "sparse matrix"],
        "X_target": ["array-like", "sparse matrix"],
        "method": [StrOptions({"classifier", "kmm", "kliep"})],
        "estimator": [HasMethods(["fit", "predict_proba"]), None],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "bandwidth": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "max_weight": [Interval(Real, 1, None, closed="left")],
        "n_centers": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def importance_weights(
    X_source,
    X_target,
    *,
    method="classifier",
    estimator=None,
    cv=5,
    bandwidth="auto",
    max_weight=1000.0,
    n_centers=100,
    random_state=None,
):
    r"""Density-ratio weights :math:`w(x) = p_T(x) / p_S(x)` of the source rows.

    Under covariate shift (the inputs' distribution changes between domains,
    the labelling does not), a loss on source rows weighted by :math:`w`
    estimates the loss on the target domain: use the weights as
    ``sample_weight``, in ``SourceData(X, y, sample_weight=w)``, or to score
    models (:func:`importance_weighted_scorer`). The weights are finite,
    non-negative and normalised to mean 1 over the source rows.

    Parameters
    ----------
    X_source : array-like of shape (n_source_samples, n_features)
        The source rows to weigh (labelled, typically).
    X_target : array-like of shape (n_target_samples, n_features)
        Target-domain rows (no labels needed), with the same features.
    method : {"classifier", "kmm", "kliep"}, default="classifier"
        - ``"classifier"``: a probabilistic classifier tells target from
          source rows; :math:`w \propto p(\text{target} \mid x) / p(\text{source}
          \mid x)`, with probabilities cross-fitted (each source row scored
          by a classifier that did not see it) over ``cv`` folds. Scales to
          large data; as flexible as ``estimator``.
        - ``"kmm"``: kernel mean matching (Huang et al.): the weights
          :math:`\beta` that make the mean of the source rows in a Gaussian
          kernel's feature space closest to the target rows',
          :math:`\min_\beta \tfrac12\beta^\top (K + I)\beta - \kappa^\top\beta`
          subject to :math:`0 \le \beta_i \le B` (``max_weight``) and
          :math:`|\sum_i\beta_i - n_S| \le n_S\,\epsilon` with
          :math:`\epsilon = (\sqrt{n_S} - 1)/\sqrt{n_S}`, the paper's
          choice. The ridge :math:`\tfrac12\lVert\beta\rVert^2` (which
          the paper has not) keeps the weights from piling onto a few rows, as
          the plain objective's minimisers do with a smooth kernel; its
          effect fades as :math:`n_S` grows. Solved by accelerated projected
          gradient (exact projection on the constraints). Memory and time
          grow as :math:`n_S^2`: a few thousand source rows at most.
        - ``"kliep"``: KLIEP (Sugiyama et al.): :math:`w(x) = \sum_l
          \alpha_l\,k(x, c_l)` with Gaussian kernels centred on
          ``n_centers`` target rows, :math:`\alpha \ge 0` maximising the
          target rows' log-likelihood :math:`\sum_j \log w(x^T_j)` subject
          to the weights' mean over the source rows being 1.
    estimator : classifier with predict_proba, default=None
        The domain classifier of ``method="classifier"`` (cloned). None: a
        ``StandardScaler`` then ``LogisticRegression``, whose log-ratio is
        linear in the features: exact for a shift of the mean under equal
        covariances; pass a more flexible classifier (e.g. gradient boosting)
        for other shifts.
    cv : int, default=5
        Folds over which the domain classifier's probabilities are
        cross-fitted (fewer when a domain has fewer rows).
    bandwidth : float or "auto", default="auto"
        Width :math:`\sigma` of the Gaussian kernel
        :math:`k(x, x') = \exp(-\lVert x - x'\rVert^2 / (2\sigma^2))` of
        ``"kmm"`` and ``"kliep"``. ``"auto"``: the median distance between
        rows (median heuristic) for KMM; for KLIEP, the best of 0.25 to 4
        times the median distance by likelihood cross-validation on the
        target rows. Kernels measure distance in the raw features: scale them
        comparably first (e.g. ``StandardScaler`` fitted on both domains).
    max_weight : float >= 1, default=1000.0
        The largest weight a source row may get (weights have mean 1), so
        that a few source rows cannot carry the whole loss: larger ones are
        lowered to a common cap. It is also KMM's bound :math:`B`.
    n_centers : int, default=100
        Number of target rows used as KLIEP's kernel centres (all of them
        when there are fewer).
    random_state : int, RandomState instance or None, default=None
        Seeds the cross-fitting folds, KLIEP's choice of centres and folds,
        and the rows the median distance is computed on (over 1000 rows).

    Returns
    -------
    weights : ndarray of shape (n_source_samples,)
        Non-negative, finite, with mean 1.

    See Also
    --------
    importance_weighted_scorer : score models on source rows weighted so.
    TrAdaBoostClassifier : down-weighs source rows by their labels too.

    References
    ----------
    Shimodaira, "Improving predictive inference under covariate shift by
    weighting the log-likelihood function", J. Stat. Plan. Inference 2000;
    Huang et al., "Correcting Sample Selection Bias by Unlabeled Data",
    NeurIPS 2006; Sugiyama et al., "Direct Importance Estimation with Model
    Selection and Its Application to Covariate Shift Adaptation", NeurIPS
    2007; Bickel, Brückner & Scheffer, "Discriminative Learning Under
    Covariate Shift", JMLR 2009.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import importance_weights
    >>> rng = np.random.default_rng(0)
    >>> X_source = rng.normal(0.0, 1.0, size=(300, 1))
    >>> X_target = rng.normal(1.0, 1.0, size=(300, 1))
    >>> weights = importance_weights(X_source, X_target, random_state=0)
    >>> round(float(weights.mean()), 6)
    1.0
    >>> # Source rows on the target's side weigh more.
    >>> x = X_source[:, 0]
    >>> bool(weights[x > 1].mean() > weights[x < -1].mean())
    True
    """
    X_source, X_target = check_domains(X_source, X_target)
    if method == "classifier":
        weights = classifier_density_ratio(
            X_source, X_target, estimator=estimator, cv=cv, random_state=random_state
        )
    elif method == "kmm":
        weights = _kernel_mean_matching(
            X_source, X_target, bandwidth, max_weight, check_random_state(random_state)
        )
    else:
        weights = _kliep(
            X_source,
            X_target,
            bandwidth,
            n_centers,
            check_random_state(random_state),
        )
    return normalise_and_cap(weights, max_weight)


def check_domains(X_source, X_target):
    """Both domains as finite 2-D float arrays with the same features."""
    checked = []
    for X, name in ((X_source, "X_source"), (X_target, "X_target")):
        if not sparse.issparse(X) and np.ndim(X) != 2:
            raise ValueError(
                f"{name} must be 2-D (n_samples, n_features); got an array of "
                f"{np.ndim(X)} dimension(s). Importance weights compare rows in "
                "a feature space: flatten n-D inputs, or embed them first (e.g. "
                "with sktransfer.PretrainedFeatureTransformer)."
            )
        checked.append(
            check_array(
                X,
                dtype=np.float64,
                ensure_all_finite=True,
                ensure_min_samples=2,
                input_name=name,
            )
        )
    X_source, X_target = checked
    if X_source.shape[1] != X_target.shape[1]:
        raise ValueError(
            f"X_source has {X_source.shape[1]} features but X_target has "
            f"{X_target.shape[1]}; both domains must be described by the same "
            "features."
        )
    return X_source, X_target


def normalise_and_cap(weights, max_weight):
    """Weights of mean 1, none above ``max_weight`` (at least 1).

    The cap is the threshold ``t`` that gives ``min(w, t) / mean(min(w, t))``
    its largest value ``max_weight``: that ratio grows with ``t``, so ``t``
    is found by root finding.
    """
    weights = np.clip(np.nan_to_num(weights, nan=0.0, posinf=0.0), 0, None)
    if weights.sum() <= 0:
        # No source row is plausible under the target (e.g. KLIEP's kernels
        # underflowed for every one): no information to weigh by.
        return np.ones_like(weights)
    weights = weights / weights.mean()
    if weights.max() <= max_weight:
        return weights

    def excess(threshold):
        return threshold / np.minimum(weights, threshold).mean() - max_weight

    smallest = weights[weights > 0].min()
    if excess(smallest) >= 0:
        # Too many zero weights for any cap: the positive ones weigh alike.
        capped = (weights > 0).astype(float)
    else:
        capped = np.minimum(weights, optimize.brentq(excess, smallest, weights.max()))
    return capped / capped.mean()


def classifier_density_ratio(
    X_source, X_target, *, estimator, cv, random_state, of_target_rows=False
):
    """Unnormalised ratios ``(n_S / n_T) · p / (1 − p)`` of a domain classifier.

    ``p`` is the cross-fitted probability that a source row is a target row;
    the prior factor makes the ratios' mean over the source rows close to 1
    when the classifier is calibrated (which deep embedded validation's
    control variate relies on). Inputs must be validated arrays.
    ``of_target_rows=True`` also returns the (cross-fitted) ratios of the
    target rows: what a row of the target domain scores.
    """
    if estimator is None:
        estimator = make_pipeline(StandardScaler(), LogisticRegression())
    n_source, n_target = X_source.shape[0], X_target.shape[0]
    X = np.concatenate([X_source, X_target])
    domain = np.r_[np.zeros(n_source, dtype=int), np.ones(n_target, dtype=int)]
    folds = StratifiedKFold(
        n_splits=min(cv, n_source, n_target),
        shuffle=True,
        random_state=check_random_state(random_state).randint(np.iinfo(np.int32).max),
    )
    probability = cross_val_predict(
        clone(estimator), X, domain, cv=folds, method="predict_proba"
    )[:, 1]
    probability = np.clip(probability, _PROBABILITY_MARGIN, 1 - _PROBABILITY_MARGIN)
    ratio = (n_source / n_target) * probability / (1 - probability)
    if of_target_rows:
        return ratio[:n_source], ratio[n_source:]
    return ratio[:n_source]


def _median_distance(X, random_state=None):
    rng = check_random_state(random_state)
    if X.shape[0] > _MEDIAN_SAMPLE:
        X = X[rng.choice(X.shape[0], _MEDIAN_SAMPLE, replace=False)]
    distances = pdist(X)
    median = np.median(distances)
    if median > 0:
        return float(median)
    # Mostly repeated rows: any positive distance sets the scale.
    positive = distances[distances > 0]
    return float(positive.mean()) if positive.size else 1.0


def _gaussian_kernel(X, Y, bandwidth):
    return rbf_kernel(X, Y, gamma=1.0 / (2.0 * bandwidth**2))


def _kernel_mean_matching(X_source, X_target, bandwidth, max_weight, rng):
    if bandwidth == "auto":
        bandwidth = _median_distance(np.concatenate([X_source, X_target]), rng)
    n_source, n_target = X_source.shape[0], X_target.shape[0]
    # The ridge makes the problem well posed: a smooth kernel's matrix has
    # many tiny eigenvalues, along which the plain objective is flat, and its
    # minimisers put spikes of weight on a few rows.
    kernel = _gaussian_kernel(X_source, X_source, bandwidth) + _KMM_RIDGE * np.eye(
        n_source
    )
    kappa = (n_source / n_target) * _gaussian_kernel(X_source, X_target, bandwidth).sum(
        axis=1
    )
    epsilon = (np.sqrt(n_source) - 1) / np.sqrt(n_source)
    total_low, total_high = n_source * (1 - epsilon), n_source * (1 + epsilon)

    def project(values):
        return _project_box_and_total(values, max_weight, total_low, total_high)

    # Step 1/L with L the largest eigenvalue of K, the gradient's Lipschitz
    # constant; a start vector of ones makes the Lanczos run deterministic.
    lipschitz = float(
        eigsh(kernel, k=1, which="LA", v0=np.ones(n_source), return_eigenvectors=False)[
            0
        ]
    )
    step = 1.0 / max(lipschitz, np.finfo(float).eps)
    beta = project(np.ones(n_source))
    momentum_point, momentum = beta, 1.0
    # FISTA: accelerated projected gradient on ½βᵀKβ − κᵀβ.
    for _ in range(_KMM_MAX_ITER):
        gradient = kernel @ momentum_point - kappa
        beta_next = project(momentum_point - step * gradient)
        momentum_next = (1 + np.sqrt(1 + 4 * momentum**2)) / 2
        momentum_point = beta_next + ((momentum - 1) / momentum_next) * (
            beta_next - beta
        )
        converged = np.abs(beta_next - beta).max() <= _KMM_TOL * max(
            1.0, np.abs(beta).max()
        )
        beta, momentum = beta_next, momentum_next
        if converged:
            break
    return beta


def _project_box_and_total(values, upper, total_low, total_high):
    """Euclidean projection on ``{0 ≤ β ≤ upper, total_low ≤ Σβ ≤ total_high}``.

    The projection is ``clip(values − τ, 0, upper)`` for the shift ``τ`` that
    brings the total within bounds (0 when it already is); the total
    decreases with ``τ``, so ``τ`` is found by root finding.
    """
    clipped = np.clip(values, 0, upper)
    total = clipped.sum()
    if total_low <= total <= total_high:
        return clipped
    wanted = total_low if total < total_low else total_high
    wanted = min(wanted, upper * values.shape[0])

    def excess(shift):
        return np.clip(values - shift, 0, upper).sum() - wanted

    shift = optimize.brentq(excess, values.min() - upper, values.max())
    return np.clip(values - shift, 0, upper)


def _kliep(X_source, X_target, bandwidth, n_centers, rng):
    if bandwidth == "auto":
        median = _median_distance(np.concatenate([X_source, X_target]), rng)
        candidates = [median * factor for factor in _KLIEP_BANDWIDTH_FACTORS]
        bandwidth = max(
            candidates,
            key=lambda width: _kliep_likelihood_cv(
                X_source, X_target, width, n_centers, rng
            ),
        )
    centres = _choose_centres(X_target, n_centers, rng)
    alpha = _kliep_fit(X_source, X_target, centres, bandwidth)
    return _gaussian_kernel(X_source, centres, bandwidth) @ alpha


def _choose_centres(X_target, n_centers, rng):
    if X_target.shape[0] <= n_centers:
        return X_target
    return X_target[rng.choice(X_target.shape[0], n_centers, replace=False)]


def _kliep_fit(X_source, X_target, centres, bandwidth):
    r"""KLIEP's coefficients :math:`\alpha \ge 0`.

    Maximising :math:`\frac1{n_T}\sum_j \log (A\alpha)_j` subject to
    :math:`b^\top\alpha = 1` (:math:`A` the kernel between target rows and
    centres, :math:`b` its mean over the source rows) has the same solution
    as minimising :math:`-\frac1{n_T}\sum_j \log (A\alpha)_j + b^\top\alpha`
    over :math:`\alpha \ge 0`: scaling any :math:`\alpha` by :math:`s` adds
    :math:`-\log s + s\,b^\top\alpha` to the latter, least at
    :math:`b^\top\alpha = 1/s`. Bounds alone remain, for L-BFGS-B.
    """
    target_kernel = _gaussian_kernel(X_target, centres, bandwidth)
    source_mean = _gaussian_kernel(X_source, centres, bandwidth).mean(axis=0)
    tiny = np.finfo(float).tiny
    n_target = X_target.shape[0]

    def objective(alpha):
        density = np.maximum(target_kernel @ alpha, tiny)
        value = -np.log(density).mean() + source_mean @ alpha
        gradient = -(target_kernel.T @ (1.0 / density)) / n_target + source_mean
        return value, gradient

    start = np.full(centres.shape[0], 1.0 / max(source_mean.sum(), tiny))
    result = optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0, None)] * centres.shape[0],
    )
    return result.x


def _kliep_likelihood_cv(X_source, X_target, bandwidth, n_centers, rng):
    """Mean log-ratio of held-out target rows: KLIEP's likelihood CV score."""
    n_folds = min(_KLIEP_FOLDS, X_target.shape[0])
    folds = KFold(n_folds, shuffle=True, random_state=rng.randint(2**31 - 1))
    tiny = np.finfo(float).tiny
    scores = []
    for train, held_out in folds.split(X_target):
        centres = _choose_centres(X_target[train], n_centers, rng)
        alpha = _kliep_fit(X_source, X_target[train], centres, bandwidth)
        ratio = _gaussian_kernel(X_target[held_out], centres, bandwidth) @ alpha
        scores.append(np.log(np.maximum(ratio, tiny)).mean())
    return np.mean(scores)
