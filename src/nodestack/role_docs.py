"""The role variable tables in docs/roles.md, generated from each role's meta/argument_specs.yml."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from nodestack.paths import REPO_ROOT

ROLES_DIR = REPO_ROOT / "roles"
DOC = REPO_ROOT / "docs" / "roles.md"
_BLOCK = re.compile(r"(?P<open><!-- role-vars: (?P<role>[\w-]+) -->\n)(?P<body>.*?)(?P<close><!-- /role-vars -->)",
                    re.DOTALL)
# ansible-doc's markup (C(code), O(option), V(value), I(italic)): shown as code in Markdown
_MARKUP = re.compile(r"\b[CIOV]\(([^)]*)\)")


class RoleDocsError(RuntimeError):
    """docs/roles.md and the roles' specs do not match up (a table without a role, or the reverse)."""


def load_specs(roles_dir: Path = ROLES_DIR) -> dict[str, dict[str, Any]]:
    """Each role's argument_specs.main.options, by role name."""
    specs = {}
    for path in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        main = yaml.safe_load(path.read_text())["argument_specs"]["main"]
        specs[path.parents[1].name] = main.get("options") or {}
    return specs


class _Dumper(yaml.SafeDumper):
    # Double quotes where YAML needs quotes, as the roles' YAML files write them ("", "no").
    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        return '"' if style == "'" else style


def _flow(value: Any) -> str:
    text: str = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, width=10**6, sort_keys=False)
    return text.removesuffix("\n...\n").strip()  # a plain scalar's dump ends the document


def _type(option: dict[str, Any]) -> str:
    choices = ", ".join(f"`{_flow(choice)}`" for choice in option.get("choices", []))
    if option.get("type") == "list":
        kind = f"list of {option['elements']}" if "elements" in option else "list"
        return f"{kind}, each one of {choices}" if choices else kind
    return f"one of {choices}" if choices else str(option.get("type", "str"))


def _default(option: dict[str, Any]) -> str:
    if option.get("required"):
        return "required"
    return f"`{_flow(option['default'])}`" if "default" in option else "-"


def _meaning(option: dict[str, Any]) -> str:
    description = option.get("description", "")
    lines = description if isinstance(description, list) else [str(description)]
    parts = _MARKUP.split(" ".join(" ".join(lines).split()))
    # Escaped so that GitHub shows the spec's words: `<service>` would be taken for an HTML tag, `*` for emphasis.
    return "".join(f"`{part}`" if index % 2 else re.sub(r"([<*])", r"\\\1", part) for index, part in enumerate(parts))


def _rows(options: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for name, option in options.items():
        cells = (f"`{prefix}{name}`", _type(option), _default(option), _meaning(option))
        # A table cell ends at any unescaped `|`, even inside a code span.
        yield "| " + " | ".join(cell.replace("|", r"\|") for cell in cells) + " |"
        if option.get("options"):
            yield from _rows(option["options"], f"{prefix}{name}{'[]' if option.get('type') == 'list' else ''}.")


def table(options: dict[str, Any]) -> str:
    """The Markdown table of one role's options, sub-options as `parent[].child` rows."""
    return "\n".join(["| variable | type | default | meaning |", "| --- | --- | --- | --- |", *_rows(options)])


def blocks(text: str) -> dict[str, str]:
    """The body of each marked block in the doc, by role."""
    return {match["role"]: match["body"] for match in _BLOCK.finditer(text)}


def render(text: str, roles_dir: Path = ROLES_DIR) -> str:
    """The doc with every marked block's body replaced by the role's generated table."""
    specs = load_specs(roles_dir)
    marked = blocks(text)
    for role in sorted(specs.keys() - marked.keys()):
        raise RoleDocsError(f"docs/roles.md has no table for role {role}: add the lines `<!-- role-vars: {role} -->` "
                            f"and `<!-- /role-vars -->` under its heading, then run `nodestack role-docs`")
    for role in sorted(marked.keys() - specs.keys()):
        raise RoleDocsError(f"docs/roles.md has a table for role {role}, which has no "
                            f"roles/{role}/meta/argument_specs.yml: remove its role-vars block")
    # Blank lines around the table so that no Markdown renderer reads a marker as part of it.
    return _BLOCK.sub(lambda match: f"{match['open']}\n{table(specs[match['role']])}\n\n{match['close']}", text)


def stale_roles(text: str, roles_dir: Path = ROLES_DIR) -> list[str]:
    """Roles whose table in the doc differs from the generated one."""
    fresh = blocks(render(text, roles_dir))
    return [role for role, body in blocks(text).items() if fresh[role] != body]
