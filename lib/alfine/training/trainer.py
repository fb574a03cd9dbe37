"""The training loop: resumable, reproducible, never waiting on data when loader workers keep up.

A run directory holds everything (see :mod:`.rundir`). Re-running the same run resumes from its
last checkpoint with the stats cut back to it, and continues exactly as an uninterrupted run of
the same seed would: samples are a function of (seed, index), and checkpoints hold the optimiser,
scheduler and RNG states.

Reproducible means bit for bit on one machine: the same run config trained twice (even at once, under load)
gives identical checkpoints. The model step's floating-point sums are split over torch's CPU threads
(by default one per core), so another number of threads (another machine, ``OMP_NUM_THREADS``) gives
other weights: on the demo, 1 thread against 2 differed by up to 0.018 in a weight after 20 iterations.
The summary records ``torch_threads``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np
import torch

from .. import progress
from ..configs import to_dict
from ..errors import UserError
from ..runs import RunDirectory, choose_device
from . import checkpoints
from .config import FromRun, FromWeights, RunConfig
from .samples import SampleMaker
from .schedule import Schedule

log = logging.getLogger(__name__)

STATS_EVERY, STATS_SECONDS = 10, 5.0
"""stats.jsonl gets the new lines every STATS_EVERY iterations, but not more often than every STATS_SECONDS."""

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "radam": torch.optim.RAdam,
              "sgd": torch.optim.SGD}


class _Samples(torch.utils.data.Dataset):
    """Sample ``i`` of the run, for a DataLoader (any number of workers gives the same batches)."""

    def __init__(self, maker: SampleMaker):
        self.maker = maker

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> dict:
        return self.maker(index)


@dataclasses.dataclass(frozen=True)
class _WorkerInit:
    """Set up a loader worker: one thread, and not holding the run's lock (a fork inherits it)."""

    lock_fd: int | None

    def __call__(self, _worker_id: int) -> None:
        import os

        torch.set_num_threads(1)  # loader workers share the cores with the model step
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # the trainer's own descriptor keeps the lock


def _optimizer(run: RunConfig, model) -> torch.optim.Optimizer:
    t = run.trainer
    kwargs = {"lr": t.learning_rate, "weight_decay": t.weight_decay}
    if t.optimizer == "sgd":
        kwargs["momentum"] = t.momentum
    return OPTIMIZERS[t.optimizer](model.parameters(), **kwargs)


def _start_weights(run: RunConfig, model) -> dict | None:
    """Load the weights a new run starts from; a report of what was (not) loaded."""
    from ..architectures import load_pretrained

    start = run.start
    if isinstance(start, FromWeights):
        source = start.path
    elif isinstance(start, FromRun):
        other = RunDirectory(start.run)
        try:
            iteration = other.choose_checkpoint(start.iteration)
        except UserError as e:
            raise UserError(f"the start run: {e}") from None
        source = other.checkpoint_url(iteration)
    else:
        return None
    report = load_pretrained(model, source)
    log.info("started from %s: loaded %d tensors; not loaded: %s", source, len(report["loaded"]),
             {k: v for k, v in report.items() if k != "loaded" and v} or "none")
    return report


def train(run: RunConfig, run_url: str, device: str = "auto", iterations: int | None = None,
          validate: Callable[[str, int, str], None] | None = None) -> dict:
    """Train ``run`` in the run directory ``run_url`` up to ``iterations`` (default: the run's); a summary.

    Every ``run.validation_interval`` iterations (with validation datasets) the iteration is checkpointed and,
    with ``validate``, ``validate(run_url, iteration, device)`` is called in this process (the loader workers
    keep prefetching). A run directory this call creates is removed again when training fails before its first
    checkpoint, so the corrected command can use the same ``run_url``."""
    if iterations is not None:
        run = dataclasses.replace(run, iterations=iterations)
    chosen = choose_device(device)
    run_dir = RunDirectory(run_url)
    created = not run_dir.fs.exists(run_dir.path)
    run_dir.lock()
    try:
        return _train(run, run_dir, chosen, validate)
    except BaseException:
        if created and not run_dir.checkpoints():  # nothing to resume: leave no directory that refuses a fixed run
            run_dir.unlock()
            run_dir.fs.rm(run_dir.path, recursive=True)
            log.debug("removed %s: it failed before its first checkpoint", run_dir.url)
        raise
    finally:
        run_dir.unlock()


def _train(run: RunConfig, run_dir: RunDirectory, device: torch.device,
           validate: Callable[[str, int, str], None] | None) -> dict:
    from ..datasplits import resolve_normalisations
    from ..tasks.losses import TaskActivation, TaskLoss

    run = dataclasses.replace(run, datasplit=resolve_normalisations(run.datasplit, seed=run.seed))
    run_dir.write_config(run)
    torch.manual_seed(run.seed)
    model = run.architecture.build(run.task.num_channels).to(device)
    loss_fn, activation = TaskLoss(run.task), TaskActivation(run.task)
    optimizer = _optimizer(run, model)
    t = run.trainer
    schedule = Schedule(t.warmup, run.iterations, t.schedule, t.min_learning_rate / t.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    mixed = t.mixed_precision and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=mixed)

    done = run_dir.checkpoints()
    start, started_from = 0, None
    if done:
        start = checkpoints.restore(checkpoints.read(run_dir.checkpoint_path(done[-1])), model, optimizer,
                                    scheduler, scaler)
        log.info("resuming %s from iteration %d", run_dir.url, start)
    else:
        started_from = _start_weights(run, model)
    stats = run_dir.read_stats(up_to=start)
    if start >= run.iterations:
        log.info("%s is already trained to iteration %d", run_dir.url, start)
        return _summary(run, run_dir, start, start, stats, 0.0)

    maker = SampleMaker(run)
    shapes = maker.prepare()  # checks the datasets and builds the sampler once, inherited by the workers
    indices = range(start * t.batch_size, run.iterations * t.batch_size)
    loader = torch.utils.data.DataLoader(
        _Samples(maker), batch_size=t.batch_size, sampler=indices, num_workers=t.num_workers,
        worker_init_fn=_WorkerInit(run_dir.lock_fd) if t.num_workers else None, persistent_workers=False,
        prefetch_factor=4 if t.num_workers else None, pin_memory=device.type == "cuda")
    log.info("training %s: %d -> %d iterations, input %s -> output %s voxels, %d loader workers, on %s",
             run.name, start, run.iterations, tuple(shapes.input_shape), tuple(shapes.output_shape),
             t.num_workers, device)

    run_dir.write_stats(stats)  # lines a killed run wrote after its last checkpoint are dropped here too
    written, last_write = len(stats), time.perf_counter()
    model.train()
    began = time.perf_counter()
    waited = 0.0
    batches = iter(loader)
    with progress.bar(total=run.iterations, desc="train", unit="it") as bar:
        bar.update(start)
        for iteration in range(start + 1, run.iterations + 1):
            t0 = time.perf_counter()
            batch = next(batches)
            t1 = time.perf_counter()
            raw, target, weights = (batch[k].to(device, non_blocking=True) for k in ("raw", "target", "weights"))
            with torch.autocast(device.type, enabled=mixed):
                logits = model(raw)
                if logits.shape != target.shape:
                    raise UserError(f"the architecture outputs {tuple(logits.shape)}, the task's targets are "
                                    f"{tuple(target.shape)}: check fmaps_in and the input shape")
                loss = loss_fn(logits.float(), target, weights)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if t.gradient_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.gradient_clip)
            scaler.step(optimizer)
            scaler.update()
            learning_rate = scheduler.get_last_lr()[0]
            scheduler.step()
            value = float(loss.detach())
            if not np.isfinite(value):
                raise RuntimeError(f"the loss became {value} at iteration {iteration}; lower the learning rate")
            t2 = time.perf_counter()
            waited += t1 - t0
            stats.append({"iteration": iteration, "loss": value, **{f"loss_{k}": v for k, v in loss_fn.parts.items()},
                          "learning_rate": learning_rate, "step_time": round(t2 - t0, 5),
                          "data_wait": round(t1 - t0, 5)})
            bar.update()
            bar.set_postfix(loss=f"{value:.4f}")
            if len(stats) - written >= STATS_EVERY and time.perf_counter() - last_write >= STATS_SECONDS:
                run_dir.append_stats(stats, len(stats) - written)  # people watch the loss between checkpoints
                written, last_write = len(stats), time.perf_counter()
            if run.snapshot_interval and iteration % run.snapshot_interval == 0:
                from .snapshots import write_snapshot

                with torch.no_grad():
                    prediction = activation(logits.detach().float()).cpu().numpy()
                write_snapshot(f"{run_dir.url}/snapshots.zarr/{iteration}", batch, prediction, shapes)
            checkpointed = iteration % run.checkpoint_interval == 0 or iteration == run.iterations
            if checkpointed:
                _checkpoint(run_dir, iteration, model, optimizer, scheduler, scaler, stats)
                written, last_write = len(stats), time.perf_counter()
            if run.validation_interval and iteration % run.validation_interval == 0 and run.datasplit.validate:
                if not checkpointed:  # validation reads the iteration's checkpoint
                    _checkpoint(run_dir, iteration, model, optimizer, scheduler, scaler, stats)
                    written, last_write = len(stats), time.perf_counter()
                if validate is not None:
                    validate(run_dir.url, iteration, str(device))
    del batches  # stops the loader workers now
    seconds = time.perf_counter() - began
    summary = _summary(run, run_dir, start, run.iterations, stats, seconds)
    summary["data_wait_share"] = round(waited / seconds, 4) if seconds else 0.0
    if started_from is not None:
        summary["started_from"] = {k: len(v) for k, v in started_from.items()}
    return summary


def _checkpoint(run_dir, iteration, model, optimizer, scheduler, scaler, stats) -> None:
    """The stats and plot up to ``iteration``, then its checkpoint: a checkpoint never lacks its stats, and a run
    killed in between resumes from the checkpoint before, dropping the stats beyond it."""
    from .plots import loss_png

    run_dir.write_stats(stats)
    run_dir.write_bytes("loss.png", loss_png(stats))
    checkpoints.save(run_dir, iteration, model, optimizer, scheduler, scaler)
    run_dir.refresh_lock()


def _summary(run: RunConfig, run_dir: RunDirectory, start: int, end: int, stats: list[dict], seconds: float) -> dict:
    recent = [s["loss"] for s in stats[-50:]]
    return {"run": run_dir.url, "name": run.name, "started_at": start, "iterations": end,
            "trained": end - start, "seconds_training": round(seconds, 2),
            "iterations_per_second": round((end - start) / seconds, 3) if seconds else None,
            "loss": float(np.mean(recent)) if recent else None, "checkpoints": run_dir.checkpoints(),
            "task": to_dict(run.task)["kind"], "torch_threads": torch.get_num_threads()}
