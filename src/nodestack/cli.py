"""Command line: `nodestack local ...`, `nodestack image ...`, `nodestack molecule ...`, `nodestack bench ...`,
`nodestack policy ...`, `nodestack role-docs`, `nodestack bake`, `nodestack promote`."""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from nodestack import bench, molecule_runner, permissions, role_docs
from nodestack.bake import job as bake_job
from nodestack.bake import promote
from nodestack.local_cloud import base_image, identities, local_status, server


def _local(args: argparse.Namespace) -> int:
    if args.action == "up":
        endpoint, started = server.up(port=args.port, enforce_iam=args.enforce_iam)
        verb = "started" if started else "already running"
        enforced = (f"; IAM enforced: run as the deployer with `eval \"$(nodestack local env --as "
                    f"{identities.DEPLOYER})\"`") if args.enforce_iam else ""
        print(f"local cloud {verb}: {endpoint.url} (pid {endpoint.pid}), DNS 127.0.0.1:{endpoint.dns_port}; "
              f"log {server.log_file()}{enforced}")
    elif args.action == "down":
        stopped = server.down()
        print(f"local cloud stopped (pid {stopped.pid})" if stopped else "local cloud was not running")
    elif args.action == "status":
        return local_status.show(as_json=args.json)
    elif args.action == "curl":
        return local_status.fetch(args.url)
    elif args.action == "env":
        running = server.current()
        port = running.port if running else (args.port or server.default_port())
        for key, value in server.environment(port, args.identity).items():
            print(f"export {key}={shlex.quote(value)}")
    return 0


def _policy(args: argparse.Namespace) -> int:
    scope = permissions.Scope(args.app, args.account_id, args.region, args.partition, args.other_account or "")
    sys.stdout.write(permissions.to_json(permissions.render(args.kind, scope)))
    return 0


def _image(args: argparse.Namespace) -> int:
    start = time.monotonic()
    built = base_image.build(force=args.force)
    took = time.monotonic() - start
    print(f"{base_image.IMAGE}: {'built' if built else 'cached, recipe unchanged'} in {took:.1f}s")
    return 0


def _role_docs(args: argparse.Namespace) -> int:
    text = role_docs.DOC.read_text()
    if args.check:
        stale = role_docs.stale_roles(text)
        if stale:
            print(f"docs/roles.md is out of date: run `nodestack role-docs` (tables of {', '.join(stale)})",
                  file=sys.stderr)
            return 1
        print("docs/roles.md is up to date")
        return 0
    rendered = role_docs.render(text)
    if rendered != text:
        role_docs.DOC.write_text(rendered)
    print(f"docs/roles.md {'rewritten' if rendered != text else 'already up to date'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nodestack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="the local cloud's AWS endpoint (moto server on 127.0.0.1)")
    local.add_argument("action", choices=["up", "down", "status", "env", "curl"])
    local.add_argument("url", nargs="?", help="curl: an http(s) URL whose host the local DNS server resolves")
    local.add_argument("--json", action="store_true", help="status: one JSON object")
    local.add_argument("--port", type=int, default=None,
                       help=f"TCP port on 127.0.0.1 (default $NODESTACK_LOCAL_PORT or {server.DEFAULT_PORT})")
    local.add_argument("--enforce-iam", action="store_true",
                       help="up: authorise every call by its caller's IAM policies, with an administrator and a "
                            f"deployer holding the policies of policies/ ({identities.DEPLOYER})")
    local.add_argument("--as", dest="identity", default=None, metavar="IDENTITY",
                       help=f"env: the credentials of an identity of an IAM-enforcing local cloud "
                            f"({identities.DEPLOYER} or {identities.ADMIN}, the default)")
    local.set_defaults(func=_local)

    policy = sub.add_parser("policy", help="print a deployer policy of policies/ as IAM JSON, for one app and account")
    policy.add_argument("kind", choices=permissions.KINDS)
    policy.add_argument("--app", required=True, help="the app's name (stack_app_name)")
    policy.add_argument("--account-id", required=True, help="the AWS account's 12-digit id")
    policy.add_argument("--region", required=True, help="the stack's region, such as eu-west-1")
    policy.add_argument("--partition", default="aws", help="aws, aws-cn or aws-us-gov (default aws)")
    policy.add_argument("--other-account", default=None, metavar="ACCOUNT",
                        help="promote: a separate prod account it shares with (omit in one account); "
                             "promote-target: the build account that shares (required)")
    policy.set_defaults(func=_policy)

    image = sub.add_parser("image", help="the local Debian 12 systemd base image")
    image.add_argument("action", choices=["build"])
    image.add_argument("--force", action="store_true", help="rebuild even if the recipe is unchanged")
    image.set_defaults(func=_image)

    docs = sub.add_parser("role-docs", help="regenerate docs/roles.md's variable tables from the roles' argument specs")
    docs.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is out of date")
    docs.set_defaults(func=_role_docs)

    molecule_runner.add_parser(sub)
    bake_job.add_parser(sub)
    promote.add_parser(sub)
    bench.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (server.LocalCloudError, RuntimeError, permissions.PolicyError) as exc:
        print(f"nodestack: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
