"""Task configs: parsing, channels, targets that are exact for any crop, balancing, losses."""

import numpy as np
import pytest
from funlib.geometry import Coordinate

from alfine.errors import ConfigError
from alfine.synthetic import SyntheticParams, generate_block
from alfine.tasks import KINDS, task_from_dict

VOXEL = (8, 4, 4)
CONFIGS = {
    "binary": {"kind": "binary", "classes": {"cell": 1, "organelle": 2}},
    "semantic": {"kind": "semantic", "classes": {"cell": 1, "organelle": 2}},
    "distance": {"kind": "distance", "classes": {"organelle": 2}, "scale": 16},
    "inner_distance": {"kind": "inner_distance", "scale": 12},
    "hot_distance": {"kind": "hot_distance", "classes": {"organelle": 2}, "scale": 16},
    "affinities": {"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0], [0, 5, 0],
                                                          [0, 0, -5]], "lsds": True, "lsd_sigma": 12},
}
USES_CLASSES = {"binary", "semantic", "distance", "hot_distance"}


@pytest.fixture(scope="module")
def volume():
    """Synthetic labels and classes, 40 x 64 x 64 voxels of (8, 4, 4) nm."""
    params = SyntheticParams(seed=4, cell_size=120.0)
    arrays = generate_block((40, 64, 64), VOXEL, (0, 0, 0), (0, 0, 0), (40, 64, 64), params)
    return arrays["labels"], arrays["classes"]


def _labels_for(kind, volume):
    labels, classes = volume
    return classes if kind in USES_CLASSES else labels


def test_every_kind_is_tested():
    assert set(KINDS) == set(CONFIGS)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_targets_have_the_declared_channels(kind, volume):
    task = task_from_dict(CONFIGS[kind])
    labels = _labels_for(kind, volume)
    target, known = task.targets(labels, VOXEL)
    assert target.shape == known.shape == (task.num_channels, *labels.shape)
    assert target.dtype == known.dtype == np.float32
    assert sum(g.channels for g in task.outputs()) == len(task.channel_names()) == task.num_channels
    assert 0 < known.mean() <= 1
    low = {"tanh": -1, "sigmoid": 0, "softmax": 0, "identity": -np.inf}
    start = 0
    for group in task.outputs():
        part = target[start:start + group.channels]
        assert part.min() >= low[group.activation] - 1e-6 and part.max() <= 1 + 1e-6, group.name
        start += group.channels


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_a_crop_with_context_gives_the_targets_of_the_whole_volume(kind, volume):
    """The contract blockwise make-targets and training crops rely on."""
    task = task_from_dict(CONFIGS[kind])
    labels = _labels_for(kind, volume)
    whole, whole_known = task.targets(labels, VOXEL)
    context = task.context(VOXEL) / Coordinate(VOXEL)
    for begin, size in [((10, 20, 16), (12, 20, 24)), ((0, 0, 0), (16, 24, 24)), ((24, 30, 40), (16, 34, 24))]:
        lo = np.maximum(np.array(begin) - context, 0)
        hi = np.minimum(np.array(begin) + size + context, labels.shape)
        crop = labels[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        target, known = task.targets(crop, VOXEL)
        inner = tuple(slice(b - a, b - a + s) for a, b, s in zip(lo, begin, size, strict=True))
        region = tuple(slice(b, b + s) for b, s in zip(begin, size, strict=True))
        # Where the crop touches the volume's edge both see the same edge; elsewhere the context covers all.
        np.testing.assert_array_equal(known[(slice(None),) + inner], whole_known[(slice(None),) + region])
        sure = known[(slice(None),) + inner] > 0
        np.testing.assert_allclose(target[(slice(None),) + inner][sure], whole[(slice(None),) + region][sure],
                                   atol=1e-5)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_weights_balance_each_group(kind, volume):
    task = task_from_dict(CONFIGS[kind])
    target, known = task.targets(_labels_for(kind, volume), VOXEL)
    weights = task.weights(target, known)
    assert (weights[known == 0] == 0).all()
    start = 0
    for group in task.outputs():
        t, w = target[start:start + group.channels], weights[start:start + group.channels]
        start += group.channels
        if group.balance in ("binary", "inside_outside"):
            positive = t > (0 if group.balance == "inside_outside" else 0.5)
            for c in range(group.channels):
                pos, neg = w[c][positive[c]].sum(), w[c][~positive[c]].sum()
                fraction = positive[c][known[c] > 0].mean()
                if 0.05 < fraction < 0.95:
                    assert pos == pytest.approx(neg, rel=1e-3), (group.name, c)
        elif group.balance == "classes":
            per_class = [w[0][t[c] > 0.5].sum() for c in range(group.channels)]
            present = [p for c, p in enumerate(per_class) if (t[c] > 0.5).any()]
            assert max(present) == pytest.approx(min(present), rel=1e-3)


def test_two_dimensional_affinities_with_lsds(volume):
    task = task_from_dict({"kind": "affinities", "neighborhood": [[1, 0], [0, 1], [0, 4]], "lsds": True,
                           "lsd_sigma": 12})
    labels = volume[0][20]
    target, known = task.targets(labels, VOXEL[1:])
    assert target.shape == (3 + 6, *labels.shape)
    assert task.channel_names()[3:] == ["lsd_offset_y", "lsd_offset_x", "lsd_var_y", "lsd_var_x", "lsd_corr_yx",
                                        "lsd_size"]
    assert tuple(task.context(VOXEL[1:])) >= (4, 16)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1]]}, "all have 3 entries"),
        ({"kind": "affinities", "neighborhood": [[0, 0, 0]]}, "zero offset"),
        ({"kind": "affinities", "neighborhood": [[1, "a", 0]]}, r"neighborhood\[0\]\[1\]: expected int"),
        ({"kind": "semantic", "classes": {"background": 0, "cell": 1}}, "must not name background"),
        ({"kind": "distance", "scale": -1}, "scale must be positive"),
        ({"kind": "binary", "classes": {}}, "at least one class"),
        ({"kind": "lsd"}, r"kind: unknown kind \"lsd\"; expected one of affinities, binary, distance"),
        ({"kind": "binary", "clases": {"a": 1}}, "clases: unknown key"),
    ],
)
def test_bad_task_configs_name_the_key(config, message):
    with pytest.raises(ConfigError, match=rf"task\.json: .*{message}"):
        task_from_dict(config, "task.json")


