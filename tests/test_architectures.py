"""Architectures: U-Net shape arithmetic against real modules, tiling, memory, configs, wrapped modules, weights."""

import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from alfine.architectures import ArchitectureConfig, UNetConfig, WrappedConfig, load_pretrained
from alfine.configs import from_dict, to_dict
from alfine.errors import ConfigError, UserError

ANISOTROPIC = {"downsample_factors": [[1, 2, 2], [1, 2, 2], [2, 2, 2]],
               "kernel_size_down": [[[1, 3, 3], [1, 3, 3]], [[1, 3, 3], [1, 3, 3]], [[3, 3, 3], [3, 3, 3]],
                                    [[3, 3, 3], [3, 3, 3]]],
               "kernel_size_up": [[[1, 3, 3], [1, 3, 3]], [[1, 3, 3], [1, 3, 3]], [[3, 3, 3], [3, 3, 3]]]}
SHAPE_CASES = {
    "2d": {"input_shape": [44, 48], "downsample_factors": [[2, 2], [2, 2]]},
    "3d": {"input_shape": [18, 18, 18], "downsample_factors": [[2, 2, 2]], "norm": "batch"},
    "anisotropic": {"input_shape": [18, 100, 100], **ANISOTROPIC},
    "same": {"input_shape": [16, 24], "downsample_factors": [[2, 2], [2, 2]], "padding": "same",
             "upsample": "nearest", "norm": "group", "activation": "gelu"},
    "factor_3": {"input_shape": [25, 25], "downsample_factors": [[3, 3]], "norm": "instance"},
    "tail": {"input_shape": [20, 20], "downsample_factors": [[2, 2]], "upsample_factors": [[3, 3]],
             "kernel_size_down": [[5, 5], [3]], "kernel_size_up": [[3]], "activation": "leaky_relu"},
    "tail_same": {"input_shape": [8, 12, 12], "downsample_factors": [[1, 2, 2]], "upsample_factors": [[1, 2, 2]],
                  "padding": "same", "fmap_inc_factor": 1.5, "dropout": 0.2},
}


def unet(**fields) -> UNetConfig:
    return from_dict(ArchitectureConfig, {"kind": "unet", "num_fmaps": 2, **fields}, "arch.json")


def sizes(config, n: int) -> list[int]:
    """The valid input size ``n`` steps above the smallest, on every axis."""
    smallest, step = config.valid_sizes()
    return [s + n * t for s, t in zip(smallest, step, strict=True)]


