"""PathoROB's APD probe: logistic regression with C chosen on a validation set by balanced accuracy."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

# PathoROB `train_logistic_regression`: C = 10 ** linspace(-8, 4, 15).
PROBE_C_GRID = 10 ** np.linspace(-8, 4, 15)


def probe_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    tests: list[tuple[np.ndarray, np.ndarray]],
) -> list[float]:
    """Balanced accuracy on each test set of the probe PathoROB trains for one split.

    As ``pathorob/apd/train_model.py`` (`fit_and_evaluate`, `train_logistic_regression`):
    one ``LogisticRegression(C=c, random_state=0)`` per C of `PROBE_C_GRID`, scored by
    balanced accuracy on the validation rows; the first C with the best score (Python's
    ``max``) is refitted as ``LogisticRegression(C=best)`` on the training rows. sklearn's
    lbfgs convergence warnings at tiny C are expected and silenced here only.
    Every test set is scored by the same fitted probe (PathoROB: in-domain and out-of-domain).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        best_c, best = None, -np.inf
        for c in PROBE_C_GRID:
            model = LogisticRegression(C=c, random_state=0).fit(train_x, train_y)
            score = balanced_accuracy_score(val_y, model.predict(val_x))
            if score > best:
                best_c, best = c, score
        final = LogisticRegression(C=best_c).fit(train_x, train_y)
        # A test set holding fewer classes than the probe predicts (an out-of-domain centre
        # with one class) is scored over its own classes, as sklearn does, without the warning.
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true", UserWarning)
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        return [float(balanced_accuracy_score(y, final.predict(x))) for x, y in tests]
