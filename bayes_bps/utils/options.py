"""One options system for every command: a dataclass whose fields carry their help and range.

Each command declares its options once, as fields made by `option`:

    @dataclass
    class PretrainOptions:
        steps: int = option(4000, "training steps", low=1)
        lr: float = option(1e-3, "peak AdamW learning rate", above=0)

and gets from that one declaration its flags (`parse`), its config files (`from_mapping`, for
YAML/TOML/JSON, with values converted to the field's type, so YAML's `lr: 1e-3` string is a
float), its range checks (`check`, run by both) and its JSON record (`to_json`). A field whose
type is itself such a dataclass (the fit's priors) is a nested group: its flags sit beside the
others, and the JSON record nests it. `validate()`, if a class defines it, checks what one field
alone cannot (an option that needs another).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import tomllib
import yaml

_REQUIRED = dataclasses.MISSING


def option(default: Any = _REQUIRED, help: str = "", *, low: float | None = None,
           above: float | None = None, high: float | None = None, choices: Collection | None = None,
           flags: tuple[str, ...] | None = None, positional: bool = False, repeat: bool = False):
    """A dataclass field with its help text and its allowed values.

    low / above / high: value >= low, > above, <= high (each element of a list; None passes).
    choices: the allowed values. flags: the command-line spellings (default: --field-name).
    positional: a positional argument. repeat: a list given by repeating the flag.
    A list or dict default is copied for every instance.
    """
    metadata = {"help": help, "low": low, "above": above, "high": high, "choices": choices,
                "flags": flags, "positional": positional, "repeat": repeat}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class OptionError(ValueError):
    """An option is unknown, of the wrong type, or out of range; the message names it."""


# ---------------------------------------------------------------------------------------------
# Types


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None`, else (kind, False)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(kind) if member is not type(None)]
        if len(members) == 1 and len(typing.get_args(kind)) == 2:
            return members[0], True
    return kind, False


def _is_group(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _convert(value: Any, kind: Any, name: str) -> Any:
    """`value` as a `kind` (int, float, str, bool, Path, list[...], X | None); OptionError if not."""
    inner, optional = _unwrap_optional(kind)
    if value is None:
        if optional:
            return None
        raise OptionError(f"{name} cannot be empty (null)")
    origin = typing.get_origin(inner)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            value = [value]
        (element,) = typing.get_args(inner)[:1]
        return [_convert(item, element, name) for item in value]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise OptionError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise OptionError(f"{name} must be true or false, got {value!r}")
    if inner in (int, float):
        if isinstance(value, bool):
            raise OptionError(f"{name} must be a number, got {value!r}")
        try:
            number = inner(value) if isinstance(value, str) else value
        except ValueError:
            raise OptionError(f"{name} must be {'an integer' if inner is int else 'a number'}, "
                              f"got {value!r}") from None
        if inner is int and (not isinstance(number, int) and not float(number).is_integer()):
            raise OptionError(f"{name} must be an integer, got {value!r}")
        return inner(number)
    if inner is Path:
        return Path(value)
    if inner is str:
        return str(value)
    return value


# ---------------------------------------------------------------------------------------------
# Checks


def _flag(field: dataclasses.Field) -> str:
    flags = field.metadata.get("flags")
    if flags:
        return flags[0]
    return field.name if field.metadata.get("positional") else "--" + field.name.replace("_", "-")


def check(options: Any) -> Any:
    """Raise OptionError naming the first option out of range; return `options`."""
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if dataclasses.is_dataclass(value):
            check(value)
            continue
        meta, flag = field.metadata, _flag(field)
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            choices = meta.get("choices")
            if choices is not None and item not in choices:
                raise OptionError(f"{flag} must be one of {', '.join(map(str, choices))}; got {item!r}")
            if meta.get("low") is not None and not item >= meta["low"]:
                raise OptionError(f"{flag} must be >= {meta['low']:g}; got {item}")
            if meta.get("above") is not None and not item > meta["above"]:
                raise OptionError(f"{flag} must be > {meta['above']:g}; got {item}")
            if meta.get("high") is not None and not item <= meta["high"]:
                raise OptionError(f"{flag} must be <= {meta['high']:g}; got {item}")
    validate = getattr(options, "validate", None)
    if validate is not None:
        try:
            validate()
        except OptionError:
            raise
        except ValueError as error:  # a registry's own message, e.g. an unknown domain
            raise OptionError(str(error)) from None
    return options


# ---------------------------------------------------------------------------------------------
# Mappings: config files and JSON records


def _keys(cls: type) -> dict[str, tuple[str, ...]]:
    """Every key a mapping may use -> the path of fields it sets. Config files use the flag
    names (dashes or underscores) flat; JSON records nest groups under their field name."""
    keys: dict[str, tuple[str, ...]] = {}
    types_ = _field_types(cls)
    for field in dataclasses.fields(cls):
        kind = _unwrap_optional(types_[field.name])[0]
        if _is_group(kind):
            keys[field.name] = (field.name,)
            for key, path in _keys(kind).items():
                keys.setdefault(key, (field.name, *path))
            continue
        keys[field.name] = (field.name,)
        for flag in field.metadata.get("flags") or ():
            keys[flag.lstrip("-").replace("-", "_")] = (field.name,)
    return keys


def from_mapping(cls: type, values: Mapping[str, Any], source: str | None = None, *,
                 base: Any = None) -> Any:
    """An instance of `cls` from `values` (flat flag names or nested groups), converted to the
    fields' types and checked. Keys not given keep `base`'s values, or the defaults. Errors
    start with `source` (a file name), when given."""
    updates: dict[tuple[str, ...], Any] = {}

    def collect(mapping: Mapping[str, Any], prefix: tuple[str, ...], owner: type) -> None:
        owner_keys, owner_types = _keys(owner), _field_types(owner)
        for key, value in mapping.items():
            name = str(key).replace("-", "_")
            if name not in owner_keys:
                raise OptionError(f"unknown option {key!r}; known options are {sorted(owner_keys)}")
            path = owner_keys[name]
            kind = _unwrap_optional(owner_types[path[0]])[0]
            if len(path) == 1 and _is_group(kind) and isinstance(value, Mapping):
                collect(value, prefix + path, kind)
            else:
                updates[prefix + path] = value

    try:
        collect(values, (), cls)
        return check(_build(cls, base, updates))
    except OptionError as error:
        raise OptionError(f"{source}: {error}" if source else str(error)) from None


_UNSET = object()


def _build(cls: type, base: Any, updates: Mapping[tuple[str, ...], Any]) -> Any:
    """`cls` with the values at the field paths of `updates` (converted), the rest from `base`
    (or the defaults when `base` is None)."""
    types_ = _field_types(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        kind = _unwrap_optional(types_[field.name])[0]
        given = updates.get((field.name,), _UNSET)
        nested = {path[1:]: value for path, value in updates.items() if path[0] == field.name and len(path) > 1}
        if given is not _UNSET:
            is_instance = _is_group(kind) and isinstance(given, kind)
            values[field.name] = given if is_instance else _convert(given, types_[field.name], _flag(field))
        elif nested:
            values[field.name] = _build(kind, getattr(base, field.name) if base is not None else None, nested)
        elif base is not None:
            values[field.name] = getattr(base, field.name)
    missing = [_flag(f) for f in dataclasses.fields(cls) if f.name not in values and _required(f)]
    if missing:
        raise OptionError(f"missing required options {missing}")
    return cls(**values)


def value_of(options: Any, name: str) -> Any:
    """The value of option `name` (a field of `options` or of one of its groups)."""
    path = _keys(type(options)).get(name.replace("-", "_"))
    if path is None:
        raise OptionError(f"unknown option {name!r}")
    value = options
    for part in path:
        value = getattr(value, part)
    return value


def read_config(path: Path) -> dict:
    """The mapping in a YAML, TOML or JSON file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix == ".json":
            values = json.loads(text)
        else:
            values = yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise OptionError(f"{path}: cannot parse: {error}") from None
    if not isinstance(values, dict):
        raise OptionError(f"{path}: expected a mapping of option names to values")
    return values


