"""Train a small MLP on scikit-learn's digits and record it with replicator.

Run it recorded:   replicator run -c examples/digits/config.yaml --seeds 3 -- python examples/digits/train.py
or plainly:        python examples/digits/train.py   (opens a run of its own)
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

import replicator

HERE = Path(__file__).parent


def main() -> None:
    cfg = replicator.load_config(HERE / "config.yaml")
    with replicator.start(cfg, experiment="digits") as run:
        x, y = load_digits(return_X_y=True)
        x = x / 16.0
        split_seed = run.seed % 2**31
        x_rest, x_test, y_rest, y_test = train_test_split(
            x, y, test_size=cfg.split.test_fraction, random_state=split_seed, stratify=y
        )
        # validation comes out of the training part: the test set is touched once, at the end
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest,
            y_rest,
            test_size=cfg.split.val_fraction,
            random_state=split_seed,
            stratify=y_rest,
        )
        model = MLPClassifier(
            hidden_layer_sizes=(cfg.model.hidden,),
            alpha=cfg.model.alpha,
            learning_rate_init=cfg.optim.lr,
            batch_size=cfg.optim.batch_size,
            random_state=run.seed % 2**31,
        )
        classes = np.unique(y)
        rng = run.rng  # a numpy Generator seeded from the run's seed
        for epoch in range(cfg.train.epochs):
            order = rng.permutation(len(x_train))
            model.partial_fit(x_train[order], y_train[order], classes=classes)
            run.log({"train_loss": model.loss_, "val_acc": model.score(x_val, y_val)}, step=epoch)
        run.summary["test_acc"] = model.score(x_test, y_test)
        print(f"seed {run.seed}: test accuracy {run.summary['test_acc']:.4f}")


if __name__ == "__main__":
    main()
