"""Real apps deployed unchanged: dependencies from each lockfile (npm, Yarn Berry), the
package's own start command, PORT and NODE_ENV, a native build, a TypeScript build with dev
dependencies pruned, and a private registry token that leaves no trace."""

from __future__ import annotations

import json

import pytest

# name -> (port, what its / computes with its dependencies)
APPS = {
    "express": (3101, "function"),
    "berry": (3102, "3s"),
    "native": (3103, "42 sh"),
    "typescript": (3104, "1s"),
}
# Where each keeps its dependencies: Yarn Berry's Plug'n'Play loads them from its zip cache.
MODULES = {name: "node_modules" for name in APPS} | {"berry": ".yarn/cache"}
TOKEN = "fixture-registry-token-5d1c0ffee"
FETCH = ("/usr/local/bin/node -e 'fetch(process.argv[1]).then(async (r) => "
         "console.log(r.status, await r.text()))' http://127.0.0.1:{port}/")


@pytest.mark.parametrize("name", sorted(APPS))
def test_app_serves_from_its_dependencies(host, name: str) -> None:  # type: ignore[no-untyped-def]
    port, computed = APPS[name]
    assert host.service(name).is_running
    assert host.service(name).is_enabled
    status, _, body = host.check_output(FETCH.format(port=port)).partition(" ")
    assert status == "200"
    assert json.loads(body) == {"app": name, "env": "production", "computed": computed}


@pytest.mark.parametrize("name", sorted(APPS))
def test_dependencies_belong_to_the_deploy_account(host, name: str) -> None:  # type: ignore[no-untyped-def]
    modules = host.file(f"/srv/{name}/app/{MODULES[name]}")
    assert modules.is_directory
    assert modules.user == f"{name}-deploy"
    # The app reads its dependencies but cannot change them.
    assert host.run(f"runuser -u {name} -- touch {modules.path}/x").rc != 0


def test_plain_node_start_runs_node_itself(host) -> None:  # type: ignore[no-untyped-def]
    start = host.check_output("systemctl show -p ExecStart --value express")
    assert "path=/usr/local/bin/node ;" in start and "argv[]=/usr/local/bin/node server.js ;" in start


def test_shell_start_script_runs_through_sh(host) -> None:  # type: ignore[no-untyped-def]
    # "FIXTURE_STARTED_BY=sh node server.js": the app answered "42 sh" above.
    assert "/bin/sh" in host.check_output("systemctl show -p ExecStart --value native")


def test_native_addon_was_compiled_here(host) -> None:  # type: ignore[no-untyped-def]
    addon = host.file("/srv/native/app/node_modules/fixture-addon/build/Release/addon.node")
    assert addon.exists
    assert host.check_output(f"head -c 4 {addon.path} | tail -c 3") == "ELF"


def test_build_output_stays_and_dev_dependencies_go(host) -> None:  # type: ignore[no-untyped-def]
    assert host.file("/srv/typescript/app/dist/server.js").exists
    assert not host.file("/srv/typescript/app/node_modules/typescript").exists
    assert host.file("/srv/typescript/app/node_modules/ms").exists
    assert host.run("ls /srv/berry/app/.yarn/cache | grep -q is-number").rc != 0


def test_plug_n_play_app_loads_through_its_pnp_file(host) -> None:  # type: ignore[no-untyped-def]
    assert "--require /srv/berry/app/.pnp.cjs" in host.check_output("systemctl show -p Environment --value berry")
    assert not host.file("/srv/berry/app/node_modules").exists


def test_install_left_no_credentials_or_caches(host) -> None:  # type: ignore[no-untyped-def]
    assert host.run("ls -d /tmp/app-build.* /tmp/ansible-*/app-build.* 2>/dev/null").stdout == ""
    found = host.run(f"grep -rl --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -e {TOKEN} "
                     "/etc /srv /var /tmp /root /home /usr/local")
    assert found.stdout == "", found.stdout
    assert TOKEN not in host.check_output("journalctl --no-pager -q -o cat")
    for name in APPS:
        home = host.user(f"{name}-deploy").home
        assert not host.file(f"{home}/.npm").exists
        assert not host.file(f"{home}/.cache").exists


def test_npm_comes_with_node(host) -> None:  # type: ignore[no-untyped-def]
    assert host.check_output("/usr/local/bin/npm --version") == "10.9.0"
