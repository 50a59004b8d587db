"""The one runner every training recipe goes through.

A recipe (`keras_har.recipes.*`) is a `Recipe`: its defaults (the reference
protocol's, and a small profile for the built-in synthetic data), its own
flags, its model and its phases. `run_recipe(recipe, argv)` does the rest, the
same way for every recipe: flags (shared with the `keras-har` commands,
`keras_har.flags`), `--resume`, defaults, precision and distribution, the
dataset and its splits, the locked run directory, training, the final
evaluation, the saved preset and the closing lines.

`keras-har train NAME` and `keras-har pretrain` run recipes; so do
`recipes/*.py` and `keras_har.recipes.<name>.main(argv)`.
"""

import argparse
import logging
import pathlib

import keras

from keras_har import flags
from keras_har.training import checkpoints, experiment
from keras_har.utils import interrupts

logger = logging.getLogger("keras_har")


class Run:
    """What a recipe's phases work with: the resolved flags, the run
    directory, its committed state, the datasets and the model."""

    def __init__(self, args, run_dir, state, model, train_set, val_set, test_set=None):
        self.args = args
        self.run_dir = pathlib.Path(run_dir)
        self.state = state
        self.model = model
        self.train_set = train_set
        self.val_set = val_set
        self.test_set = test_set

    @property
    def checkpoint_dir(self):
        return self.run_dir / "checkpoints"

    def loader(self, dataset, training, **overrides):
        """The loader of `dataset` for this run's flags and model."""
        return experiment.make_loader(self.args, dataset, self.model, training=training, **overrides)

    def fit(self, phase, epochs, train_loader, val_loader):
        """One phase of `model.fit`, resumable (`experiment.fit_phase`)."""
        self.state = experiment.fit_phase(self.model, phase, epochs, train_loader, val_loader,
                                          self.run_dir, self.state, self.args.verbose)
        return self.state


class Recipe:
    """A training recipe. Subclasses set the class attributes and define
    `add_arguments`, `build_model`, `train` and `finish`."""

    name = None  # the command's name: `keras-har train NAME`
    run_name = None  # the run directory's prefix: runs/<run_name>-<time>
    title = None  # the plots' title
    description = None  # --help's first paragraph
    reference_defaults = {}  # the reference protocol's values, for a real dataset
    synthetic_defaults = {}  # the built-in synthetic profile's
    option_title = "model and training (unset: the reference protocol's value; the synthetic profile differs)"

    def add_arguments(self, group):
        """The recipe's own flags, into `group`."""

    def resolve_defaults(self, args):
        """Flags left unset take the reference protocol's values on a real
        dataset and the synthetic profile's on the built-in one."""
        return experiment.resolve_defaults(args, self.reference_defaults, self.synthetic_defaults)

    def model_class(self):
        """The model class (its `get_layout_map` shards `--model-parallel`)."""
        return None

    def build_parser(self, prog=None):
        parser = argparse.ArgumentParser(prog=prog, description=self.description)
        flags.add_data_args(parser)
        self.add_arguments(parser.add_argument_group(self.option_title))
        self.add_run_options(parser)
        flags.add_run_args(parser)
        flags.annotate_defaults(parser, self.reference_defaults, self.synthetic_defaults)
        return parser

    def add_run_options(self, parser):
        """Flag groups between the recipe's own and the run's."""

    def prepare(self, args):
        """`Run` with the datasets, the run directory and the model."""
        raise NotImplementedError

    def train(self, run):
        raise NotImplementedError

    def finish(self, run):
        """After training: evaluation, plots, the saved preset; returns the metrics."""
        raise NotImplementedError

    def result_lines(self, run, metrics):
        """The lines printed when the run ends."""
        return [f"Run directory: {run.run_dir}"]

    @property
    def command(self):
        """The command that runs this recipe."""
        return f"keras-har train {self.name}"

    def main(self, argv=None, prog=None):
        """Run the recipe with command-line `argv`; returns its metrics.

        SIGINT / SIGTERM stop the run at the next step boundary with a commit
        (`keras_har.utils.interrupts`): `interrupts.RunInterrupted` is raised,
        carrying the command that resumes it (`experiment.exit_status` prints it)."""
        experiment.setup_logging()
        parser = self.build_parser(prog or self.command)
        try:
            with interrupts.handle_signals():
                args = experiment.load_config_for_resume(parser, argv)
                self.resolve_defaults(args)
                experiment.set_precision_and_distribution(args, self.model_class())
                run = self.prepare(args)
                self.train(run)
                metrics = self.finish(run)
        except interrupts.RunInterrupted as e:
            e.command = prog or self.command
            raise
        print("\n" + "\n".join(self.result_lines(run, metrics)))
        return metrics


class ClassifierRecipe(Recipe):
    """A video classifier trained on a labelled dataset: the held-out
    validation set chooses checkpoints, the test split is evaluated once at
    the end (single view, test-time augmentation, the official protocol)."""

    def add_run_options(self, parser):
        flags.add_selection_args(parser)

    def build_model(self, args, class_names):
        raise NotImplementedError

    def prepare(self, args):
        train_set, val_set, test_set = experiment.prepare_splits(args, getattr(args, "train_fraction", 1.0))
        run_dir = experiment.make_run_dir(args, self.run_name)
        train_set.save_label_map(run_dir / "label_map.json")
        experiment.write_split(run_dir, args, train_set, val_set, test_set)
        logger.info("run directory %s | backend %s | %d train / %d validation (selection on %s) / %d test "
                    "videos, %d classes", run_dir, keras.backend.backend(), len(train_set), len(val_set),
                    args.selection, len(test_set), len(train_set.class_names))
        model = self.build_model(args, train_set.class_names)
        return Run(args, run_dir, experiment.load_state(run_dir), model, train_set, val_set, test_set)

    def validation_loader(self, run):
        return run.loader(run.val_set, training=False, views="single", with_weights=True)

    def finish(self, run):
        metrics = experiment.final_evaluation(run.model, run.args, run.test_set, run.run_dir,
                                              run.args.tta_views, self.title,
                                              num_val_videos=len(run.val_set))
        checkpoints.save_preset(run.model, run.run_dir / "model")
        return metrics

    def result_lines(self, run, metrics):
        args = run.args
        return [
            f"Run directory: {run.run_dir}",
            f"single view top-1 {metrics['single_view']['top1']:.4f} | {args.tta_views}-view TTA top-1 "
            f"{metrics['tta']['top1']:.4f} | official top-1 {metrics['official']['top1']:.4f} on "
            f"{metrics['num_videos']} test videos (checkpoints chosen on {metrics['num_val_videos']} "
            f"{args.selection} videos)",
        ]


def cross_entropy(label_smoothing=0.0):
    """The recipes' loss on one-hot or soft (Mixup) targets: categorical
    cross-entropy on logits, i.e. -sum(targets * log_softmax(logits))."""
    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)
