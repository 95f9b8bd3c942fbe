"""The options every grading shares, defined once: their choices, defaults and help, the dataclass
that carries them (GradeOptions, JobSettings and BatchOptions derive from it), and the arguments
`grader grade` and `grader batch` both take for them."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, get_args

MODES = ("public", "official")
DEVICES = ("auto", "cpu", "cuda")
# Where training data comes from; `auto` is CIFAR-10 where it can be had, else the training tasks are skipped.
DataSource = Literal["cifar10", "synthetic"]
DATA_CHOICES = ("auto", *get_args(DataSource))
# grader.sandbox.levels.LEVELS, strongest first, after auto (the strongest level proven here).
SANDBOX_CHOICES = ("auto", "bwrap", "restricted", "process", "none")
# A training task on a GPU where there is none (GradeOptions.without_gpu spells leave-out leave_out).
WITHOUT_GPU_CHOICES = ("advise", "skip", "leave-out")
# `grader export gradescope`, first the default: CIFAR-10 may be out of Gradescope's reach (auto then
# skips its training tasks where `cifar10` would fail them), and its machines have no GPU (no advice on
# training elsewhere, which a student there cannot follow).
EXPORT_DATA_CHOICES = ("synthetic", "auto")
EXPORT_GPU_TASKS = ("skip", "leave-out")
# `grader batch --similarity`: auto compares the submissions of a batch of more than SIMILARITY_AUTO_ABOVE.
SIMILARITY_CHOICES = ("off", "on", "auto")
# `grader gradebook --format`, and the columns a roster may have (grader.batch.lms.Student).
LMS_FORMATS = ("canvas", "moodle", "csv")
ROSTER_COLUMNS = ("submission", "name", "canvas_id", "sis_user_id", "sis_login_id", "section", "email", "idnumber",
                  "username")
SIMILARITY_AUTO_ABOVE = 5


class _Globs(argparse.Action):
    """--only given twice grades the tasks of both (where argparse's default keeps the last alone)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        earlier = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{earlier},{values}" if earlier else values)


@dataclass(frozen=True, kw_only=True)
class GradingChoices:
    """How a submission is graded, whoever grades it: one `grader grade`, or each of a batch."""

    device: str = "auto"                   # auto | cpu | cuda: where training tasks train
    data: str = "auto"                     # auto | cifar10 | synthetic: the training data's source
    data_dir: Optional[Path] = None        # where CIFAR-10 is looked for first
    only: Optional[str] = None             # glob over task ids
    training: bool = True                  # False: grade only the tasks scored by checks
    sandbox: str = "auto"                  # auto | bwrap | restricted | process | none (grader.sandbox.levels)
    hints: bool = True                     # explain failed checks with the catalogue of common mistakes


_DEFAULTS = GradingChoices()


def grading_choices(options: GradingChoices) -> dict[str, Any]:
    """The shared fields of any of the options derived from GradingChoices, to build another from."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(GradingChoices)}


def add_grading_arguments(parser: argparse.ArgumentParser, *, seed_help: str) -> None:
    """The options `grader grade` and `grader batch` share; `seed_help` says what the seed is there."""
    parser.add_argument("--mode", choices=list(MODES))
    parser.add_argument("--seed", type=int, help=seed_help)
    parser.add_argument("--device", choices=list(DEVICES), default=_DEFAULTS.device)
    parser.add_argument("--data", choices=list(DATA_CHOICES), default=_DEFAULTS.data)
    parser.add_argument("--data-dir", type=Path, default=_DEFAULTS.data_dir)
    parser.add_argument("--only", metavar="TASK_GLOB", default=_DEFAULTS.only, action=_Globs,
                        help="grade only tasks whose id matches (a glob, or several separated by commas; "
                             "--only given again adds its globs)")
    parser.add_argument("--skip-training", action="store_true", help="grade only the tasks scored by checks")
    parser.add_argument("--sandbox", choices=list(SANDBOX_CHOICES), default=_DEFAULTS.sandbox,
                        help="isolation of the submission (auto: the strongest level proven here for official "
                             "grading, which refuses to grade without one; process for public grading)")


def choices_from_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The GradingChoices fields the arguments of add_grading_arguments set."""
    return {"device": args.device, "data": args.data, "data_dir": args.data_dir, "only": args.only,
            "training": not args.skip_training, "sandbox": args.sandbox}
