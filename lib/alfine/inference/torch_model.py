"""A torch model ready to predict: built once, all weights loaded, eval mode, task activation applied."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch

from ..architectures import ArchitectureConfig
from ..architectures.pretrained import read_state_dict, strip_prefix
from ..errors import UserError
from ..runs import choose_device
from ..tasks import TaskConfig

log = logging.getLogger(__name__)


class TorchPredictor:
    """``raw [C_in, *input] float32`` (normalised) → ``[C_out, *output] float32`` activated outputs.

    ``weights`` is a state dict, or the URL of a state dict or of an alfine checkpoint (its
    ``"model"``); every tensor of the model must be loaded from it, else a :class:`UserError`
    naming the weights and the architecture. ``device`` is ``"cpu"``, ``"cuda"`` (or
    ``"cuda:N"``) or ``"auto"`` (CUDA when present); ``threads`` (when not 0) sets torch's CPU
    threads of this process. ``channels_last`` stores the weights and inputs of a 3D model (5D
    tensors) in torch's ``channels_last_3d`` layout, which CPU convolutions run faster in (the
    outputs equal the default layout's to float rounding); None (default) means on the CPU only.
    """

    def __init__(self, architecture: ArchitectureConfig, task: TaskConfig,
                 weights: Mapping[str, torch.Tensor] | str, device: str = "auto", threads: int = 0,
                 channels_last: bool | None = None):
        from ..tasks.losses import TaskActivation

        if threads:
            torch.set_num_threads(threads)

        self.architecture = architecture
        self.task = task
        self.device = choose_device(device)
        model = architecture.build(task.num_channels)
        source = weights if isinstance(weights, str) else "the given state dict"
        state = read_state_dict(weights) if isinstance(weights, str) else dict(weights)
        model.load_state_dict(_matching(model, state, source, architecture))
        self.model = torch.nn.Sequential(model, TaskActivation(task)).to(self.device).eval()
        if channels_last is None:
            channels_last = self.device.type == "cpu"
        volumetric = any(p.dim() == 5 for p in self.model.parameters())
        self.memory_format = torch.channels_last_3d if channels_last and volumetric else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        log.info("predicting with a %s (%s) on %s", architecture.kind, source, self.device)

    @classmethod
    def from_run(cls, run_url: str, iteration: int | None = None, device: str = "auto") -> TorchPredictor:
        """The model of the run at ``run_url`` with the weights of checkpoint ``iteration`` (default: the latest)."""
        from .predict import run_predictor_spec

        return run_predictor_spec(run_url, iteration, device).build()

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """The activated prediction of one normalised input; a :class:`UserError` for a wrong shape."""
        self.architecture.check_input_array(raw.shape)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))[None].to(self.device)
            if x.dim() == 5:
                x = x.contiguous(memory_format=self.memory_format)
            return np.ascontiguousarray(self.model(x)[0].float().cpu().numpy())


def _matching(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
              architecture: ArchitectureConfig) -> dict[str, torch.Tensor]:
    """``state`` (a common prefix stripped) if it holds exactly the model's tensors with their shapes;
    else a :class:`UserError` naming ``source``, the architecture and what differs."""
    own = model.state_dict()
    state = strip_prefix(state, own)
    problems = []
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
                  for k in own if k in state and state[k].shape != own[k].shape]
    for what, names in (("shapes differ", mismatched), ("missing from the weights", missing),
                        ("not in the model", unexpected)):
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            problems.append(f"{what}: {', '.join(names[:3])}{more}")
    if problems:
        arch = ", ".join(f"{k}={v}" for k, v in _summary(architecture).items())
        raise UserError(f"{source} does not match the {architecture.kind} architecture ({arch}): "
                        + "; ".join(problems))
    return state


def _summary(architecture: ArchitectureConfig) -> dict:
    """The fields that most often explain a mismatch, as set in the config."""
    keys = ("input_shape", "fmaps_in", "num_fmaps", "fmap_inc_factor", "downsample_factors", "upsample_factors")
    return {k: getattr(architecture, k) for k in keys if hasattr(architecture, k)}
