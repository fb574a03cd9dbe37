"""Blockwise ONNX prediction throughput against a bare onnxruntime loop over the same tiles, in the same run.

alfine: ``alfine-predict-block``'s library call (:func:`alfine.jobs.predict.predict_blocks`) with an
exported model on a zarr raw volume: reading each block with its context, normalising, predicting,
writing chunk-aligned float32 output, done markers. Reference: the same onnxruntime session settings
running the same block inputs, already normalised in memory, one after another. Reports output
voxels/s of both and alfine's overhead (target < 10%), plus torch against onnxruntime on the same
tiles on the CPU, and torch's ``channels_last_3d`` layout (alfine's torch default on the CPU) against
torch's default layout. Run: ``.venv/bin/python tests/benchmarks/bench_inference.py [--scale S] [--workers N]`` (or
``tests/benchmarks/run_all.py --only inference``); prints one JSON object with ``rows``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402
from funlib.geometry import Coordinate, Roi  # noqa: E402

from alfine.blockwise import BlockRequest  # noqa: E402
from alfine.datasplits import normalise  # noqa: E402
from alfine.inference.layout import full_read_roi, prediction_layout  # noqa: E402
from alfine.inference.onnx_model import worker_threads  # noqa: E402
from alfine.inference.resolve import resolve_model  # noqa: E402
from alfine.jobs.export import export_model  # noqa: E402
from alfine.jobs.predict import predict_blocks  # noqa: E402
from alfine.runs import RunDirectory  # noqa: E402
from alfine.training.config import run_from_dict  # noqa: E402
from alfine.volumes import open_volume, prepare_volume  # noqa: E402

VOXEL_SIZE = (8, 8, 8)


def _raw(root: str, shape: tuple[int, ...]) -> str:
    url = f"{root}/d.zarr/raw"
    roi = Roi((0, 0, 0), Coordinate(shape) * Coordinate(VOXEL_SIZE))
    volume = prepare_volume(url, roi, VOXEL_SIZE, np.uint8, (64, 64, 64))
    volume.write(roi, np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    return url


def _run(root: str, raw: str, input_size: int) -> str:
    """A run with a randomly initialised checkpoint (throughput does not depend on training)."""
    run = run_from_dict({
        "name": "bench",
        "datasplit": {"train": [{"raw": raw, "labels": f"{root}/d.zarr/labels"}]},
        "architecture": {"kind": "unet", "input_shape": [input_size] * 3, "num_fmaps": 12, "fmap_inc_factor": 3,
                         "downsample_factors": [[2, 2, 2], [2, 2, 2]]},
        "task": {"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]},
    }, "bench")
    run_dir = RunDirectory(f"{root}/run")
    run_dir.write_config(run)
    torch.manual_seed(0)
    os.makedirs(f"{root}/run/checkpoints")
    torch.save({"model": run.architecture.build(run.task.num_channels).state_dict()}, f"{root}/run/checkpoints/1.pt")
    return run_dir.url


def _tiles(model, raw_url: str) -> list[np.ndarray]:
    """Every block's normalised network input, in memory."""
    raw = open_volume(raw_url)
    layout, _ = prediction_layout(model.spec.architecture_config(), raw.voxel_size, raw.roi,
                                  model.spec.input_shape)
    return [normalise(raw.read(full_read_roi(layout, block), fill_value=0), model.normalisation)[None]
            for block in layout]


