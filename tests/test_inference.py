"""Blockwise inference: blocks equal one whole-volume prediction, workers, resuming, 2D, weights, caching."""

import numpy as np
import pytest
import torch
from funlib.geometry import Coordinate, Roi
from inference_helpers import NORM, TASK, unet, whole_prediction

from alfine.configs import to_dict
from alfine.datasplits import Dataset, Datasplit
from alfine.errors import UserError
from alfine.inference import TorchSpec, predict_volume, prediction_layout, predictor_for, run_predictor_spec
from alfine.inference import predict as predict_module
from alfine.inference.torch_model import TorchPredictor
from alfine.runs import RunDirectory
from alfine.training.config import RunConfig
from alfine.volumes import open_volume, prepare_volume


def save_weights(tmp_path, architecture, seed=0, name="weights.pt") -> str:
    """Random weights large enough that the output varies clearly with the input (default init nearly
    forgets the input in so narrow a network)."""
    torch.manual_seed(seed)
    model = architecture.build(TASK.num_channels)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    path = str(tmp_path / name)
    torch.save({"model": model.state_dict(), "iteration": 7}, path)
    return path


def make_raw(tmp_path, shape, voxel_size, offset) -> str:
    url = f"{tmp_path}/raw.zarr/raw"
    roi = Roi(offset, Coordinate(shape) * Coordinate(voxel_size))
    volume = prepare_volume(url, roi, voxel_size, np.uint8, (5,) * len(shape))
    volume.write(roi, np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8))
    return url


@pytest.fixture
def volume3d(tmp_path, monkeypatch):
    """A 3D raw volume with an offset; blocks of 4 output voxels leave shrunk blocks at every end."""
    monkeypatch.chdir(tmp_path)  # daisy's worker logs
    architecture = unet()
    weights = save_weights(tmp_path, architecture)
    raw = make_raw(tmp_path, (10, 9, 7), (2, 1, 1), (4, -3, 5))
    spec = TorchSpec(to_dict(architecture), to_dict(TASK), weights, "cpu")
    return architecture, weights, raw, spec


def test_blocks_equal_one_whole_volume_prediction(volume3d, tmp_path):
    architecture, weights, raw, spec = volume3d
    out = f"{tmp_path}/out.zarr/prediction"
    summary = predict_volume(spec, raw, NORM, out)
    assert summary["blocks"] == 3 * 3 * 2 and summary["processed"] == 18 and summary["block_shape_voxels"] == [4, 4, 4]
    prediction = open_volume(out)
    assert prediction.roi == open_volume(raw).roi and tuple(prediction.voxel_size) == (2, 1, 1)
    assert prediction.array.attrs["channel_names"] == ["a", "b"]
    expected = whole_prediction(architecture, weights, raw, prediction.roi)
    assert expected.shape == prediction.shape == (2, 10, 9, 7)
    np.testing.assert_allclose(prediction.read(), expected, atol=1e-5)


def test_two_workers_give_the_same_result(volume3d, tmp_path):
    architecture, weights, raw, spec = volume3d
    roi = Roi((6, -3, 5), (14, 7, 6))  # a part of the volume, not starting at its corner
    out = f"{tmp_path}/out.zarr/prediction"
    assert predict_volume(spec, raw, NORM, out, roi=roi, workers=2)["processed"] == 2 * 2 * 2
    expected = whole_prediction(architecture, weights, raw, roi)
    np.testing.assert_allclose(open_volume(out).read(), expected, atol=1e-5)


def test_one_block_then_resume_skips_finished_blocks(volume3d, tmp_path):
    architecture, weights, raw, spec = volume3d
    out = f"{tmp_path}/out.zarr/prediction"
    first, again = (predict_volume(spec, raw, NORM, out, block_id=5) for _ in range(2))
    assert (first["processed"], again["processed"], again["skipped"]) == (1, 0, 1)
    prediction = open_volume(out)
    layout, _ = prediction_layout(architecture, (2, 1, 1), prediction.roi)
    block = layout.block(5)
    expected = whole_prediction(architecture, weights, raw, prediction.roi)
    written = prediction.read(block.write_roi)
    index = (slice(None),) + tuple(slice(b, b + s) for b, s in zip(
        (block.write_roi.begin - prediction.roi.begin) / Coordinate(2, 1, 1), written.shape[1:], strict=True))
    np.testing.assert_allclose(written, expected[index], atol=1e-5)
    assert np.count_nonzero(prediction.read()) == written.size  # nothing else written yet
    assert predict_volume(spec, raw, NORM, out)["processed"] == 17
    rerun = predict_volume(spec, raw, NORM, out)
    assert (rerun["processed"], rerun["skipped"]) == (0, 18)
    np.testing.assert_allclose(open_volume(out).read(), expected, atol=1e-5)


