"""JSON configs validated into typed dataclasses.

``from_dict(Cls, data, source)`` builds ``Cls`` from parsed JSON, checking every key
against the dataclass's type hints: unknown keys, missing keys and wrong types raise a
:class:`~alfine.errors.ConfigError` that names the file and the key path
(``run.json: task.neighborhood[2]: expected a list of 3 int, got 'x'``). Nothing is ever
evaluated as code.

Tagged unions: a field typed as a :class:`Tagged` base class (or a ``Union`` of tagged
classes) takes a JSON object whose ``"kind"`` picks the subclass with that ``kind``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Union

from ..errors import ConfigError


class Tagged:
    """Base of config classes chosen by a ``"kind"`` key; subclasses set ``kind``."""

    kind: ClassVar[str] = ""

    @classmethod
    def kinds(cls) -> dict[str, type]:
        """Every concrete subclass by its kind (subclasses must have been imported)."""
        found: dict[str, type] = {}
        stack = [cls]
        while stack:
            klass = stack.pop()
            if klass.__dict__.get("kind"):
                found[klass.kind] = klass
            stack.extend(klass.__subclasses__())
        return found


def _describe(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool | type(None)) else type(value).__name__
    return text if len(text) < 60 else text[:57] + "..."


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " or ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} {_type_name(args[0])}"
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin is dict:
        return f"an object of {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "an object"
    return getattr(tp, "__name__", str(tp))


class _Reader:
    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str) -> typing.NoReturn:
        where = f"{self.source}: {path}" if path else self.source
        raise ConfigError(f"{where}: {message}")

    def value(self, tp: Any, data: Any, path: str) -> Any:
        origin = typing.get_origin(tp)
        if tp is Any:
            return data
        if isinstance(tp, type) and issubclass(tp, Tagged):
            return self.tagged(tp.kinds(), data, path, tp)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(tp, data, path)
        if origin in (Union, types.UnionType):
            return self.union(tp, data, path)
        if origin is Literal:
            if data not in typing.get_args(tp) or isinstance(data, bool) != any(
                isinstance(a, bool) for a in typing.get_args(tp)
            ):
                self.fail(path, f"expected {_type_name(tp)}, got {_describe(data)}")
            return data
        if origin in (list, tuple):
            return self.sequence(tp, data, path)
        if origin is dict:
            if not isinstance(data, Mapping):
                self.fail(path, f"expected {_type_name(tp)}, got {_describe(data)}")
            key_tp, value_tp = typing.get_args(tp)
            return {self.value(key_tp, k, _join(path, k)): self.value(value_tp, v, _join(path, k))
                    for k, v in data.items()}
        return self.scalar(tp, data, path)

    def scalar(self, tp: Any, data: Any, path: str) -> Any:
        ok = {
            bool: isinstance(data, bool),
            int: isinstance(data, int) and not isinstance(data, bool),
            float: isinstance(data, int | float) and not isinstance(data, bool),
            str: isinstance(data, str),
            type(None): data is None,
        }.get(tp)
        if ok is None:
            raise TypeError(f"config schema uses unsupported type {tp!r} at {path}")
        if not ok:
            self.fail(path, f"expected {_type_name(tp)}, got {_describe(data)}")
        return float(data) if tp is float else data

    def sequence(self, tp: Any, data: Any, path: str) -> Any:
        args = typing.get_args(tp)
        if not isinstance(data, list | tuple):
            self.fail(path, f"expected {_type_name(tp)}, got {_describe(data)}")
        if typing.get_origin(tp) is tuple and args and args[-1] is not Ellipsis:
            if len(data) != len(args):
                self.fail(path, f"expected {_type_name(tp)}, got {len(data)} entries")
            return tuple(self.value(a, d, f"{path}[{i}]") for i, (a, d) in enumerate(zip(args, data, strict=True)))
        item = args[0] if args else Any
        items = [self.value(item, d, f"{path}[{i}]") for i, d in enumerate(data)]
        return tuple(items) if typing.get_origin(tp) is tuple else items

    def union(self, tp: Any, data: Any, path: str) -> Any:
        options = typing.get_args(tp)
        if data is None and type(None) in options:
            return None
        options = [o for o in options if o is not type(None)]
        tagged = [o for o in options if isinstance(o, type) and issubclass(o, Tagged)]
        if tagged and len(tagged) == len(options):
            kinds: dict[str, type] = {}
            for option in tagged:
                kinds.update(option.kinds())
            return self.tagged(kinds, data, path, tp)
        for option in options:
            try:
                return self.value(option, data, path)
            except ConfigError:
                continue
        self.fail(path, f"expected {_type_name(tp)}, got {_describe(data)}")

    def tagged(self, kinds: dict[str, type], data: Any, path: str, tp: Any) -> Any:
        names = ", ".join(sorted(kinds))
        if not isinstance(data, Mapping):
            self.fail(path, f"expected an object with a \"kind\" ({names}), got {_describe(data)}")
        kind = data.get("kind")
        if kind is None:
            self.fail(path, f"missing key \"kind\" (one of {names})")
        if kind not in kinds:
            self.fail(_join(path, "kind"), f"unknown kind {_describe(kind)}; expected one of {names}")
        return self.dataclass(kinds[kind], {k: v for k, v in data.items() if k != "kind"}, path)

    def dataclass(self, cls: type, data: Any, path: str) -> Any:
        if not isinstance(data, Mapping):
            self.fail(path, f"expected an object, got {_describe(data)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            self.fail(_join(path, unknown[0]), f"unknown key; known keys are {', '.join(sorted(fields))}")
        values = {}
        for name, field in fields.items():
            if name in data:
                values[name] = self.value(hints[name], data[name], _join(path, name))
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                self.fail(_join(path, name), "missing key")
        try:
            return cls(**values)
        except (ValueError, TypeError) as e:  # a __post_init__ check of the values together
            self.fail(path, str(e))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def from_dict(cls: Any, data: Any, source: str = "<config>") -> Any:
    """``data`` (parsed JSON) as an instance of ``cls``; a :class:`ConfigError` names ``source`` and the key."""
    return _Reader(source).value(cls, data, "")


def parse_json(text: str | bytes, source: str) -> Any:
    """Parsed JSON; a syntax error names ``source``, the line and the column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def read_json(url: str) -> Any:
    """The parsed JSON file at ``url`` (a path or any fsspec URL)."""
    import fsspec

    try:
        with fsspec.open(url, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{url}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{url}: is a directory, not a JSON file") from None
    return parse_json(text, url)


def load(cls: Any, url: str) -> Any:
    """The config file at ``url`` as an instance of ``cls``."""
    return from_dict(cls, read_json(url), url)


def to_dict(obj: Any) -> Any:
    """The JSON form of a config (tagged classes carry their ``kind`` first); the inverse of :func:`from_dict`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"kind": obj.kind} if isinstance(obj, Tagged) else {}
        for field in dataclasses.fields(obj):
            if field.init:
                out[field.name] = to_dict(getattr(obj, field.name))
        return out
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj
