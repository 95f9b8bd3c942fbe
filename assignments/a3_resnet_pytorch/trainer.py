"""Trainer: trains a torch.nn classification network with a torch.optim optimizer, on tensors.

Provided; you do not need to change this file. It plays the part the Solver plays in the earlier
assignments, for networks whose gradients come from autograd.

Example:

    network = models.get_resnet("resnet32").to("cuda")
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
    trainer = Trainer(network, optimizer, data, batch_size=128, num_epochs=10,
                      schedule="one_cycle", device="cuda")
    trainer.train(time_limit=60)
    trainer.model.loss(X)  # class scores of shape (N, C), with the best parameters seen

data is a dictionary of tensors, already on the device the network trains on:
- X_train: training images, of shape (N_train, C, H, W)
- y_train: training labels, an integer tensor of shape (N_train,)
- X_val, y_val: validation images and labels, shaped the same way

Images are scaled to unit standard deviation per channel (the statistics of X_train) before
they reach the network, in training and in model.loss alike; the images the grader hands over
already have the mean image subtracted.
"""

import contextlib
import time

import torch
import torch.nn.functional as F

SCHEDULES = (None, "one_cycle")


class Classifier:
    """What the grader and check_accuracy ask for class scores: a network and its input scaling.

    loss(X) returns scores of shape (N, C) computed in evaluation mode without gradients (batch
    normalization uses its running averages); loss(X, y) the mean softmax loss of those scores.
    """

    def __init__(self, network, input_scale, channels_last=False, autocast_dtype=None):
        self.network = network
        self.input_scale = input_scale
        self.channels_last = channels_last
        self.autocast_dtype = autocast_dtype

    def prepare(self, X):
        """X scaled, on the network's device and in its dtype (and layout)."""
        parameter = next(self.network.parameters())
        X = X.to(device=parameter.device, dtype=parameter.dtype) * self.input_scale
        if self.channels_last:
            X = X.contiguous(memory_format=torch.channels_last)
        return X

    def scores(self, X):
        """Scores in the network's current mode, with autograd as the caller has it."""
        X = self.prepare(X)
        if self.autocast_dtype is None:
            autocast = contextlib.nullcontext()
        else:
            autocast = torch.autocast(X.device.type, dtype=self.autocast_dtype)
        with autocast:
            scores = self.network(X)
        return scores.float()

    def loss(self, X, y=None):
        was_training = self.network.training
        self.network.eval()
        try:
            with torch.no_grad():
                scores = self.scores(X)
        finally:
            self.network.train(was_training)
        if y is None:
            return scores
        return F.cross_entropy(scores, y.to(scores.device))


