"""Preflight against the account: the expected account id, the HTTPS certificate and the alarm
topic, each refused with the setting and its fix before anything is created or deleted."""

from __future__ import annotations

import datetime
import re
import secrets
import subprocess
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from nodestack.local_cloud import identities, request_log, server
from tests.conftest import BIN, REPO, client

RECORD = "app.local.nodeapp.test"  # the local inventory's stack_dns_name.stack_dns_zone
OTHER_ACCOUNT = "210987654321"
READ = re.compile(r"^[a-z0-9-]+:(Describe|Get|List|Simulate|GET )")


def playbook(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ansible-playbook"), *args], cwd=REPO, env={**env, "ANSIBLE_FORCE_COLOR": "0"},
                          capture_output=True, text=True, timeout=300, check=False)


def refused_reading_only(local_cloud: server.Endpoint, env: dict[str, str], *args: str) -> str:
    """Run a playbook that must fail; returns its output once every call it made is shown a read."""
    log = local_cloud.request_log
    before = request_log.log_size(log)
    result = playbook(env, *args)
    assert result.returncode != 0, result.stdout[-3000:]
    calls = request_log.count_calls(log, before)[1]
    assert [call for call in calls if not READ.match(call)] == [], calls
    return " ".join(result.stdout.split())  # Ansible folds long messages


def self_signed(*names: str) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))


def imported(local_cloud: server.Endpoint, *names: str) -> str:
    cert, key = self_signed(*names)
    return str(client(local_cloud.url, "acm").import_certificate(Certificate=cert, PrivateKey=key)["CertificateArn"])


@pytest.fixture(autouse=True)
def _promoted(promoted_ami: str) -> None:
    """Preflight finds the AMI before it reads the certificate: every run here has one."""


def test_credentials_of_another_account_stop_every_run_before_any_change(aws_env: dict[str, str],
                                                                         local_cloud: server.Endpoint) -> None:
    for args in (["site.yml"], ["playbooks/rollout.yml"], ["playbooks/teardown.yml"]):
        output = refused_reading_only(local_cloud, aws_env, *args, "-e", f"stack_account_id={OTHER_ACCOUNT}")
        caller = f"arn:aws:sts::{identities.ACCOUNT}:user/moto"
        assert (f"stack_account_id={OTHER_ACCOUNT}, but these credentials ({caller}) "
                f"are of account {identities.ACCOUNT}") in output, (args, output[-2000:])
        assert "use local's credentials" in output


@pytest.mark.parametrize(("extra", "named"), [
    ("stack_account_id=12345", "stack_account_id=12345 (stack_env local) is invalid: give the 12-digit id"),
    # prod: every run names its account, a teardown too (after its confirmation)
    ('{"stack_env": "prod", "confirm_teardown": "prod"}', "stack_account_id= (stack_env prod) is invalid"),
])
def test_an_account_id_that_is_malformed_or_missing_in_prod_is_named_before_any_call(
        aws_env: dict[str, str], local_cloud: server.Endpoint, extra: str, named: str) -> None:
    log = local_cloud.request_log
    before = request_log.log_size(log)
    result = playbook(aws_env, "playbooks/teardown.yml", "-e", extra)
    assert result.returncode != 0
    assert named in " ".join(result.stdout.split()), result.stdout[-2000:]
    assert request_log.count_calls(log, before)[0] == 0


def test_the_right_account_id_passes(aws_env: dict[str, str]) -> None:
    result = playbook(aws_env, "playbooks/preflight.yml", "-e", f"stack_account_id={identities.ACCOUNT}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"local: account {identities.ACCOUNT} in us-east-1" in result.stdout


def requested(local_cloud: server.Endpoint) -> str:
    """A certificate ACM has not issued yet (the local cloud validates after 60 s, as moto does)."""
    acm = client(local_cloud.url, "acm")
    return str(acm.request_certificate(DomainName=RECORD, ValidationMethod="DNS")["CertificateArn"])


@pytest.mark.parametrize(("certificate", "named"), [
    (lambda _: f"arn:aws:acm:us-east-1:{identities.ACCOUNT}:certificate/{secrets.token_hex(4)}-0000-4000-8000-0000",
     "no such certificate in us-east-1 of account 123456789012"),
    (lambda _: f"arn:aws:acm:us-east-1:{OTHER_ACCOUNT}:certificate/0a1b2c3d-0000-4000-8000-000000000000",
     f"it is of account {OTHER_ACCOUNT}, and a load balancer serves certificates of its own account (123456789012)"),
    (lambda cloud: imported(cloud, "shop.example.com", "*.local.shop.test"),
     f"it covers shop.example.com, *.local.shop.test, not {RECORD}"),
    (lambda cloud: imported(cloud, "*.nodeapp.test"), f"it covers *.nodeapp.test, not {RECORD}"),
    (requested, "it is PENDING_VALIDATION, not ISSUED: finish its validation"),
])
def test_a_certificate_that_cannot_serve_the_name_is_refused_before_any_change(
        aws_env: dict[str, str], local_cloud: server.Endpoint, certificate: Callable[[server.Endpoint], str],
        named: str) -> None:
    arn = certificate(local_cloud)
    output = refused_reading_only(local_cloud, aws_env, "site.yml", "-e", f"stack_certificate_arn={arn}")
    assert f"stack_certificate_arn={arn} is invalid: {named}" in output, output[-2000:]
    assert f"Give the ARN of an issued ACM certificate of us-east-1 for {RECORD}" in output


def test_a_missing_alarm_topic_is_refused_before_any_change(aws_env: dict[str, str],
                                                            local_cloud: server.Endpoint) -> None:
    arn = f"arn:aws:sns:us-east-1:{identities.ACCOUNT}:missing-{secrets.token_hex(4)}"
    output = refused_reading_only(local_cloud, aws_env, "site.yml", "-e", f"stack_alarm_topic_arn={arn}")
    assert f"stack_alarm_topic_arn={arn} is invalid: no such SNS topic. Create the topic" in output, output[-2000:]


@pytest.fixture
def alarm_topic(local_cloud: server.Endpoint) -> Iterator[str]:
    sns = client(local_cloud.url, "sns")
    arn = str(sns.create_topic(Name=f"alerts-{secrets.token_hex(4)}")["TopicArn"])
    yield arn
    sns.delete_topic(TopicArn=arn)


def test_a_good_certificate_and_topic_pass_and_are_reported(aws_env: dict[str, str], local_cloud: server.Endpoint,
                                                            alarm_topic: str) -> None:
    cert = imported(local_cloud, "*.local.nodeapp.test")
    args = ["playbooks/preflight.yml", "-e", f"stack_certificate_arn={cert}",
            "-e", f"stack_alarm_topic_arn={alarm_topic}"]
    result = playbook(aws_env, *args)
    assert result.returncode == 0, result.stdout[-3000:]
    output = " ".join(result.stdout.split())
    assert "HTTPS with certificate *.local.nodeapp.test" in output
    assert f"alarms notify {alarm_topic}: NOBODY YET, no subscription is confirmed" in output

    client(local_cloud.url, "sns").subscribe(TopicArn=alarm_topic, Protocol="email", Endpoint="team@nodeapp.test")
    result = playbook(aws_env, *args)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"alarms notify {alarm_topic} (1 confirmed subscriptions)" in " ".join(result.stdout.split())
