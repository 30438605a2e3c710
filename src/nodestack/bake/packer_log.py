"""What Packer's log of a failed build says: whether it stopped in the image checks, and which."""

from __future__ import annotations

from pathlib import Path


def stopped_in_image_checks(log: Path) -> bool:
    """Did Packer stop in the image checks (validate-build-host.sh / finalize-image.sh)?"""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return False
    # the first shell-local step only reads host keys: only the image checks' script counts
    return "/scripts/validate-build-host.sh" in text or "finalize-image:" in text


def failed_check_lines(log: Path) -> str:
    """The lines of Packer's log that say which check failed (pytest's summary, finalize-image)."""
    wanted = ("FAILED ", " failed", "Error", "finalize-image:")
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if any(w in line for w in wanted)]
    return "\n".join(lines[-12:])