class Trainer:
    """Minibatch training of a network with an optimizer, with accuracy checks on the training and
    validation data.

    Options (keyword arguments; any other keyword is an error):
    - batch_size: Minibatch size (default 128); each epoch visits the training images in a new
      random order, leaving out the last incomplete batch
    - num_epochs: Number of epochs to train for (default 10)
    - schedule: None (default) keeps the optimizer's learning rate, or steps `scheduler` when
      one is given; "one_cycle" warms the learning rate up linearly from a tenth of the
      optimizer's to all of it over the first warmup_fraction of training, then lowers it
      linearly to zero at the end. The end is whichever comes first: the last iteration, or
      the time limit given to train(), so a run cut short by the limit still anneals.
    - warmup_fraction: Fraction of training spent warming up under "one_cycle" (default 0.2)
    - scheduler: A torch.optim.lr_scheduler object to step after every iteration (only with
      schedule=None; default None)
    - label_smoothing: Passed to F.cross_entropy (default 0.0)
    - clip_grad_norm: Scale the gradients down to this total norm when they exceed it, before
      each update (default None: never); a guard against the rare step that would blow up
    - random_crop: Pad each training image by this many zero pixels on every side and crop
      it back at a random offset, a fresh one per image and iteration (default 0: off)
    - horizontal_flip: Mirror each training image left-right with probability 1/2 (default
      False; only for data whose classes look the same mirrored)
    - channels_last: Keep the network and its inputs in channels-last memory layout, which
      tensor cores prefer (default False). On a GPU the Trainer also turns on
      torch.backends.cudnn.benchmark, since every minibatch has the same shape
    - autocast_dtype: Run forward passes under torch.autocast with this dtype, e.g.
      torch.bfloat16 or torch.float16 (the latter with gradient scaling); default None: off
    - num_train_samples: Training images used to check training accuracy (default 1000;
      None uses all of them)
    - num_val_samples: Validation images used to check validation accuracy (default None:
      all of them)
    - print_every: Print the loss every this many iterations when verbose (default 100)
    - verbose: Print progress (default True)
    - device: Device the minibatches are moved to (default None: they stay on the device of
      the data)

    After train():
    - loss_history: the loss of every iteration, as Python floats
    - train_acc_history, val_acc_history: accuracies at every check (start, epoch ends, end)
    - check_seconds: seconds since the start of train() at every check
    - best_val_acc: the best validation accuracy seen (the network then holds those parameters)
    - stopped_early: whether train() stopped at its time limit before the last iteration
    - model: the Classifier whose loss(X) gives the network's scores
    """

    def __init__(self, network, optimizer, data, **kwargs):
        self.network = network
        self.optimizer = optimizer
        self.X_train = data["X_train"]
        self.y_train = data["y_train"]
        self.X_val = data["X_val"]
        self.y_val = data["y_val"]

        self.batch_size = kwargs.pop("batch_size", 128)
        self.num_epochs = kwargs.pop("num_epochs", 10)
        self.schedule = kwargs.pop("schedule", None)
        self.warmup_fraction = kwargs.pop("warmup_fraction", 0.2)
        self.scheduler = kwargs.pop("scheduler", None)
        self.label_smoothing = kwargs.pop("label_smoothing", 0.0)
        self.clip_grad_norm = kwargs.pop("clip_grad_norm", None)
        self.random_crop = kwargs.pop("random_crop", 0)
        self.horizontal_flip = kwargs.pop("horizontal_flip", False)
        self.channels_last = kwargs.pop("channels_last", False)
        self.autocast_dtype = kwargs.pop("autocast_dtype", None)
        self.num_train_samples = kwargs.pop("num_train_samples", 1000)
        self.num_val_samples = kwargs.pop("num_val_samples", None)
        self.print_every = kwargs.pop("print_every", 100)
        self.verbose = kwargs.pop("verbose", True)
        self.device = kwargs.pop("device", None)

        if kwargs:
            unknown = ", ".join(f'"{name}"' for name in kwargs)
            raise ValueError(f"Unrecognized arguments {unknown}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f'Invalid schedule "{self.schedule}"; choose None or "one_cycle"')
        if self.schedule is not None and self.scheduler is not None:
            raise ValueError('Give either schedule="one_cycle" or a scheduler, not both')
        if self.autocast_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError("autocast_dtype must be None, torch.bfloat16 or torch.float16")

        if self.channels_last:
            self.network.to(memory_format=torch.channels_last)
        if self._device_type() == "cuda":
            torch.backends.cudnn.benchmark = True  # the shapes repeat: let cuDNN pick its fastest kernels
        # One scale per channel, from the training images.
        std = self.X_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
        input_scale = 1.0 / std
        self.model = Classifier(self.network, input_scale, self.channels_last, self.autocast_dtype)
        device_type = self._device_type()
        self.grad_scaler = torch.amp.GradScaler(device_type, enabled=self.autocast_dtype == torch.float16)
        # Each parameter group's own learning rate is what "one_cycle" scales.
        self.base_learning_rates = [group["lr"] for group in self.optimizer.param_groups]
        self._reset()

    def _device_type(self):
        return next(self.network.parameters()).device.type

    def _reset(self):
        """Book-keeping for a fresh run of train()."""
        self.epoch = 0
        self.best_val_acc = 0.0
        self.best_state = None
        self.loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        self.check_seconds = []
        self.stopped_early = False
        self._started = time.perf_counter()

    def _to_device(self, tensor):
        return tensor if self.device is None else tensor.to(self.device)

    def _augment(self, X):
        """Random crops of zero-padded images, and random mirrors, drawn per image."""
        N, _, H, W = X.shape
        if self.random_crop:
            pad = self.random_crop
            padded = F.pad(X, (pad, pad, pad, pad))
            dy = torch.randint(0, 2 * pad + 1, (N, 1, 1), device=X.device)
            dx = torch.randint(0, 2 * pad + 1, (N, 1, 1), device=X.device)
            rows = torch.arange(H, device=X.device).view(1, H, 1) + dy    # (N, H, 1)
            cols = torch.arange(W, device=X.device).view(1, 1, W) + dx    # (N, 1, W)
            samples = torch.arange(N, device=X.device).view(N, 1, 1)
            X = padded.permute(0, 2, 3, 1)[samples, rows, cols].permute(0, 3, 1, 2)  # (N, C, H, W)
        if self.horizontal_flip:
            mirrored = torch.rand(N, device=X.device) < 0.5
            X = torch.where(mirrored.view(N, 1, 1, 1), X.flip(3), X)
        return X

    def _set_learning_rate(self, progress):
        """The "one_cycle" learning rate at `progress` (0 at the start, 1 at the end)."""
        warmup = self.warmup_fraction
        if progress < warmup:
            factor = 0.1 + 0.9 * progress / warmup
        else:
            factor = max(0.0, 1.0 - (progress - warmup) / max(1.0 - warmup, 1e-8))
        for group, base in zip(self.optimizer.param_groups, self.base_learning_rates):
            group["lr"] = base * factor

    def _step(self, batch):
        """One gradient update on the minibatch of training images at indices `batch`."""
        X_batch = self._augment(self._to_device(self.X_train[batch]))
        y_batch = self._to_device(self.y_train[batch.to(self.y_train.device)])
        self.network.train()
        scores = self.model.scores(X_batch)
        loss = F.cross_entropy(scores, y_batch.to(scores.device), label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.grad_scaler.scale(loss).backward()
        if self.clip_grad_norm is not None:
            self.grad_scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.clip_grad_norm)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        self.loss_history.append(loss.item())  # waits for the device, so the timing covers its work

    def check_accuracy(self, X, y, num_samples=None, batch_size=500):
        """Fraction of the images in X that the network classifies as labelled in y.

        Inputs:
        - X: Images, a tensor of shape (N, C, H, W)
        - y: Labels, an integer tensor of shape (N,)
        - num_samples: Check a random subset of this many images (None: all of them)
        - batch_size: Images per call of model.loss, to bound memory

        Returns:
        - acc: Python float in [0, 1]
        """
        N = X.shape[0]
        if num_samples is not None and N > num_samples:
            subset = torch.randperm(N, device=X.device)[:num_samples]
            X, y = X[subset], y[subset.to(y.device)]
            N = num_samples
        correct = 0
        for start in range(0, N, batch_size):
            scores = self.model.loss(self._to_device(X[start : start + batch_size]))
            labels = y[start : start + batch_size].to(scores.device)
            correct += int((scores.argmax(dim=1) == labels).sum())
        return correct / max(N, 1)

    def _check_and_keep_best(self):
        """Record training and validation accuracy; remember the best parameters."""
        train_acc = self.check_accuracy(self.X_train, self.y_train, self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        self.check_seconds.append(time.perf_counter() - self._started)
        if self.verbose:
            print(f"(Epoch {self.epoch} / {self.num_epochs}) train acc: {train_acc:f}; val_acc: {val_acc:f}")
        if val_acc > self.best_val_acc or self.best_state is None:
            self.best_val_acc = val_acc
            self.best_state = {name: value.detach().clone() for name, value in self.network.state_dict().items()}

    def train(self, time_limit=None, return_best_params=True):
        """Run the optimization.

        Inputs:
        - time_limit: Optional limit in seconds on the whole of train(), measured with
          time.perf_counter from its start. Before each iteration the trainer estimates, from
          the slowest iteration (the first, which warms the device up, aside) and the slowest
          accuracy check so far, whether that iteration and a final check still fit; if not, it
          stops there (stopped_early becomes True) and runs the final check.
        - return_best_params: At the end, load the parameters that reached the best validation
          accuracy into the network (default True); otherwise keep the last ones.
        """
        self._reset()
        start = self._started
        num_train = self.X_train.shape[0]
        iterations_per_epoch = max(num_train // self.batch_size, 1)
        num_iterations = iterations_for(num_train, self.batch_size, self.num_epochs)

        check_start = time.perf_counter()
        self._check_and_keep_best()
        slowest_check = time.perf_counter() - check_start
        slowest_step = 0.0
        order = None

        for t in range(num_iterations):
            elapsed = time.perf_counter() - start
            if time_limit is not None and elapsed + slowest_step + slowest_check > time_limit:
                self.stopped_early = True
                if self.verbose:
                    print(f"(Time limit {time_limit:g} s reached after {t} / {num_iterations} iterations, "
                          f"{elapsed:.2f} s)")
                self._check_and_keep_best()
                break
            if self.schedule == "one_cycle":
                progress = t / num_iterations
                if time_limit is not None:
                    progress = max(progress, elapsed / max(time_limit - slowest_check, 1e-8))
                self._set_learning_rate(min(progress, 1.0))

            position = t % iterations_per_epoch
            if position == 0:
                order = torch.randperm(num_train, device=self.X_train.device)
            batch = order[position * self.batch_size : (position + 1) * self.batch_size]
            step_start = time.perf_counter()
            self._step(batch)
            if t > 0:
                slowest_step = max(slowest_step, time.perf_counter() - step_start)

            if self.verbose and t % self.print_every == 0:
                print(f"(Time {time.perf_counter() - start:.2f} sec; Iteration {t + 1} / {num_iterations}) "
                      f"loss: {self.loss_history[-1]:f}")

            epoch_end = (t + 1) % iterations_per_epoch == 0
            if epoch_end:
                self.epoch += 1
            if epoch_end or t == num_iterations - 1:
                check_start = time.perf_counter()
                self._check_and_keep_best()
                slowest_check = max(slowest_check, time.perf_counter() - check_start)

        if return_best_params and self.best_state is not None:
            self.network.load_state_dict(self.best_state)


def iterations_for(num_train, batch_size, num_epochs):
    """Iterations a Trainer runs without a time limit (e.g. the total steps of a scheduler)."""
    return num_epochs * max(num_train // batch_size, 1)
