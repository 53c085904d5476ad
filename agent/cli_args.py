"""Command-line flags and YAML config files from the config dataclasses, by transformers'
`HfArgumentParser` (the parser TRL's own CLI builds on).

`ConfigParser(prog, groups)` adds one flag per field of each dataclass in `groups` (help text
and ranges from the field's metadata, choices from `Literal` types), plus `--config FILE.yaml`
(flat `field: value` pairs, overridden by flags given on the command line) and `--preset NAME`
(a YAML file shipped in `agent/presets/`). `parse(argv)` returns one validated instance per
group; every mistake (an unknown flag, a bad number, a value out of range, an unknown choice, a
bad config file) is one `UserError` naming the flag, raised before any work starts.

Not covered: what the commands do with the settings (agent.cli_solve, evals.cli, ...).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

from agent.config import SPEC, RolloutConfig, SolveConfig, spec_of, validate
from agent.errors import UserError
from sandbox.errors import one_line_error

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def _base_type(tp: Any) -> Any:
    """X for Optional[X]; tp otherwise."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


class ConfigParser(HfArgumentParser):
    """An HfArgumentParser whose errors are one `UserError`, with --config/--preset YAML files."""

    def __init__(self, prog: str, groups: Sequence[type], description: str = "", **defaults: Any) -> None:
        self.groups = tuple(groups)
        super().__init__(list(self.groups), prog=prog, description=description,  # type: ignore[arg-type]
                         allow_abbrev=False)
        files = self.add_argument_group("config files")
        files.add_argument("--config", metavar="FILE.yaml", help="settings from a YAML file of `field: value` "
                           "pairs (flags given on the command line win)")
        files.add_argument("--preset", metavar="NAME", help=f"a shipped settings file: {', '.join(presets()) or '-'}")
        for action in self._actions:  # show the dashed spelling (--max-tokens) first in usage and help
            action.option_strings = sorted(action.option_strings, key=lambda o: (o.startswith("--") and "_" in o, o.startswith("--no")))
        if defaults:
            self.set_defaults(**defaults)

    @staticmethod
    def _parse_dataclass_field(parser: Any, field: dataclasses.Field) -> None:
        tp = field.type
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return  # a nested group (SolveConfig.rollout) is its own set of flags
        s = spec_of(field)
        f = copy.copy(field)
        f.metadata = types.MappingProxyType({k: v for k, v in field.metadata.items() if k != SPEC})
        help_text = f.metadata.get("help")
        if s.positional:
            nargs = None if s.required else "?"
            parser.add_argument(field.name, nargs=nargs, default=field.default, help=help_text,
                                metavar=field.name.upper())
        elif s.required:
            parser.add_argument(*(s.flags or ("--" + field.name.replace("_", "-"),)), dest=field.name,
                                type=_base_type(tp), required=True, help=help_text)
        elif s.repeat:
            flags = s.flags or ("--" + field.name.replace("_", "-"),)
            parser.add_argument(*flags, dest=field.name, action="append", default=None, help=help_text)
        elif _base_type(tp) is bool:  # a plain switch (HfArgumentParser's `--x [BOOL]` would eat a positional)
            dashed = "--" + field.name.replace("_", "-")
            parser.add_argument(*(s.flags or (dashed,)), dest=field.name, action="store_true",
                                default=bool(field.default), help=help_text)
            if field.default is True:
                parser.add_argument("--no-" + field.name.replace("_", "-"), dest=field.name, action="store_false",
                                    help=f"turn off {dashed}")
        elif s.flags:
            parser.add_argument(*s.flags, dest=field.name, type=_base_type(tp), default=field.default, help=help_text)
        else:
            HfArgumentParser._parse_dataclass_field(parser, f)

    def error(self, message: str) -> typing.NoReturn:  # argparse's errors become one line
        raise UserError(one_line_error(message))

    def parse(self, argv: Sequence[str]) -> dict[type, Any]:
        """Flags (after any --config/--preset file) -> {group class: validated instance}."""
        argv = list(argv)
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        pre.add_argument("--config")
        pre.add_argument("--preset")
        known, _ = pre.parse_known_args(argv)
        tokens: list[str] = []
        for flag, path in (("--preset", known.preset and preset_path(known.preset)),
                           ("--config", known.config and Path(known.config))):
            if path:
                where = f"{flag} {path if flag == '--config' else known.preset}"
                file_tokens = yaml_tokens(path, where, set(self._option_string_actions))
                unknown = [t for t in file_tokens[::2] if t not in self._option_string_actions]
                if unknown:
                    raise UserError(f"{where}: unknown setting {unknown[0][2:]!r}")
                tokens += file_tokens
        tokens = [t for i, t in enumerate(tokens) if t or i % 2 == 0]  # switches carry no value
        try:
            return build_groups(self.groups, self.parse_args(tokens + argv))
        except UserError as e:  # a bad value that came from a settings file: say which file
            flag = str(e).split(":", 1)[0]
            sources = [f for f, p in (("--preset", known.preset), ("--config", known.config)) if p]
            if flag in tokens[::2] and flag not in argv and sources:
                raise UserError(f"{e} (from {sources[-1]} {known.config or known.preset})") from None
            raise


def build_groups(groups: Sequence[type], ns: argparse.Namespace) -> dict[type, Any]:
    """One validated instance per group from a parsed namespace (SolveConfig gets the RolloutConfig)."""
    out: dict[type, Any] = {}
    for cls in groups:
        kwargs = {}
        for f in dataclasses.fields(cls):
            if not f.init or not hasattr(ns, f.name):
                continue
            value = getattr(ns, f.name)
            if spec_of(f).repeat:
                value = tuple(value or ())
            kwargs[f.name] = value
        out[cls] = cls(**kwargs)
    if SolveConfig in out and RolloutConfig in out:
        out[SolveConfig] = dataclasses.replace(out[SolveConfig], rollout=out[RolloutConfig])
    for obj in out.values():
        validate(obj)
    return out


BUILTIN_MODEL_PRESET = "builtin-model"


def with_builtin_defaults(argv: Sequence[str]) -> list[str]:
    """argv with the built-in model's defaults first (short budgets that fit a 135M model) when
    neither --model nor --server nor a settings file names another model; given flags still win."""
    argv = list(argv)
    named = {"--model", "--server", "--config", "--preset"}
    if any(a.split("=")[0] in named for a in argv):
        return argv
    return ["--preset", BUILTIN_MODEL_PRESET, *argv]


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")) if PRESETS_DIR.is_dir() else []


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"--preset: unknown preset {name!r} (choose from {', '.join(presets()) or 'none'})")
    return path


def yaml_tokens(path: Path, where: str, switches: set[str] | None = None) -> list[str]:
    """A flat YAML mapping of settings as command-line tokens (so argparse types and checks apply)."""
    import yaml

    from agent.paths import read_text

    try:
        data = yaml.safe_load(read_text(str(path), where.split()[0]))
    except yaml.YAMLError as e:
        raise UserError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of `field: value` pairs")
    tokens: list[str] = []
    for key, value in data.items():
        flag = "--" + str(key).replace("_", "-")
        if isinstance(value, bool):  # a switch: --x, or --no-x where the field is on by default
            off = "--no-" + str(key).replace("_", "-")
            tokens += [flag, ""] if value else ([off, ""] if switches and off in switches else [])
            continue
        for v in value if isinstance(value, list) else [value]:
            tokens += [flag, _token(v)]
    return tokens


def _token(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        import json

        return json.dumps(value)
    return str(value)
