"""docs/roles.md's variable tables match the roles' meta/argument_specs.yml (src/nodestack/role_docs.py),
and each spec's defaults match the role's defaults/main.yml."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodestack import cli, role_docs

ROLES = sorted(path.parents[1].name for path in role_docs.ROLES_DIR.glob("*/meta/argument_specs.yml"))


def _copy_specs(roles_dir: Path) -> None:
    """The repository's specs alone, in a tree of the test's own."""
    for role in ROLES:
        spec = Path("meta/argument_specs.yml")
        (roles_dir / role / spec.parent).mkdir(parents=True)
        shutil.copy(role_docs.ROLES_DIR / role / spec, roles_dir / role / spec)


def test_the_doc_is_up_to_date() -> None:
    text = role_docs.DOC.read_text()
    assert role_docs.render(text) == text, "docs/roles.md is out of date: run `nodestack role-docs`"


def test_a_new_option_shows_up_in_its_role_table(tmp_path: Path) -> None:
    _copy_specs(tmp_path)
    spec_file = tmp_path / "base" / "meta" / "argument_specs.yml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["argument_specs"]["main"]["options"]["base_motd"] = {
        "type": "list", "elements": "str", "default": ["a", "no"], "description": "Lines | of <the> motd."}
    spec_file.write_text(yaml.safe_dump(spec))
    text = role_docs.DOC.read_text()

    rendered = role_docs.render(text, tmp_path)

    assert '| `base_motd` | list of str | `[a, "no"]` | Lines \\| of \\<the> motd. |' in rendered
    assert role_docs.blocks(rendered)["base"] != role_docs.blocks(text)["base"]
    assert role_docs.stale_roles(text, tmp_path) == ["base"]


def test_a_role_without_a_table_is_refused_by_name(tmp_path: Path) -> None:
    _copy_specs(tmp_path)
    (tmp_path / "extra" / "meta").mkdir(parents=True)
    (tmp_path / "extra" / "meta" / "argument_specs.yml").write_text(
        "argument_specs: {main: {options: {extra_x: {type: int, default: 1, description: X.}}}}\n")

    with pytest.raises(role_docs.RoleDocsError, match=r"no table for role extra: add the lines `<!-- role-vars: extra"):
        role_docs.render(role_docs.DOC.read_text(), tmp_path)


def test_a_table_without_a_role_is_refused_by_name(tmp_path: Path) -> None:
    _copy_specs(tmp_path)
    text = role_docs.DOC.read_text() + "\n<!-- role-vars: gone -->\n<!-- /role-vars -->\n"

    with pytest.raises(role_docs.RoleDocsError, match="table for role gone, which has no"):
        role_docs.render(text, tmp_path)


def test_check_names_the_stale_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    current = role_docs.DOC.read_text()
    doc = tmp_path / "roles.md"
    doc.write_text(current.replace("| `base_sshd_port` | int | `22` |", "| `base_sshd_port` | int | `2222` |"))
    monkeypatch.setattr(role_docs, "DOC", doc)

    assert cli.main(["role-docs", "--check"]) == 1
    assert "docs/roles.md is out of date: run `nodestack role-docs` (tables of base)" in capsys.readouterr().err
    assert cli.main(["role-docs"]) == 0
    assert doc.read_text() == current
    assert cli.main(["role-docs", "--check"]) == 0


def _template(value: Any) -> bool:
    return "{{" in yaml.safe_dump(value)


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_match_defaults_main(role: str) -> None:
    options = role_docs.load_specs()[role]
    defaults = yaml.safe_load((role_docs.ROLES_DIR / role / "defaults" / "main.yml").read_text()) or {}
    if role.startswith("stack_"):  # a layer declares its settings; their defaults are the stack role's
        common = yaml.safe_load((role_docs.ROLES_DIR / "stack" / "defaults" / "main.yml").read_text())
        defaults = {**common, **defaults}
    # Jinja defaults (computed from other settings) cannot be written in a spec: only the literal ones are compared.
    names = {name for name, option in options.items() if "default" in option}
    names |= {name for name, value in defaults.items() if name in options and not _template(value)}
    mismatches = [f"{name}: spec {options[name].get('default', '(none)')!r}, defaults/main.yml "
                  f"{defaults.get(name, '(none)')!r}" for name in sorted(names)
                  if not _template(defaults.get(name)) and options[name].get("default") != defaults.get(name)]
    assert not mismatches, f"roles/{role}: meta/argument_specs.yml and defaults/main.yml disagree: {mismatches}"


def test_each_stack_setting_is_declared_in_one_role_only() -> None:
    specs = role_docs.load_specs()
    declared = [name for role, options in specs.items() if role == "stack" or role.startswith("stack_")
                for name in options]
    assert sorted(name for name in set(declared) if declared.count(name) > 1) == []
    # a layer's own settings are its spec's, not the common role's
    assert "stack_log_retention_days" in specs["stack_logs"] and "stack_log_retention_days" not in specs["stack"]
    assert {"stack_vpc_cidr", "stack_nat_gateways"} <= set(specs["stack_network"])


def test_the_settings_left_out_of_the_converged_inputs_are_declared() -> None:
    """A renamed setting must not stay in the list under its old name (and then be hashed)."""
    unhashed = yaml.safe_load((role_docs.ROLES_DIR / "stack/vars/main.yml").read_text())["stack__converged_unhashed"]
    declared = {name for role, options in role_docs.load_specs().items() if role.startswith("stack")
                for name in options}
    declared |= set(yaml.safe_load((role_docs.ROLES_DIR / "stack/defaults/main.yml").read_text()))  # stack_aws
    assert unhashed and sorted(set(unhashed) - declared) == []