def run(model, shape, seed=0) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.rand((1, 1, *shape), generator=torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
def test_output_shape_is_what_the_module_outputs(case):
    config = unet(**SHAPE_CASES[case])
    model = config.build(out_channels=3).eval()
    for n in (0, 1):
        shape = sizes(config, n)
        output = run(model, shape)
        expected = tuple((s - 2 * c) * f for s, c, f in
                         zip(shape, config.context(), config.upsample_factor(), strict=True))
        assert output.shape == (1, 3, *expected)
        assert config.output_shape(shape) == expected


def test_classic_arithmetic():
    """Three 2x levels of two 3^3 convolutions: the funlib/DaCapo numbers (196 -> 104, context 46)."""
    config = unet(input_shape=[196] * 3, downsample_factors=[[2, 2, 2]] * 3)
    assert config.output_shape([196] * 3) == (104,) * 3
    assert config.context() == (46,) * 3 and config.valid_sizes() == ((100,) * 3, (8,) * 3)
    anisotropic = unet(input_shape=[18, 100, 100], **ANISOTROPIC)
    assert anisotropic.context() == (8, 46, 46) and anisotropic.valid_sizes() == ((18, 100, 100), (2, 8, 8))
    same = unet(**SHAPE_CASES["same"])
    assert same.context() == (0, 0) and same.valid_sizes() == ((4, 4), (4, 4))


def test_super_resolution_tail():
    config = unet(**SHAPE_CASES["tail"])
    assert config.upsample_factor() == (3, 3)
    assert config.output_shape([20, 20]) == ((20 - 2 * config.context()[0]) * 3,) * 2
    same = unet(**SHAPE_CASES["tail_same"])
    assert same.upsample_factor() == (1, 2, 2) and same.output_shape([8, 12, 12]) == (8, 24, 24)


def test_check_input_shape_names_the_nearest_valid_sizes():
    config = unet(input_shape=[18, 100, 100], **ANISOTROPIC)
    with pytest.raises(UserError) as error:
        config.check_input_shape([23, 100, 115])
    message = str(error.value)
    assert "axis 1" not in message
    for axis, size in ((0, 23), (2, 115)):
        below, above = map(int, re.search(rf"axis {axis}: {size} is not valid, the nearest valid sizes are "
                                          r"(\d+) and (\d+)", message).groups())
        assert below < size < above
        for candidate in range(below, above + 1):
            shape = [18, 100, 100]
            shape[axis] = candidate
            assert (config.input_shape_problem(shape) is None) == (candidate in (below, above))
    with pytest.raises(UserError, match="axis 1: 60 is too small, the smallest valid size is 100"):
        config.output_shape([18, 60, 100])
    with pytest.raises(UserError, match="has 2 axes; this architecture is 3D"):
        config.check_input_shape([100, 100])


def test_an_invalid_input_is_refused_by_the_module_too():
    model = unet(**SHAPE_CASES["2d"]).build(1)
    with pytest.raises(ValueError, match="not divisible by the downsample factor"):
        run(model, [45, 44])


@pytest.mark.parametrize("case", ["2d", "factor_3", "anisotropic_1_level"])
def test_valid_padding_is_translation_equivariant(case):
    """The output of an input equals its tiles' outputs stitched, tiles on a grid of the total downsampling."""
    fields = SHAPE_CASES.get(case) or {"input_shape": [4, 12, 12], "downsample_factors": [[1, 2, 2]],
                                       "kernel_size_down": [[[1, 3, 3]], [[3, 3, 3]]], "kernel_size_up": [[[1, 3, 3]]]}
    config = unet(**{**fields, "norm": None, "num_fmaps": 3, "activation": "leaky_relu"})  # no dead units
    torch.manual_seed(1)
    model = config.build(2).eval()
    tile = sizes(config, 1)
    out = config.output_shape(tile)
    whole = [t + o for t, o in zip(tile, out, strict=True)]  # two tiles per axis
    raw = torch.rand((1, 1, *whole), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(raw)
        stitched = torch.zeros_like(expected)
        for corner in torch.cartesian_prod(*[torch.tensor([0, 1])] * len(tile)).tolist():
            begin = [c * o for c, o in zip(corner, out, strict=True)]
            tile_raw = raw[(..., *[slice(b, b + t) for b, t in zip(begin, tile, strict=True)])]
            stitched[(..., *[slice(b, b + o) for b, o in zip(begin, out, strict=True)])] = model(tile_raw)
        assert torch.allclose(stitched, expected, atol=1e-5, rtol=0)
        # One voxel off the grid (the last axis is downsampled) the outputs differ: the comparison can tell.
        shifted = model(raw[(..., *[slice(0, t) for t in tile[:-1]], slice(1, 1 + tile[-1]))])
        assert not torch.allclose(shifted, expected[(..., *[slice(0, o) for o in out[:-1]], slice(1, 1 + out[-1]))],
                                  atol=1e-5)


@pytest.mark.parametrize("case", ["3d", "anisotropic"])
def test_largest_input_shape_grows_with_memory_and_stays_valid(case):
    config = unet(**SHAPE_CASES[case])
    smallest, step = config.valid_sizes()
    previous = None
    for memory in (2**24, 2**26, 2**28):
        shape = config.largest_input_shape(memory, out_channels=3, batch_size=2)
        config.check_input_shape(shape)
        assert config.activation_bytes(shape, 3, 2) <= memory
        steps = [(s - m) // t for s, m, t in zip(shape, smallest, step, strict=True)]
        assert max(steps) - min(steps) <= 1  # balanced in steps of the total downsampling
        bigger = [s + t for s, t in zip(sizes(config, min(steps)), step, strict=True)]
        assert config.activation_bytes(bigger, 3, 2) > memory
        if previous is not None:
            assert all(s >= p for s, p in zip(shape, previous, strict=True)) and shape != previous
        previous = shape
    with pytest.raises(UserError, match="smallest valid input"):
        config.largest_input_shape(1000, out_channels=3)


def test_the_memory_estimate_counts_each_layers_input_and_output():
    config = unet(**SHAPE_CASES["3d"])
    model = config.build(4).eval()
    shape = sizes(config, 1)
    pairs = []
    hooks = [m.register_forward_hook(lambda _, i, o: pairs.append(i[0].numel() + o.numel()))
             for m in model.modules() if not any(m.children())]
    run(model, shape)
    for hook in hooks:
        hook.remove()
    estimate = config.activation_bytes(shape, 4)
    assert max(pairs) * 4 <= estimate <= sum(pairs) * 4
    assert config.activation_bytes(shape, 4, batch_size=3) == 3 * estimate


def test_configs_round_trip_and_errors_name_the_key():
    config = unet(**SHAPE_CASES["anisotropic"])
    assert from_dict(ArchitectureConfig, to_dict(config), "again.json") == config
    base = {"kind": "unet", "input_shape": [44, 44], "downsample_factors": [[2, 2], [2, 2]]}
    cases = [
        ({"downsample_factors": [[2, 2], [2, 2, 2]]}, r"arch\.json: downsample_factors\[1\] has 3 entries; expected 2"),
        ({"padding": "full"}, r"arch\.json: padding: expected \"valid\" or \"same\", got \"full\""),
        ({"kernel_size_down": [[3], [4]]}, r"kernel_size_down has 2 levels; expected 3"),
        ({"kernel_size_up": [[3], [[3, 4]]]}, r"kernel_size_up\[1\]\[0\]: kernel sizes must be odd"),
        ({"input_shape": [46, 44]}, r"arch\.json: input_shape: .*axis 0: 46 is not valid, the nearest valid sizes "
                                    r"are 44 and 48"),
        ({"norm": "layer"}, r"arch\.json: norm: expected"),
        ({"kind": "resnet"}, r"arch\.json: kind: unknown kind \"resnet\"; expected one of .*unet"),
        ({"fmaps": 3}, r"arch\.json: fmaps: unknown key"),
    ]
    for change, message in cases:
        with pytest.raises(ConfigError, match=message):
            from_dict(ArchitectureConfig, {**base, **change}, "arch.json")


def test_configs_need_no_torch():
    code = ("import sys; from alfine.architectures import ArchitectureConfig; from alfine.configs import from_dict; "
            "c = from_dict(ArchitectureConfig, {'kind': 'unet', 'input_shape': [28, 28], "
            "'downsample_factors': [[2, 2]]}, 'a'); c.largest_input_shape(2**24, 2); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


TINY = '''
from torch import nn

BUILT = []


class Tiny(nn.Module):
    """A 5x5 valid convolution: loses 2 voxels per side."""

    def __init__(self, channels=4, out_channels=None):
        super().__init__()
        BUILT.append(self)
        self.conv = nn.Conv2d(1, out_channels or channels, 5)

    def forward(self, x):
        return self.conv(x)


class NotAModule:
    pass
'''


@pytest.fixture
def tiny(tmp_path, monkeypatch, request):
    """The name of a fresh importable module holding ``Tiny`` (unique per test, so nothing is cached across)."""
    name = "tiny_" + re.sub(r"\W", "_", request.node.name)
    (tmp_path / f"{name}.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def wrapped(tiny, **fields) -> WrappedConfig:
    data = {"kind": "wrapped", "module": f"{tiny}:Tiny", "input_shape": [20, 24], "context_per_side": [2, 2],
            **fields}
    return from_dict(ArchitectureConfig, data, "arch.json")


def test_wrapped_output_shape_by_a_cached_dry_run_and_an_appended_head(tiny):
    config = wrapped(tiny, kwargs={"channels": 5})
    assert config.output_shape([20, 24]) == (16, 20) and config.output_shape([20, 24]) == (16, 20)
    assert len(sys.modules[tiny].BUILT) == 1  # the second call used the cached dry run
    model = config.build(3)
    assert isinstance(model, nn.Sequential) and model[1].in_channels == 5
    assert run(model, [20, 24]).shape == (1, 3, 16, 20)
    direct = wrapped(tiny, out_channels_arg="out_channels").build(3)
    assert type(direct).__name__ == "Tiny" and run(direct, [20, 24]).shape == (1, 3, 16, 20)


def test_wrapped_valid_sizes_and_memory(tiny):
    config = wrapped(tiny, input_step=[4, 4])
    assert config.valid_sizes() == ((8, 8), (4, 4))
    with pytest.raises(UserError, match="axis 1: 26 is not valid, the nearest valid sizes are 24 and 28"):
        config.check_input_shape([20, 26])
    small, large = config.largest_input_shape(2**16, 2), config.largest_input_shape(2**20, 2)
    assert all(s < b for s, b in zip(small, large, strict=True))
    assert config.output_shape(large) == (large[0] - 4, large[1] - 4)
    assert config.activation_bytes(large, 2) <= 2**20
    with pytest.raises(UserError, match="the only valid size is 24"):
        wrapped(tiny).check_input_shape([20, 28])


def test_wrapped_errors(tiny):
    with pytest.raises(UserError, match=r"outputs \(16, 20\) .* must output \(20, 24\)"):
        wrapped(tiny, context_per_side=None).output_shape([20, 24])
    for module, message in [(f"{tiny}:Missing", f"{tiny} has no Missing"),
                            (f"{tiny}:NotAModule", "NotAModule is not a torch.nn.Module subclass"),
                            ("no_such_package_xyz.models:Net", "cannot import no_such_package_xyz")]:
        with pytest.raises(UserError, match=message):
            wrapped(tiny, module=module).build(2)
    for fields, message in [({"module": "os.system('x')"}, r"module must look like \"package.module:Class\""),
                            ({"context_per_side": [2]}, "context_per_side must have 2 non-negative entries"),
                            ({"out_channels_arg": "channels", "kwargs": {"channels": 2}}, "kwargs must not set")]:
        with pytest.raises(ConfigError, match=r"arch\.json: " + message):
            wrapped(tiny, **fields)


class Custom:
    pass


def two_layers(second_out: int = 3, extra: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(1, 4, 3), nn.Conv2d(4, second_out, 1)] + ([nn.Conv2d(second_out, 2, 1)] if extra else [])
    return nn.Sequential(*layers)


def test_load_pretrained_by_name_and_shape(tmp_path):
    torch.manual_seed(0)
    saved = two_layers().state_dict()
    torch.save({**saved, "gone.weight": torch.zeros(2)}, tmp_path / "weights.pt")
    model = two_layers(second_out=5, extra=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_pretrained(model, str(tmp_path / "weights.pt"))
    assert report == {"loaded": ["0.weight", "0.bias"], "shape_mismatch": ["1.weight", "1.bias"],
                      "unexpected": ["gone.weight"], "missing": ["2.weight", "2.bias"]}
    state = model.state_dict()
    for name in report["loaded"]:
        assert torch.equal(state[name], saved[name])
    for name in report["shape_mismatch"] + report["missing"]:
        assert torch.equal(state[name], before[name])


def test_load_pretrained_from_a_checkpoint_with_a_prefix(tmp_path):
    import fsspec

    saved = two_layers().state_dict()
    with fsspec.open("memory://weights/checkpoint.pt", "wb") as f:
        torch.save({"iteration": 7, "model": {f"module.{k}": v for k, v in saved.items()}}, f)
    model = two_layers()
    report = load_pretrained(model, "memory://weights/checkpoint.pt")
    assert report["loaded"] == list(saved) and not report["unexpected"] and not report["missing"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())


def test_load_pretrained_refuses_anything_but_tensors(tmp_path):
    torch.save({"weight": torch.zeros(1), "hook": Custom()}, tmp_path / "pickle.pt")
    with pytest.raises(UserError, match=r"refused: it holds a \S*Custom object.*weights_only=True"):
        load_pretrained(two_layers(), str(tmp_path / "pickle.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a weights file")
    with pytest.raises(UserError, match="not a PyTorch weights file"):
        load_pretrained(two_layers(), str(tmp_path / "junk.pt"))
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(UserError, match="holds no state dict"):
        load_pretrained(two_layers(), str(tmp_path / "list.pt"))
    with pytest.raises(UserError, match="no such file"):
        load_pretrained(two_layers(), str(tmp_path / "missing.pt"))


@pytest.mark.parametrize("case", ["2d", "3d", "anisotropic", "tail"])
def test_a_fresh_unet_output_varies_in_space(case):
    """He initialisation: with PyTorch's default init a fresh U-Net's logits are nearly constant in space
    (spatial std about 0.001 on this input), which stalls the first hundreds of training steps."""
    torch.manual_seed(0)
    config = unet(**{**SHAPE_CASES[case], "num_fmaps": 6})
    output = run(config.build(out_channels=3).eval(), sizes(config, 1))
    spatial = output.flatten(2).std(dim=2)
    assert spatial.min() > 0.02, spatial.tolist()


def test_wrapped_modules_keep_their_own_initialisation(tiny):
    config = wrapped(tiny, out_channels_arg="out_channels")
    torch.manual_seed(5)
    model = config.build(3)
    torch.manual_seed(5)
    reference = sys.modules[tiny].Tiny(out_channels=3)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
