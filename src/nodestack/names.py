"""The naming map's entries the Python side needs (the bake's AMI tags, SSM parameter and
pruning), read from the one map the playbooks use: roles/stack/vars/main.yml."""

from __future__ import annotations

import functools
import re
from typing import Any

import jinja2
import yaml

from nodestack.paths import REPO_ROOT

NAMING_MAP = REPO_ROOT / "roles" / "stack" / "vars" / "main.yml"
# stack_app_name as roles/stack/tasks/checks.yml allows it: every name of the map starts with it
APP_NAME = re.compile(r"[a-z][a-z0-9-]{1,30}")


@functools.cache
def _map() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(NAMING_MAP.read_text())
    return loaded


def project() -> str:
    """The value of every resource's Project tag (stack__project)."""
    return str(_map()["stack__project"])


def instance_boundary(app: str) -> str:
    """The managed policy bounding app's instance roles (stack__names.instance_boundary)."""
    return _render(_map()["stack__names"]["instance_boundary"], stack_app_name=app)


def iam_path() -> str:
    """The IAM path of the stack's instance roles and profiles (stack__names.iam_path)."""
    return _render(_map()["stack__names"]["iam_path"], stack__project=project())


def _render(template: str, **values: str) -> str:
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(template).render(**values)


def ami_parameter(app: str, env: str) -> str:
    """The SSM parameter naming env's promoted AMI of app (stack__names.ami_parameter)."""
    return _render(_map()["stack__names"]["ami_parameter"], stack_app_name=app, stack_ami_env=env)


def stack_lock_parameter(app: str, env: str) -> str:
    """The SSM parameter a run of app's env stack holds (stack__names.lock_parameter); env "*" gives
    the pattern of every environment's, as the stack's policy grants them."""
    return _render(_map()["stack__names"]["lock_parameter"], stack_app_name=app, stack_env=env)


def stack_state_parameter(app: str, env: str, release: str) -> str:
    """The SSM parameter recording what the last converging site.yml of a release left
    (stack__release_names.state_parameter); "*" for env and release gives the pattern."""
    return _render(_map()["stack__release_names"]["state_parameter"], stack_app_name=app, stack_env=env) % release


def bake_lock_parameter(app: str, env: str) -> str:
    """The SSM parameter one bake of app's env holds while it runs (stack__names.bake_lock_parameter);
    env "*" gives the pattern of every environment's, as the bake's policy grants them."""
    return _render(_map()["stack__names"]["bake_lock_parameter"], stack_app_name=app, stack_ami_env=env)