def test_2d_with_super_resolution_and_a_chosen_input_shape(tmp_path):
    architecture = unet(input_shape=[20, 20], downsample_factors=[[2, 2]], upsample_factors=[[2, 2]])
    weights = save_weights(tmp_path, architecture)
    raw = make_raw(tmp_path, (13, 11), (4, 4), (8, -4))
    spec = TorchSpec(to_dict(architecture), to_dict(TASK), weights, "cpu")
    out = f"{tmp_path}/out.zarr/prediction"
    with pytest.raises(UserError, match="nearest valid sizes are 20 and 22"):
        predict_volume(spec, raw, NORM, out, input_shape=[21, 20])
    summary = predict_volume(spec, raw, NORM, out, input_shape=[22, 20], chunk_shape=[4, 4])
    assert summary["voxel_size"] == [2, 2] and summary["block_shape_voxels"] == [8, 4] and summary["blocks"] == 4 * 6
    prediction = open_volume(out)
    assert prediction.shape == (2, 26, 22)
    expected = whole_prediction(architecture, weights, raw, prediction.roi)
    np.testing.assert_allclose(prediction.read(), expected, atol=1e-5)


def test_weights_of_another_architecture_are_refused_naming_both(tmp_path):
    other = save_weights(tmp_path, unet(num_fmaps=3))
    with pytest.raises(UserError, match=r"weights\.pt does not match the unet architecture .*num_fmaps=2.*"
                                        r"shapes differ: .*file \(3, 1, 3, 3, 3\), model \(2, 1, 3, 3, 3\)"):
        TorchPredictor(unet(), TASK, other, "cpu")
    fewer = {k: v for k, v in unet().build(2).state_dict().items() if "down" not in k}
    with pytest.raises(UserError, match="missing from the weights: down"):
        TorchPredictor(unet(), TASK, fewer, "cpu")


def test_the_predictor_is_built_once_per_process(volume3d, tmp_path, monkeypatch):
    _, _, raw, spec = volume3d
    built = []
    original = TorchSpec.build
    monkeypatch.setattr(TorchSpec, "build", lambda self: built.append(self) or original(self))
    monkeypatch.setattr(predict_module, "_CACHE", {})
    predict_volume(spec, raw, NORM, f"{tmp_path}/out.zarr/one")
    predict_volume(spec, raw, NORM, f"{tmp_path}/out.zarr/two")
    assert len(built) == 1
    other = TorchSpec(spec.architecture, spec.task, spec.weights, "auto")
    assert predictor_for(other) is not predictor_for(spec) and len(built) == 3  # another spec, then back


def test_a_run_directory_gives_its_latest_or_chosen_checkpoint(tmp_path):
    architecture = unet()
    split = Datasplit(train=[Dataset(raw=f"{tmp_path}/d.zarr/raw", labels=f"{tmp_path}/d.zarr/labels")])
    run_dir = RunDirectory(str(tmp_path / "run"))
    with pytest.raises(UserError, match="not a run directory"):
        run_predictor_spec(run_dir.url)
    run_dir.write_config(RunConfig(name="r", datasplit=split, architecture=architecture, task=TASK))
    with pytest.raises(UserError, match="has no checkpoints yet"):
        run_predictor_spec(run_dir.url)
    (tmp_path / "run" / "checkpoints").mkdir()
    for iteration, seed in ((5, 1), (10, 2)):
        save_weights(tmp_path / "run" / "checkpoints", architecture, seed, f"{iteration}.pt")
    assert run_predictor_spec(run_dir.url).weights.endswith("checkpoints/10.pt")
    with pytest.raises(UserError, match=r"no checkpoint 7; it has \[5, 10\]"):
        run_predictor_spec(run_dir.url, 7)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 20, 20, 20)).astype(np.float32)
    latest, first = TorchPredictor.from_run(run_dir.url, device="cpu"), TorchPredictor.from_run(run_dir.url, 5, "cpu")
    by_hand = TorchPredictor(architecture, TASK, str(tmp_path / "run/checkpoints/10.pt"), "cpu")
    assert latest(x).shape == (2, 4, 4, 4) and latest(x).dtype == np.float32
    np.testing.assert_array_equal(latest(x), by_hand(x))
    assert not np.allclose(latest(x), first(x))


def test_channels_last_3d_on_the_cpu_gives_the_default_layouts_outputs(tmp_path):
    """On the CPU a 3D model runs in channels_last_3d (faster convolutions) unless told otherwise; its outputs
    equal the default layout's to float rounding and come back C-contiguous; a 2D model keeps the default."""
    architecture = unet()
    weights = save_weights(tmp_path, architecture)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 24, 20, 20)).astype(np.float32)
    fast = TorchPredictor(architecture, TASK, weights, "cpu")
    plain = TorchPredictor(architecture, TASK, weights, "cpu", channels_last=False)
    assert fast.memory_format == torch.channels_last_3d and plain.memory_format == torch.contiguous_format
    conv = next(p for p in fast.model.parameters() if p.dim() == 5 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d) and not conv.is_contiguous()
    ours, theirs = fast(x), plain(x)
    assert ours.flags.c_contiguous and ours.shape == theirs.shape and np.ptp(theirs) > 0.1
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    flat = unet(input_shape=[20, 20], downsample_factors=[[2, 2]])
    flat_predictor = TorchPredictor(flat, TASK, save_weights(tmp_path, flat, name="w2.pt"), "cpu")
    assert flat_predictor.memory_format == torch.contiguous_format
    assert flat_predictor(x[:, 0]).shape[1:] == (4, 4)
