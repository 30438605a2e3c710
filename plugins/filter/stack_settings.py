"""stack_layer_specs: each layer role's declared settings; stack_unknown_settings: name the
stack_* variables the stack does not know (a misspelt setting such as stack_asg_max_szie would
otherwise be ignored without a word);
stack_format_each: a naming map pattern filled for several releases."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


def _role_options(roles_dir: str) -> dict[str, dict[str, Any]]:
    """Each stack role's argument spec options, by role (the stack role and its layers)."""
    options = {}
    for spec in sorted(Path(roles_dir).glob("stack*/meta/argument_specs.yml")):
        options[spec.parents[1].name] = yaml.safe_load(spec.read_text())["argument_specs"]["main"].get("options") or {}
    return options


def stack_settings(roles_dir: str) -> set[str]:
    """The stack's settings: the options of every stack role's argument spec (the layers'
    states included) and the keys of their defaults."""
    names: set[str] = set()
    for options in _role_options(roles_dir).values():
        names.update(options)
    for defaults in Path(roles_dir).glob("stack*/defaults/main.yml"):
        names.update(yaml.safe_load(defaults.read_text()) or {})
    return names


def stack_layer_specs(roles_dir: str) -> list[dict[str, Any]]:
    """Each layer role's argument spec options ({role, options}), for preflight to validate every
    layer's settings before any change."""
    specs = [{"role": role, "options": options}
             for role, options in _role_options(roles_dir).items() if role.startswith("stack_")]
    if not specs:
        raise ValueError(f"no layer role's argument spec under {roles_dir}")
    return specs


def stack_unknown_settings(names: Iterable[str], roles_dir: str) -> list[str]:
    """Each name that is not a setting (stack_settings) and not the stack's own (with `__`),
    with the closest setting when one is near ("x (did you mean y?)")."""
    known_names = sorted(stack_settings(roles_dir))
    names = [name for name in names if "__" not in name]
    problems = []
    for name in sorted(set(names) - set(known_names)):
        close = difflib.get_close_matches(name, known_names, n=1, cutoff=0.8)
        problems.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return problems


def stack_format_each(values: Iterable[Any], pattern: str) -> list[str]:
    """The naming map's pattern filled with each value (a pair fills two %s): the names of
    a resource kind across releases, such as every colour's target group."""
    return [pattern % (tuple(value) if isinstance(value, (list, tuple)) else (value,)) for value in values]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"stack_unknown_settings": stack_unknown_settings, "stack_format_each": stack_format_each,
                "stack_settings": lambda roles_dir: sorted(stack_settings(roles_dir)),
                "stack_layer_specs": stack_layer_specs}
