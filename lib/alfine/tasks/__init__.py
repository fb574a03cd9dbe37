"""Tasks: what a model learns, and how its output becomes a segmentation and a score.

One module per task kind; each config (chosen by ``"kind"``) gives targets from labels,
output channels with activations and losses, the context its targets need, post-processing
grids and its evaluator. Targets, post-processing and metrics are numpy; only
:mod:`alfine.tasks.losses` imports torch.
"""

from ..configs import from_dict, load
from .affinities import AffinitiesTask
from .base import OutputGroup, Postprocessing, TaskConfig
from .distance import DistanceTask, HotDistanceTask, InnerDistanceTask
from .semantic import BinaryTask, SemanticTask

KINDS = TaskConfig.kinds()


def load_task(url: str) -> TaskConfig:
    """The task config in the JSON file at ``url``; errors name the file and the key."""
    return load(TaskConfig, url)


def task_from_dict(data: dict, source: str = "<task>") -> TaskConfig:
    return from_dict(TaskConfig, data, source)


__all__ = ["KINDS", "AffinitiesTask", "BinaryTask", "DistanceTask", "HotDistanceTask", "InnerDistanceTask",
           "OutputGroup", "Postprocessing", "SemanticTask", "TaskConfig", "load_task", "task_from_dict"]
