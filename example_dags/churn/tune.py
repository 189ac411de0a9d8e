"""The churn model's hyperparameter search: Ray Tune over the per-customer features.

``search`` runs as a ray step (a RayJob on Kubernetes, a local Ray on a laptop): each trial fits a
scikit-learn model on a sample of the features and scores it by ROC AUC on a held-out part; the
step's output is one row per trial (its configuration and AUC), which the spec's checks and
metrics read. ``best`` picks the winning row, which the spec publishes for the training pipeline.
Seeds are fixed: the same features give the same trials, configurations and scores.
"""

from __future__ import annotations

import math
import tempfile

import numpy as np
import pandas as pd
from ray import tune
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

SEED = 21
SAMPLE_ROWS = 20_000  # the trials fit on a sample: a search ranks configurations, it trains nothing
KEY = "customer_id"
LABEL = "churned"
# The search space: a model and its own settings (a trial's row leaves the other model's empty)
SPACE = {
    "model": tune.choice(["logistic_regression", "gradient_boosting"]),
    "C": tune.loguniform(1e-3, 10.0),
    "learning_rate": tune.loguniform(0.02, 0.3),
    "max_depth": tune.randint(2, 5),
    "n_estimators": tune.choice([50, 100]),
}
SETTINGS = {"logistic_regression": ("C",), "gradient_boosting": ("learning_rate", "max_depth", "n_estimators")}
PARAMETERS = tuple(name for name in SPACE if name != "model")


def training_set(features: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The features (every numeric column but the customer's id and the label) and the label: the
    frame's ``churned`` where it has one, else derived from the features (:func:`derived_label`).
    Sorted by customer and sampled with a fixed seed, so the rows do not depend on the order
    Spark wrote them in."""
    frame = features.sort_values(KEY, kind="stable") if KEY in features else features
    frame = frame.reset_index(drop=True)
    if len(frame) > SAMPLE_ROWS:
        frame = frame.sample(n=SAMPLE_ROWS, random_state=SEED).sort_index()
    columns = [c for c in frame.select_dtypes("number").columns if c not in (KEY, LABEL)]
    if not columns:
        raise ValueError(f"the features have no numeric column besides `{KEY}`: {', '.join(frame.columns)}")
    X = frame[columns].astype("float64").fillna(0.0)
    y = frame[LABEL].astype("int64") if LABEL in frame else derived_label(X)
    if y.nunique() < 2:
        raise ValueError(f"every sampled customer has the same label ({y.iloc[0]}): nothing to rank models by")
    return X, y


def derived_label(X: pd.DataFrame) -> pd.Series:
    """A stand-in churn label for features without one: customers long without an order (a column
    named ``days...``) and with few orders and little spend (the other columns) churn, with a
    deterministic share of noise so that no model is perfect."""
    scaled = (X - X.mean()) / X.std(ddof=0).replace(0.0, 1.0)
    signs = np.array([1.0 if "days" in column else -1.0 for column in X.columns])
    noise = np.random.default_rng(SEED).normal(0.0, 1.0, len(X))
    score = scaled.to_numpy() @ signs / math.sqrt(len(signs)) + noise
    return pd.Series((score > np.median(score)).astype("int64"), index=X.index, name=LABEL)


def model_for(config: dict):
    if config["model"] == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(C=config["C"], max_iter=500))
    return GradientBoostingClassifier(
        learning_rate=config["learning_rate"],
        max_depth=int(config["max_depth"]),
        n_estimators=int(config["n_estimators"]),
        random_state=SEED,
    )


def trial(config: dict, X: pd.DataFrame, y: pd.Series) -> dict:
    """One trial: fit on three quarters of the sample, the AUC on the rest (the same split in
    every trial)."""
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=SEED, stratify=y)
    model = model_for(config).fit(X_train, y_train)
    return {"auc": float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))}


def search(features: pd.DataFrame, trials: int = 8) -> pd.DataFrame:
    """Ray Tune's search over :data:`SPACE`, ``trials`` configurations; one row per trial, in the
    order they were drawn: ``trial``, ``model``, its settings, ``auc``, ``seconds``."""
    X, y = training_set(features)
    with tempfile.TemporaryDirectory(prefix="churn-tune-") as storage:
        tuner = tune.Tuner(
            tune.with_parameters(trial, X=X, y=y),  # the sample goes to Ray's object store once
            param_space=SPACE,
            tune_config=tune.TuneConfig(
                num_samples=trials,
                search_alg=tune.search.BasicVariantGenerator(random_state=SEED),
                metric="auc",
                mode="max",
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(storage_path=storage, name="churn_search", verbose=0),
        )
        results = tuner.fit()
        frame = results.get_dataframe()
    if results.errors:
        raise RuntimeError(f"{len(results.errors)} of {trials} trials failed; the first: {results.errors[0]}")
    frame = frame.sort_values("trial_id", kind="stable").reset_index(drop=True)
    rows = pd.DataFrame({"trial": range(len(frame)), "model": frame["config/model"]})
    for name in PARAMETERS:
        used = frame["config/model"].map(lambda model, name=name: name in SETTINGS[model])
        rows[name] = frame[f"config/{name}"].where(used).astype("float64")
    rows["auc"] = frame["auc"].astype("float64")
    rows["seconds"] = frame["time_total_s"].astype("float64").round(3)
    rows["rows"] = len(X)
    return rows


def best(search: pd.DataFrame, ds: str) -> pd.DataFrame:
    """The search's best configuration (the highest AUC; the first drawn of equals), as one row
    dated by the run (the published table keeps a row per run)."""
    ranked = search.sort_values(["auc", "trial"], ascending=[False, True], kind="stable")
    return ranked.head(1).drop(columns=["seconds"]).assign(as_of=ds).reset_index(drop=True)
