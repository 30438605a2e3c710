"""A failed Packer build: whether it stopped in the image checks, and which check said so."""

from __future__ import annotations

from pathlib import Path

from nodestack.bake import packer_log

CHECKS_FAILED = """\
==> amazon-ebs.app: Running local shell script: /tmp/packer-shell123
    amazon-ebs.app: + /repo/packer/scripts/validate-build-host.sh
    amazon-ebs.app: FAILED packer/tests/test_image.py::test_health_answers - assert 503 == 200
    amazon-ebs.app: ========== 1 failed, 3 passed in 9.1s ==========
Build 'amazon-ebs.app' errored after 2 minutes: Script exited with non-zero exit status: 1
"""
LAUNCH_FAILED = """\
==> amazon-ebs.app: Prevalidating AMI Name: nodeapp-dev-20261204
Build 'amazon-ebs.app' errored after 3 seconds: UnauthorizedOperation: not allowed to RunInstances
"""


def test_a_build_that_stopped_in_the_image_checks_is_told_apart(tmp_path: Path) -> None:
    log = tmp_path / "packer.log"
    log.write_text(CHECKS_FAILED)
    assert packer_log.stopped_in_image_checks(log)
    log.write_text("    amazon-ebs.app: finalize-image: /srv/nodeapp/.ssh/deploy_key is left\n")
    assert packer_log.stopped_in_image_checks(log)
    log.write_text(LAUNCH_FAILED)
    assert not packer_log.stopped_in_image_checks(log)
    assert not packer_log.stopped_in_image_checks(tmp_path / "missing.log")


def test_the_failed_check_lines_name_the_check(tmp_path: Path) -> None:
    log = tmp_path / "packer.log"
    log.write_text(CHECKS_FAILED)
    lines = packer_log.failed_check_lines(log).splitlines()
    assert lines[0] == "amazon-ebs.app: FAILED packer/tests/test_image.py::test_health_answers - assert 503 == 200"
    assert "1 failed, 3 passed" in lines[1]
    assert "Running local shell script" not in packer_log.failed_check_lines(log)