def load(cls: type, path: Path) -> Any:
    """Options from a file written by `write` (or any config file)."""
    return from_mapping(cls, read_config(path), str(path))


def to_dict(options: Any) -> dict:
    """A JSON-ready dict: groups nested, paths as strings."""
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return value

    return {key: plain(value) for key, value in dataclasses.asdict(options).items()}


def to_json(options: Any) -> str:
    return json.dumps(to_dict(options), indent=2) + "\n"


def write(options: Any, path: Path) -> Path:
    """The resolved options as JSON at `path` (the record next to what a command produces)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(options))
    return path


# ---------------------------------------------------------------------------------------------
# Command lines


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not _REQUIRED:
        return field.default_factory()
    return field.default


def _required(field: dataclasses.Field) -> bool:
    return field.default is _REQUIRED and field.default_factory is _REQUIRED


_ABSENT = object()  # an optional positional argument that was not given


def _add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    types_ = _field_types(cls)
    for field in dataclasses.fields(cls):
        kind, _ = _unwrap_optional(types_[field.name])
        if _is_group(kind):
            _add_arguments(parser, kind)
            continue
        meta, default = field.metadata, _default(field)
        text = meta.get("help", "")
        if not _required(field) and default is not None and not isinstance(default, bool):
            text += f" [{' '.join(map(str, default)) if isinstance(default, list) else default}]"
        arguments: dict[str, Any] = {"help": text}
        if meta.get("choices") is not None:  # shown here, checked by `check` with the others
            arguments["metavar"] = "{" + ",".join(map(str, meta["choices"])) + "}"
        origin = typing.get_origin(kind)
        element = typing.get_args(kind)[0] if origin in (list, tuple) else kind
        if kind is bool:
            arguments["action"] = argparse.BooleanOptionalAction if default is True else "store_true"
            arguments.pop("metavar", None)
        else:
            arguments["type"] = {int: int, float: float, Path: Path}.get(element, str)
            if origin in (list, tuple):
                if meta.get("repeat"):
                    arguments["action"] = "append"
                else:
                    arguments["nargs"] = "+"
        if meta.get("positional"):
            if not _required(field):  # argparse fills an absent "?" positional with its default
                arguments.update(nargs="?", default=_ABSENT)
            parser.add_argument(field.name, **arguments)
        else:
            parser.add_argument(*(meta.get("flags") or (_flag(field),)), dest=field.name,
                                required=_required(field), **arguments)


def build_parser(cls: type, prog: str, description: str) -> argparse.ArgumentParser:
    """A parser whose flags default to 'not given', so config values survive unless overridden."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     argument_default=argparse.SUPPRESS)
    _add_arguments(parser, cls)
    return parser


def parse(cls: type, argv: list[str] | None, prog: str, description: str, *,
          switches: Mapping[str, str] = types.MappingProxyType({}),
          config_flag: bool = False) -> tuple[Any, dict]:
    """Options from the command line (and a `--config` file, which flags override).

    `switches` are extra store-true flags of the command itself (name -> help), such as
    --resume; they are returned with `explicit`, the names of the options given as flags.
    A malformed command line exits as argparse does; a value out of range raises OptionError
    naming the option (and the config file), for the command to report.
    """
    parser = build_parser(cls, prog, description)
    if config_flag:
        parser.add_argument("--config", type=Path, help="YAML or TOML file of options; flags override it")
    for name, text in switches.items():
        parser.add_argument("--" + name.replace("_", "-"), action="store_true", dest=name, help=text)
    given = {name: value for name, value in vars(parser.parse_args(argv)).items() if value is not _ABSENT}
    flags = {name: given.pop(name, False) for name in switches}
    config = given.pop("config", None)
    base = None if config is None else from_mapping(cls, read_config(config), str(config))
    flags["explicit"] = set(given)
    return from_mapping(cls, given, base=base), flags
