"""Run and trainer configs: what a training run is, as typed JSON.

A run = datasplit + architecture + task + trainer + iterations (+ intervals and a start). Runs
can be written as one JSON file or assembled from named parts of a config store, so a grid of
runs is a shell loop over names. In a run file a part may be the path of a file holding it
(``"datasplit": "split.csv"``, ``"task": "tasks/affinities.json"``); paths in a file are relative to
its folder (:mod:`alfine.configs.paths`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

from ..architectures import ArchitectureConfig
from ..configs import ConfigStore, Tagged, from_dict, load, read_json, to_dict
from ..configs.paths import anchor, folder_of
from ..datasplits import Datasplit, anchored, load_datasplit
from ..tasks import TaskConfig
from .augment import AugmentConfig


class StartConfig(Tagged):
    """Where a run's weights start."""


@dataclass(kw_only=True)
class Scratch(StartConfig):
    kind: ClassVar[str] = "scratch"


@dataclass(kw_only=True)
class FromRun(StartConfig):
    """The weights of another run's checkpoint (its latest, or ``iteration``)."""

    kind: ClassVar[str] = "run"
    run: str
    iteration: Optional[int] = None


@dataclass(kw_only=True)
class FromWeights(StartConfig):
    """A weights file: a plain state dict or an alfine checkpoint, matched by layer name and shape."""

    kind: ClassVar[str] = "weights"
    path: str


@dataclass(kw_only=True)
class TrainerConfig:
    """How to train: batches, optimiser, schedule, augmentation, data loading, seed."""

    batch_size: int = 1
    optimizer: Literal["adam", "adamw", "radam", "sgd"] = "adam"
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9
    warmup: int = 0
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    min_learning_rate: float = 0.0
    gradient_clip: Optional[float] = None
    mixed_precision: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    num_workers: int = 2
    seed: int = 0
    min_masked: float = 0.0
    border_padding: Optional[int] = None
    """Raw voxels per side by which a training crop may reach past its dataset, read mirrored across
    its faces exactly as inference reads past a volume's faces; None: as far as lets the output crop reach the dataset's
    faces, so the network learns to predict them as inference will; 0: crops lie inside the data."""

    def __post_init__(self):
        if self.batch_size < 1 or self.learning_rate <= 0 or self.warmup < 0 or self.num_workers < 0:
            raise ValueError("batch_size must be >= 1, learning_rate > 0, warmup and num_workers >= 0")
        if self.border_padding is not None and self.border_padding < 0:
            raise ValueError("border_padding is a number of raw voxels, at least 0 (or null: the network's context)")
        if not 0 <= self.min_masked <= 1:
            raise ValueError("min_masked is a fraction of the labelled crop, between 0 and 1")


@dataclass(kw_only=True)
class RunConfig:
    """One training run."""

    name: str
    datasplit: Datasplit
    architecture: ArchitectureConfig
    task: TaskConfig
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    iterations: int = 1000
    checkpoint_interval: int = 500
    snapshot_interval: int = 0
    validation_interval: int = 0
    start: StartConfig = field(default_factory=Scratch)
    repetition: int = 0

    def __post_init__(self):
        if self.iterations < 1 or self.checkpoint_interval < 1:
            raise ValueError("iterations and checkpoint_interval must be at least 1")
        if self.snapshot_interval < 0 or self.validation_interval < 0:
            raise ValueError("snapshot_interval and validation_interval must be >= 0 (0: never)")
        if self.task.dims not in (None, self.architecture.dims()):
            raise ValueError(f"the task is {self.task.dims}D, the architecture {self.architecture.dims()}D")

    @property
    def seed(self) -> int:
        """The seed of everything random in the run: the trainer's seed, changed by the repetition."""
        return self.trainer.seed + 1_000_003 * self.repetition


PARTS = {"datasplit": Datasplit, "architecture": ArchitectureConfig, "task": TaskConfig, "trainer": TrainerConfig}


def assemble_run(store_url: str, names: dict[str, str], repetition: int = 0) -> RunConfig:
    """The run made of the named parts in the store (stored as ``runs/<name>``; same parts, same run).

    The run's name is ``datasplit-architecture-task-trainer-rK``; ``repetition`` changes only the
    seed and the name.
    """
    store = ConfigStore(store_url)
    parts = {part: store.load(part + "s", names[part], cls) for part, cls in PARTS.items() if part != "datasplit"}
    parts["datasplit"] = load_datasplit(store.find("datasplits", names["datasplit"], (".json", ".csv")))
    name = "-".join(names[p] for p in PARTS) + f"-r{repetition}"
    run = RunConfig(name=name, repetition=repetition, **parts)
    store.save("runs", name, run)
    return run


def load_run(store_url: str, name: str) -> RunConfig:
    return run_from_file(ConfigStore(store_url).find("runs", name))


def run_from_dict(data: dict, source: str) -> RunConfig:
    return from_dict(RunConfig, data, source)


def run_from_file(url: str) -> RunConfig:
    """The run in the JSON file ``url``: parts given as file paths are read from those files, and relative
    paths (volumes, parts, a start's weights or run) are taken relative to the folder of the file naming them."""
    data = read_json(url)
    folder = folder_of(url)
    if isinstance(data, dict):
        data = dict(data)
        for part, cls in PARTS.items():
            if isinstance(data.get(part), str):
                where = anchor(data[part], folder)
                data[part] = to_dict(load_datasplit(where) if part == "datasplit" else load(cls, where))
        if "datasplit" in data:
            data["datasplit"] = anchored(data["datasplit"], folder)
        start = data.get("start")
        if isinstance(start, dict):
            data["start"] = {**start, **{k: anchor(start[k], folder) for k in ("path", "run")
                                         if isinstance(start.get(k), str)}}
    return run_from_dict(data, url)


def same_run(a: RunConfig, b: RunConfig) -> bool:
    """Whether two configs describe the same training, ignoring how many iterations to run."""
    return to_dict(dataclasses.replace(a, iterations=1)) == to_dict(dataclasses.replace(b, iterations=1))
