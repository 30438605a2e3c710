"""The bake takes the app's settings as Ansible resolves them: the stack's port and health
check flow to the image checks through the inventory's references."""

from __future__ import annotations

import pytest

from nodestack.bake import settings


def test_port_and_health_check_come_from_the_stack_settings() -> None:
    app = settings.load("dev", local=True, overrides={
        "stack_app_port": 8080, "stack_health_check_path": "/", "stack_health_check_status": 204}).app
    assert (app.port, app.health_path, app.health_status) == (8080, "/", 204)
    assert (app.service, app.user, app.app_dir) == ("nodeapp", "nodeapp", "/srv/nodeapp/app")


def test_role_defaults_fill_what_the_inventory_leaves_out() -> None:
    app = settings.load("prod", local=True, overrides={"users_service_home": "/srv/shop", "auto_start_service": "shop"}).app
    assert (app.service, app.app_dir) == ("shop", "/srv/shop/app")


def test_a_templated_node_version_is_resolved() -> None:
    loaded = settings.load("dev", local=True, overrides={"node_release": "22.11.0", "nodejs_version": "{{ node_release }}"})
    assert loaded.nodejs_version == "22.11.0"


def test_an_undefined_reference_is_a_clear_error() -> None:
    with pytest.raises(settings.BakeConfigError, match="nodejs_version='{{ no_such_setting }}' .* not defined"):
        settings.load("dev", local=True, overrides={"nodejs_version": "{{ no_such_setting }}"})


def test_a_port_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(settings.BakeConfigError, match="auto_start_port='http' .* must be numbers"):
        settings.load("dev", local=True, overrides={"stack_app_port": "http"})
