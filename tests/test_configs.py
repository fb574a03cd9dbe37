"""Configs: typed validation with errors naming file and key; the named config store."""

import dataclasses
import json
from typing import ClassVar, Literal, Optional, Union

import pytest

from alfine.configs import ConfigStore, Tagged, check_name, from_dict, load, to_dict
from alfine.errors import ConfigError, StoreError


class TaskConfig(Tagged):
    pass


@dataclasses.dataclass(kw_only=True)
class Affinities(TaskConfig):
    kind: ClassVar[str] = "affinities"
    neighborhood: list[tuple[int, int, int]]
    lsds: bool = False
    sigma: Optional[float] = None


@dataclasses.dataclass(kw_only=True)
class Distance(TaskConfig):
    kind: ClassVar[str] = "distance"
    scale: float = 80.0
    classes: list[str] = dataclasses.field(default_factory=lambda: ["mito"])


@dataclasses.dataclass(kw_only=True)
class Trainer:
    learning_rate: float = 1e-4
    batch_size: int = 1
    optimizer: Literal["adam", "sgd"] = "adam"


@dataclasses.dataclass(kw_only=True)
class Run:
    name: str
    task: TaskConfig
    trainer: Trainer = dataclasses.field(default_factory=Trainer)
    schedule: dict[str, int] = dataclasses.field(default_factory=dict)
    start: Union[Affinities, Distance, None] = None

    def __post_init__(self):
        if self.trainer.batch_size < 1:
            raise ValueError("trainer.batch_size must be at least 1")


GOOD = {
    "name": "r1",
    "task": {"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "lsds": True},
    "trainer": {"learning_rate": 1, "optimizer": "sgd"},
    "schedule": {"validate": 100},
}


def test_valid_config_becomes_typed_objects_and_round_trips():
    run = from_dict(Run, GOOD, "run.json")
    assert isinstance(run.task, Affinities)
    assert run.task.neighborhood == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    assert run.trainer.learning_rate == 1.0 and isinstance(run.trainer.learning_rate, float)
    assert run.trainer.optimizer == "sgd"
    data = to_dict(run)
    assert list(data["task"])[0] == "kind"
    assert from_dict(Run, json.loads(json.dumps(data)), "again.json") == run


@pytest.mark.parametrize(
    "change, message",
    [
        ({"nmae": "x"}, r"run\.json: nmae: unknown key; known keys are name, schedule, start, task, trainer"),
        ({"name": None}, r"run\.json: name: expected str, got null"),
        ({"task": {"kind": "affinities"}}, r"run\.json: task\.neighborhood: missing key"),
        ({"task": {"neighborhood": []}}, r"run\.json: task: missing key \"kind\" \(one of affinities, distance\)"),
        ({"task": {"kind": "lsd"}},
         r"run\.json: task\.kind: unknown kind \"lsd\"; expected one of affinities, distance"),
        ({"task": {"kind": "affinities", "neighborhood": [[1, 0, 0], [0, "a", 0]]}},
         r"run\.json: task\.neighborhood\[1\]\[1\]: expected int, got \"a\""),
        ({"task": {"kind": "affinities", "neighborhood": [[1, 0]]}},
         r"run\.json: task\.neighborhood\[0\]: expected a list of 3 int, got 2 entries"),
        ({"task": {"kind": "distance", "scale": True}}, r"run\.json: task\.scale: expected float, got true"),
        ({"trainer": {"batch_size": 1.5}}, r"run\.json: trainer\.batch_size: expected int, got 1\.5"),
        ({"trainer": {"optimizer": "adamw"}}, r"run\.json: trainer\.optimizer: expected \"adam\" or \"sgd\""),
        ({"trainer": {"batch_size": 0}}, r"run\.json: trainer\.batch_size must be at least 1"),
        ({"schedule": {"validate": "often"}}, r"run\.json: schedule\.validate: expected int"),
        ({"start": {"kind": "nope"}}, r"run\.json: start\.kind: unknown kind"),
        ({"task": [1, 2]}, r"run\.json: task: expected an object with a \"kind\""),
    ],
)
def test_errors_name_the_file_and_key_path(change, message):
    data = {k: v for k, v in {**GOOD, **change}.items()}
    with pytest.raises(ConfigError, match=message):
        from_dict(Run, data, "run.json")


def test_missing_top_level_key():
    with pytest.raises(ConfigError, match=r"run\.json: task: missing key"):
        from_dict(Run, {"name": "x"}, "run.json")


def test_load_reports_json_syntax_with_position(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "name": "x",\n  "task": }\n')
    with pytest.raises(ConfigError, match=r"bad\.json: invalid JSON at line 3 column 11"):
        load(Run, str(path))
    with pytest.raises(ConfigError, match="no such file"):
        load(Run, str(tmp_path / "absent.json"))


def test_config_text_is_never_evaluated(tmp_path):
    path = tmp_path / "evil.json"
    path.write_text(json.dumps({**GOOD, "name": "__import__('os').system('touch PWNED')"}))
    run = load(Run, str(path))
    assert run.name.startswith("__import__")
    assert not (tmp_path / "PWNED").exists()


# -- the store ----------------------------------------------------------------------------------


def test_store_saves_loads_and_lists(tmp_path):
    store = ConfigStore(str(tmp_path / "store"))
    run = from_dict(Run, GOOD, "run.json")
    assert store.save("runs", "r1", run) is True
    assert store.save("runs", "r1", run) is False  # the same config again: nothing to do
    store.save("runs", "a-0.1_b", {"x": 1})
    assert store.list("runs") == ["a-0.1_b", "r1"]
    assert store.list("tasks") == []
    assert store.load("runs", "r1", Run) == run
    assert store.load("runs", "a-0.1_b") == {"x": 1}
    assert not [p for p in (tmp_path / "store" / "runs").iterdir() if p.name.endswith(".tmp")]


def test_store_refuses_a_different_config_under_an_existing_name(tmp_path):
    store = ConfigStore(str(tmp_path))
    store.save("tasks", "t", {"kind": "distance", "scale": 80})
    with pytest.raises(StoreError, match="a different tasks config named 't' exists"):
        store.save("tasks", "t", {"kind": "distance", "scale": 40})
    assert store.load("tasks", "t")["scale"] == 80


def test_store_names_cannot_escape(tmp_path):
    store = ConfigStore(str(tmp_path / "store"))
    for name in ["../x", "a/b", "/etc/passwd", "s3://b/x", "..", ".hidden", "", "a b", "x" * 200, "a\\b"]:
        with pytest.raises(StoreError, match="invalid config name"):
            store.save("runs", name, {"x": 1})
        with pytest.raises(StoreError):
            store.load("runs", name)
    with pytest.raises(StoreError, match="invalid category"):
        store.save("../runs", "x", {"x": 1})
    assert not any(tmp_path.rglob("*.json"))
    assert check_name("run_1.v2") == "run_1.v2"


def test_load_of_unknown_name_lists_what_is_stored(tmp_path):
    store = ConfigStore(str(tmp_path))
    store.save("runs", "first", {"x": 1})
    with pytest.raises(StoreError, match=r"no runs config named 'second' \(stored: first\)"):
        store.load("runs", "second")


def test_store_on_s3(s3_bucket):
    store = ConfigStore(f"s3://{s3_bucket}/configs")
    assert store.save("runs", "r1", GOOD)
    assert store.list("runs") == ["r1"]
    assert store.load("runs", "r1") == GOOD
    with pytest.raises(StoreError, match="different"):
        store.save("runs", "r1", {**GOOD, "name": "other"})
