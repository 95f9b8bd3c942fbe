"""Solver: trains a classification model with minibatch gradient descent.

Provided; you do not need to change this file.

The model must have:
- model.params: dictionary mapping parameter names to arrays
- model.loss(X, y=None): with y, returns (loss, grads) where grads has the keys of
  model.params; without y, returns class scores of shape (N, C)

Example:

    solver = Solver(model, data, update_rule="sgd_momentum",
                    optim_config={"learning_rate": 1e-3}, lr_decay=0.95,
                    num_epochs=10, batch_size=200, print_every=100)
    solver.train()
    solver.model  # now holds the parameters that reached the best validation accuracy

data is a dictionary with:
- X_train: training images, of shape (N_train, d_1, ..., d_k)
- y_train: training labels, of shape (N_train,)
- X_val, y_val: validation images and labels, shaped the same way
"""

import time

import numpy as np


class Solver:
    """Minibatch training of a model, with accuracy checks on the training and validation data.

    Options (keyword arguments; any other keyword is an error):
    - update_rule: Name of an update rule in optim.py, or a function with the same interface
      (default "sgd")
    - optim_config: Hyper-parameters given to the update rule, e.g. {"learning_rate": 1e-3};
      every parameter gets its own copy, so rules that keep state keep it per parameter
    - lr_decay: The learning rate is multiplied by this after every epoch (default 1.0)
    - batch_size: Minibatch size (default 100)
    - num_epochs: Number of epochs to train for (default 10)
    - num_train_samples: Training images used to check training accuracy (default 1000;
      None uses all of them)
    - num_val_samples: Validation images used to check validation accuracy (default None:
      all of them)
    - print_every: Print the loss every this many iterations when verbose (default 10)
    - verbose: Print progress (default True)

    After train():
    - loss_history: the loss of every iteration
    - train_acc_history, val_acc_history: accuracies at every check (start, epoch ends, end)
    - best_val_acc, best_params: the best validation accuracy seen and the parameters then;
      model.params is set to best_params at the end of train()
    - stopped_early: whether train() stopped at its time limit before the last iteration
    """

    def __init__(self, model, data, **kwargs):
        self.model = model
        self.X_train = data["X_train"]
        self.y_train = data["y_train"]
        self.X_val = data["X_val"]
        self.y_val = data["y_val"]

        self.update_rule = kwargs.pop("update_rule", "sgd")
        self.optim_config = kwargs.pop("optim_config", {})
        self.lr_decay = kwargs.pop("lr_decay", 1.0)
        self.batch_size = kwargs.pop("batch_size", 100)
        self.num_epochs = kwargs.pop("num_epochs", 10)
        self.num_train_samples = kwargs.pop("num_train_samples", 1000)
        self.num_val_samples = kwargs.pop("num_val_samples", None)
        self.print_every = kwargs.pop("print_every", 10)
        self.verbose = kwargs.pop("verbose", True)

        if kwargs:
            unknown = ", ".join(f'"{name}"' for name in kwargs)
            raise ValueError(f"Unrecognized arguments {unknown}")

        if isinstance(self.update_rule, str):
            # optim.py is yours: imported here, when a Solver is built, and not at the top of this
            # file, so that importing solver.py (the grader does, to know the provided Solver before
            # any of your code runs) runs none of your code.
            from . import optim

            if not hasattr(optim, self.update_rule):
                raise ValueError(f'Invalid update_rule "{self.update_rule}"')
            self.update_rule = getattr(optim, self.update_rule)
        elif not callable(self.update_rule):
            raise ValueError("update_rule must be the name of a rule in optim.py or a function")

        self._reset()

    def _reset(self):
        """Book-keeping for a fresh run of train()."""
        self.epoch = 0
        self.best_val_acc = 0
        self.best_params = {}
        self.loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        self.stopped_early = False
        # One config per parameter: stateful rules (momentum, Adam) must not share state.
        self.optim_configs = {name: dict(self.optim_config) for name in self.model.params}

    def _step(self):
        """One gradient update on a random minibatch."""
        num_train = self.X_train.shape[0]
        batch = np.random.choice(num_train, self.batch_size)
        loss, grads = self.model.loss(self.X_train[batch], self.y_train[batch])
        self.loss_history.append(loss)

        for name, w in self.model.params.items():
            next_w, next_config = self.update_rule(w, grads[name], self.optim_configs[name])
            self.model.params[name] = next_w
            self.optim_configs[name] = next_config

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Fraction of the images in X that the model classifies as labelled in y.

        Inputs:
        - X: Images, of shape (N, d_1, ..., d_k)
        - y: Labels, of shape (N,)
        - num_samples: Check a random subset of this many images (None: all of them)
        - batch_size: Images per call of model.loss, to bound memory

        Returns:
        - acc: Scalar in [0, 1]
        """
        N = X.shape[0]
        if num_samples is not None and N > num_samples:
            subset = np.random.choice(N, num_samples)
            X, y = X[subset], y[subset]
            N = num_samples

        predictions = []
        for start in range(0, N, batch_size):
            scores = self.model.loss(X[start : start + batch_size])
            predictions.append(np.argmax(scores, axis=1))
        return float(np.mean(np.concatenate(predictions) == y))

    def _check_and_keep_best(self):
        """Record training and validation accuracy; remember the best parameters."""
        train_acc = self.check_accuracy(self.X_train, self.y_train, self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        if self.verbose:
            print(
                f"(Epoch {self.epoch} / {self.num_epochs}) "
                f"train acc: {train_acc:f}; val_acc: {val_acc:f}"
            )
        if val_acc > self.best_val_acc or not self.best_params:
            self.best_val_acc = val_acc
            self.best_params = {name: w.copy() for name, w in self.model.params.items()}

    def train(self, time_limit=None):
        """Run the optimization, then set model.params to the best parameters seen.

        Inputs:
        - time_limit: Optional limit in seconds on the whole of train(), measured with
          time.perf_counter from its start. Before each iteration the solver estimates, from
          the slowest iteration and the slowest accuracy check so far, whether that iteration
          and a final check still fit; if not, it stops there (stopped_early becomes True),
          runs the final check and keeps the best parameters as usual.
        """
        start = time.perf_counter()
        self._reset()
        num_train = self.X_train.shape[0]
        iterations_per_epoch = max(num_train // self.batch_size, 1)
        num_iterations = self.num_epochs * iterations_per_epoch

        slowest_step = 0.0
        check_start = time.perf_counter()
        self._check_and_keep_best()
        slowest_check = time.perf_counter() - check_start

        for t in range(num_iterations):
            elapsed = time.perf_counter() - start
            if time_limit is not None and elapsed + slowest_step + slowest_check > time_limit:
                self.stopped_early = True
                if self.verbose:
                    print(
                        f"(Time limit {time_limit:g} s reached after {t} / {num_iterations} "
                        f"iterations, {elapsed:.2f} s)"
                    )
                self._check_and_keep_best()
                break

            step_start = time.perf_counter()
            self._step()
            slowest_step = max(slowest_step, time.perf_counter() - step_start)

            if self.verbose and t % self.print_every == 0:
                print(
                    f"(Time {time.perf_counter() - start:.2f} sec; Iteration {t + 1} / "
                    f"{num_iterations}) loss: {self.loss_history[-1]:f}"
                )

            epoch_end = (t + 1) % iterations_per_epoch == 0
            if epoch_end:
                self.epoch += 1
                for config in self.optim_configs.values():
                    if "learning_rate" in config:  # a custom rule may not have one
                        config["learning_rate"] *= self.lr_decay
            if epoch_end or t == num_iterations - 1:
                check_start = time.perf_counter()
                self._check_and_keep_best()
                slowest_check = max(slowest_check, time.perf_counter() - check_start)

        self.model.params = self.best_params
