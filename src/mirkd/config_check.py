"""Config files read strictly and checked against config.schema.yaml, in short messages.

YAML keeps the last of two equal keys silently, and a schema error printed by jsonschema
carries the whole schema. Here a key given twice is an error naming both lines, a syntax
error names its line, and every schema error is one line: the key's dotted path and the
cause (an unknown key with the keys allowed there). The Snakefile calls `check_config_files`
and `check_config` before Snakemake's `validate` fills the defaults in; `mirkd check-config`
runs the same checks on a file (Snakemake parses `--configfile` itself and reports a YAML
syntax error without its line).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from mirkd.errors import ConfigError, os_cause

_MAX_CAUSE = 200  # characters of a value quoted in a schema error


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) config file; ConfigError naming the file and line for a
    syntax error, a key given twice in one mapping, or a top level that is not a mapping."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read this config file: {os_cause(exc)}") from exc

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses a key given twice in one mapping."""

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first:
                raise ConfigError(
                    f"{path}:{line}: key {key!r} is given twice in one mapping (first on line "
                    f"{first[key]}); YAML would keep the last silently: keep one"
                )
            first[key] = line
        return loader.construct_mapping(node, deep=True)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        data = yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        column = f" (column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem}{column}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML syntax error: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file holds keys at its top level, not a {type(data)}")
    return data


def check_config_files(paths: Iterable[str | Path]) -> None:
    """Each config file reads strictly (`read_config_file`)."""
    for path in paths:
        read_config_file(path)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_CAUSE else text[: _MAX_CAUSE - 3] + "..."


def schema_errors(
    config: Mapping[str, Any], schema: Mapping[str, Any], partial: bool = False
) -> list[str]:
    """Every way `config` breaks `schema`, one short line each: "<dotted key>: <cause>".
    `partial`: the config is one file of several (`--configfile` over config.yaml), so a
    missing key is no error."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    lines = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = sorted(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - set(known), key=str):
                key_path = f"{where}.{key}" if where else str(key)
                lines.append(f"{key_path}: unknown key (known here: {', '.join(known)})")
            continue
        if error.validator == "required":
            if partial:
                continue
            lines.append(f"{where or '(top level)'}: {error.message}")
            continue
        if error.validator == "type":
            cause = f"{_short(error.instance)} is not of type {_short(error.validator_value)}"
        elif error.validator == "enum":
            options = ", ".join(map(repr, error.validator_value))
            cause = f"{_short(error.instance)} is not one of {options}"
        else:
            cause = (
                error.message if len(error.message) <= _MAX_CAUSE else error.message[:197] + "..."
            )
        lines.append(f"{where or '(top level)'}: {cause}")
    return lines


def check_config(
    config: Mapping[str, Any], schema_file: str | Path, partial: bool = False, name: str = ""
) -> None:
    """ConfigError listing every schema error of `config` (the config read from `name`, if
    given), one line each (see schema_errors)."""
    schema = yaml.safe_load(Path(schema_file).read_text(encoding="utf-8"))
    lines = schema_errors(config, schema, partial)
    if lines:
        what = f"{name}: the config" if name else "the config"
        raise ConfigError(
            f"{what} does not fit {Path(schema_file).name} ({len(lines)} error(s)):\n  "
            + "\n  ".join(lines)
        )


def with_schema_defaults(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `config` with the schema's defaults filled in where a key is missing, at every
    level of nested objects that exist or get a default, following local `$ref`s and `allOf`
    in the schema's own order (what Snakemake's `validate(..., set_default=True)` does, without
    Snakemake: for code that runs the library outside a workflow, such as the GPU check)."""
    filled = copy.deepcopy(dict(config))
    _fill_defaults(filled, schema, schema)
    return filled


def _fill_defaults(instance: dict[str, Any], schema: Mapping[str, Any], root: Mapping) -> None:
    """Fill `instance` in place from `schema` (a part of `root`, which `$ref`s point into)."""
    for keyword, value in schema.items():
        if keyword == "$ref":
            target: Any = root
            for part in value.removeprefix("#/").split("/"):
                target = target[part]
            _fill_defaults(instance, target, root)
        elif keyword == "allOf":
            for part in value:
                _fill_defaults(instance, part, root)
        elif keyword == "properties":
            for key, sub in value.items():
                if key not in instance and "default" in sub:
                    instance[key] = copy.deepcopy(sub["default"])
                if isinstance(instance.get(key), dict):
                    _fill_defaults(instance[key], sub, root)


def check_config_file(path: str | Path, schema_file: str | Path) -> None:
    """One config file read strictly and its keys checked (`mirkd check-config`); a key it
    leaves out is no error (Snakemake merges --configfile over config.yaml)."""
    check_config(read_config_file(path), schema_file, partial=True, name=str(path))