def _bare_onnx(path: str, tiles: list[np.ndarray], threads: int) -> float:
    """Seconds for one onnxruntime session to run every tile (after one warm-up run)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    session.run(None, {name: tiles[0][None]})
    began = time.perf_counter()
    for tile in tiles:
        session.run(None, {name: tile[None]})
    return time.perf_counter() - began


def _bare_torch(run_url: str, tiles: list[np.ndarray], threads: int, channels_last: bool = True) -> float:
    """Seconds for alfine's torch predictor to run every tile (after one warm-up run), in torch's
    ``channels_last_3d`` layout (alfine's default on the CPU) or its default one."""
    from alfine.inference import run_predictor_spec
    from alfine.inference.torch_model import TorchPredictor

    spec = run_predictor_spec(run_url, 1, "cpu")
    predictor = TorchPredictor(spec.architecture_config(), spec.task_config(), spec.weights, "cpu",
                               channels_last=channels_last)
    torch.set_num_threads(threads)
    predictor(tiles[0])
    began = time.perf_counter()
    for tile in tiles:
        predictor(tile)
    return time.perf_counter() - began


def _spread(count: int, seconds: list[float]) -> str:
    return f"{count / max(seconds):.3f}–{count / min(seconds):.3f}"


def _predict(model_path: str, raw: str, output: str, workers: int, roi: Roi | None = None) -> tuple[float, dict]:
    began = time.perf_counter()
    summary = predict_blocks(model_path, raw, output, device="cpu", request=BlockRequest(roi=roi, workers=workers))
    return time.perf_counter() - began, summary


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="grow the volume (number of blocks)")
    parser.add_argument("--workers", type=int, default=1, help="alfine's worker processes (threads split among them)")
    parser.add_argument("--input-size", type=int, default=84, help="the network's input edge (valid: 44 + 8n)")
    parser.add_argument("--torch-tiles", type=int, default=4, help="tiles for the torch comparison")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the torch comparison (median and spread)")
    args = parser.parse_args()
    edge = 44 * max(1, round(3 * args.scale ** (1 / 3)))  # 27 output blocks of 44³ at scale 1 (input 84)
    shape = (edge, edge, edge)
    threads = worker_threads(args.workers)
    with tempfile.TemporaryDirectory() as root:
        raw = _raw(root, shape)
        run = _run(root, raw, args.input_size)
        model_path = f"{root}/model.onnx"
        export_model(run, 1, model_path)
        model = resolve_model(model_path, "cpu", worker_threads(1))
        tiles = _tiles(model, raw)
        output_voxels = int(np.prod(shape)) * 3
        tile_voxels = int(np.prod(model.spec.architecture_config().output_shape(model.spec.input_shape))) * 3
        one_block = Roi((0, 0, 0), Coordinate(44, 44, 44) * Coordinate(VOXEL_SIZE))
        _predict(model_path, raw, f"{root}/warm.zarr/pred", args.workers, one_block)  # start-up, page cache
        # The bare loop before and after alfine's run, averaged: shared machines drift.
        bare_seconds = _bare_onnx(model_path, tiles, worker_threads(1)) / 2
        alfine_seconds, summary = _predict(model_path, raw, f"{root}/out.zarr/pred", args.workers)
        bare_seconds += _bare_onnx(model_path, tiles, worker_threads(1)) / 2
        few = tiles[: args.torch_tiles]
        layouts: dict[str, list[float]] = {"onnx": [], "channels_last_3d": [], "default": []}
        for _ in range(args.repeats):  # interleaved: shared machines drift
            layouts["onnx"].append(_bare_onnx(model_path, few, worker_threads(1)))
            layouts["channels_last_3d"].append(_bare_torch(run, few, worker_threads(1)))
            layouts["default"].append(_bare_torch(run, few, worker_threads(1), channels_last=False))
        onnx_few, torch_few, default_few = (statistics.median(layouts[k]) for k in
                                            ("onnx", "channels_last_3d", "default"))
    alfine_rate = output_voxels / alfine_seconds
    bare_rate = len(tiles) * tile_voxels / bare_seconds
    result = {
        "benchmark": "inference", "volume_shape": list(shape), "blocks": summary["blocks"],
        "input_shape": list(model.spec.input_shape), "workers": args.workers, "threads_per_worker": threads,
        "alfine_output_voxels_per_second": round(alfine_rate), "bare_onnxruntime_output_voxels_per_second":
            round(bare_rate), "overhead": round(1 - alfine_rate / bare_rate, 3),
        "alfine_seconds": round(alfine_seconds, 3), "bare_seconds": round(bare_seconds, 3),
        "torch_cpu_tiles_per_second": round(len(few) / torch_few, 3),
        "onnxruntime_cpu_tiles_per_second": round(len(few) / onnx_few, 3),
        "onnxruntime_speedup_over_torch": round(torch_few / onnx_few, 3),
        "torch_seconds_per_layout": {k: [round(t, 3) for t in v] for k, v in layouts.items()},
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "onnxruntime": onnxruntime.__version__},
        "rows": [
            {"name": f"inference: ONNX UNet {model.spec.input_shape[0]}³ input, {summary['blocks']} blocks, "
                     f"{args.workers} worker(s) x {threads} thread(s), output voxels/s",
             "alfine": f"{alfine_rate / 1e6:.3f} MVx/s",
             "reference": f"bare onnxruntime loop, tiles in memory: {bare_rate / 1e6:.3f} MVx/s",
             "ratio": round(alfine_rate / bare_rate, 3)},
            {"name": "inference: onnxruntime against torch CPU in its best layout (channels_last_3d), same tiles "
                     "(tiles/s, median)",
             "alfine": f"onnxruntime {len(few) / onnx_few:.3f} tiles/s",
             "reference": f"torch channels_last_3d {len(few) / torch_few:.3f} tiles/s",
             "ratio": round(torch_few / onnx_few, 3)},
            {"name": "inference: torch CPU in channels_last_3d (alfine's torch default) against torch's default "
                     "layout, same tiles (tiles/s, median)",
             "alfine": f"channels_last_3d {len(few) / torch_few:.3f} tiles/s "
                       f"({_spread(len(few), layouts['channels_last_3d'])})",
             "reference": f"default layout {len(few) / default_few:.3f} tiles/s "
                          f"({_spread(len(few), layouts['default'])})",
             "ratio": round(default_few / torch_few, 3)},
        ],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