def test_postprocessing_methods_read_the_declared_channels():
    task = task_from_dict(CONFIGS["affinities"])
    methods = {p.method: p for p in task.postprocessing()}
    assert set(methods) == {"mutex_watershed", "agglomerate"}
    assert methods["agglomerate"].channels == slice(0, 6)
    assert task_from_dict(CONFIGS["semantic"]).postprocessing()[0].method == "argmax"
    tanh = {p.method: p.grid for p in task_from_dict(CONFIGS["distance"]).postprocessing()}
    assert all(-1 < t < 1 for t in tanh["threshold"]["threshold"])  # the network's tanh scale, not world units


# -- losses (torch) ------------------------------------------------------------------------------------


def test_losses_match_a_hand_computation():
    import torch

    from alfine.tasks.losses import TaskActivation, TaskLoss

    task = task_from_dict({"kind": "hot_distance", "classes": {"a": 1, "b": 2}, "distance_weight": 0.5})
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(2, 4, 3, 5, 5)), dtype=torch.float32, requires_grad=True)
    target = torch.tensor(np.concatenate([rng.integers(0, 2, (2, 2, 3, 5, 5)),
                                          rng.uniform(-1, 1, (2, 2, 3, 5, 5))], axis=1), dtype=torch.float32)
    weights = torch.tensor(rng.uniform(0, 2, (2, 4, 3, 5, 5)), dtype=torch.float32)
    loss = TaskLoss(task)(logits, target, weights)
    x, y, w = logits.detach().numpy(), target.numpy(), weights.numpy()
    p = 1 / (1 + np.exp(-x[:, :2]))
    bce = -(y[:, :2] * np.log(p) + (1 - y[:, :2]) * np.log(1 - p))
    mse = (np.tanh(x[:, 2:]) - y[:, 2:]) ** 2
    expected = (w[:, :2] * bce).mean() + 0.5 * (w[:, 2:] * mse).mean()
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    activated = TaskActivation(task)(logits.detach()).numpy()
    np.testing.assert_allclose(activated[:, :2], p, rtol=1e-5)
    np.testing.assert_allclose(activated[:, 2:], np.tanh(x[:, 2:]), rtol=1e-5)


def test_softmax_loss_and_zero_weights():
    import torch

    from alfine.tasks.losses import TaskActivation, TaskLoss

    task = task_from_dict({"kind": "semantic", "classes": {"a": 1, "b": 2}})
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(1, 3, 4, 4)), dtype=torch.float32)
    classes = rng.integers(0, 3, (1, 4, 4))
    target = torch.tensor(np.eye(3)[classes].transpose(0, 3, 1, 2), dtype=torch.float32)
    voxel_weights = rng.uniform(0, 1, (1, 1, 4, 4))
    weights = torch.tensor(np.repeat(voxel_weights, 3, axis=1), dtype=torch.float32)
    x = logits.numpy()
    log_softmax = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    ce = -np.take_along_axis(log_softmax, classes[:, None], axis=1)
    assert float(TaskLoss(task)(logits, target, weights)) == pytest.approx((voxel_weights * ce).mean(), rel=1e-5)
    assert float(TaskLoss(task)(logits, target, torch.zeros_like(weights))) == 0.0
    np.testing.assert_allclose(TaskActivation(task)(logits).sum(dim=1).numpy(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="must have one shape"):
        TaskLoss(task)(logits, target[:, :2], weights)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_postprocessing_grids_run_on_the_task_s_own_targets(kind, volume):
    """Every method a task sweeps exists, takes the grid's parameters, and segments its perfect output."""
    from alfine.postprocess import METHODS, grid, run

    task = task_from_dict(CONFIGS[kind])
    labels = _labels_for(kind, volume)
    target, _ = task.targets(labels[:, :32, :32], VOXEL)
    offsets = getattr(task, "neighborhood", None)
    for post in task.postprocessing():
        assert post.method in METHODS, post.method
        combos = grid(post.method, post.grid)
        assert len(combos) == int(np.prod([len(v) for v in post.grid.values()]))
        result = run(post.method, target[post.channels], combos[len(combos) // 2], offsets=offsets)
        assert result.shape[-3:] == labels[:, :32, :32].shape
        assert result.any(), (kind, post.method)
