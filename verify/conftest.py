"""Checks of a deployed stack against its declared settings (run by playbooks/verify.yml).

The playbook passes the settings as JSON in NODESTACK_VERIFY; boto3 reads the same
endpoint and credentials as the playbooks. Only AWS APIs are called: never the instances.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest


@pytest.fixture(scope="session")
def declared() -> dict[str, Any]:
    raw = os.environ.get("NODESTACK_VERIFY")
    if not raw:
        pytest.exit("NODESTACK_VERIFY is not set: run playbooks/verify.yml (it passes the stack's settings)", 2)
    return json.loads(raw)


@pytest.fixture(scope="session")
def aws(declared: dict[str, Any]) -> Any:
    conn = declared["connection"]
    session = boto3.Session(profile_name=conn.get("profile") or None, region_name=conn["region"],
                            aws_access_key_id=conn.get("access_key") or None,
                            aws_secret_access_key=conn.get("secret_key") or None)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=conn.get("endpoint_url") or None)

    return client
