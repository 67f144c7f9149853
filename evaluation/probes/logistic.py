"""Fast logistic-regression probe (sklearn) on standardised embeddings."""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from evaluation.probes.data import ProbeData, balanced_accuracy


def logistic_probe(
    data: ProbeData, c: float = 1.0, max_iter: int = 1000, seed: int = 0
) -> dict[str, object]:
    """L2 logistic regression (lbfgs) fitted on train, balanced accuracy on the eval split.

    Args:
        data: the labelled splits.
        c: inverse regularisation strength.
        max_iter: lbfgs iterations.
        seed: random state.
    """
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    )
    model.fit(data.x_train, data.y_train)
    split, x, y = data.eval_split()
    return {
        "probe": "logistic",
        "eval_split": split,
        "balanced_accuracy": balanced_accuracy(y, model.predict(x)),
        "C": c,
    }
