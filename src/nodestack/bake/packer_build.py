"""Packer through python-packer: validate, then build with output streamed line by line
under a per-environment prefix. The AMI id comes from the manifest, never from the log."""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import sh

import packer
from nodestack.bake import interrupt
from nodestack.bake.settings import TEMPLATE

_print_lock = threading.Lock()


class PackerError(RuntimeError):
    pass


@dataclass(frozen=True)
class Artifact:
    ami_id: str
    region: str
    ami_name: str


class LineSink:
    """Packer's output, line by line: printed with a prefix, kept in a log and in memory.

    A file-like object, not a callable: sh 1.11 (pinned by python-packer) inspects
    callables with inspect.getargspec, which Python 3.11 no longer has.
    """

    def __init__(self, prefix: str, log: Path | None = None, echo: bool = True) -> None:
        self.prefix, self.echo, self.lines = prefix, echo, []  # type: ignore[var-annotated]
        self._log = log.open("a") if log else None
        self._partial = ""

    def write(self, chunk: bytes | str) -> None:
        text = self._partial + (chunk.decode(errors="replace") if isinstance(chunk, bytes) else chunk)
        *complete, self._partial = text.split("\n")
        for line in complete:
            self._emit(line)

    def flush(self) -> None:
        if self._log:
            self._log.flush()

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        if self.echo:
            with _print_lock:
                print(f"[{self.prefix}] {line}", flush=True)
        if self._log:
            self._log.write(line + "\n")


def _client(var_file: Path, variables: dict[str, str], env: dict[str, str], sink: LineSink,
            timeout_s: float, background: bool = False) -> packer.Packer:
    client = packer.Packer(str(TEMPLATE), vars=variables, var_file=str(var_file))
    # python-packer has no options for these; sh takes them as baked keyword arguments. At the
    # timeout Packer gets SIGINT, not sh's default SIGKILL: it then terminates its build instance
    # and waits until it is gone. In the background the job learns its pid (interrupt.py).
    client.packer = client.packer.bake(_env={**env, "PACKER_NO_COLOR": "1"}, _timeout=timeout_s,
                                       _timeout_signal=signal.SIGINT, _bg=background,
                                       _out=sink, _err=sink, _out_bufsize=1, _err_bufsize=1)
    return client


def validate(var_file: Path, variables: dict[str, str], env: dict[str, str]) -> None:
    """`packer validate` with the build's inputs; PackerError carrying packer's own message."""
    sink = LineSink("validate", echo=False)
    client = _client(var_file, variables, env, sink, 120)
    try:
        client.validate()
    except AttributeError as exc:
        # python-packer 0.1.2 reads `ex.message` (Python 2) when packer fails; the sh error is the context.
        failure = exc.__context__
        if not isinstance(failure, sh.ErrorReturnCode):
            raise
        raise PackerError("packer validate failed:\n" + "\n".join(sink.lines).strip()) from failure


def build(var_file: Path, variables: dict[str, str], env: dict[str, str], prefix: str,
          manifest: Path, log: Path, timeout_s: float) -> Artifact:
    """`packer build`; returns the AMI of the manifest's last build."""
    client = _client(var_file, variables, env, LineSink(prefix, log), timeout_s, background=True)
    try:
        running = client.build(parallel=False)  # one source per run; the job runs environments side by side
        with interrupt.tracking(running.pid):
            running.wait()
    except sh.TimeoutException as exc:
        raise PackerError(f"packer build did not finish within {timeout_s:.0f}s") from exc
    except sh.ErrorReturnCode as exc:
        raise PackerError(f"packer build failed (exit {exc.exit_code}); its output is in {log}") from exc
    return read_manifest(manifest)


def read_manifest(manifest: Path) -> Artifact:
    try:
        data = json.loads(manifest.read_text())
        last = data["builds"][-1]
        region, ami_id = last["artifact_id"].split(":", 1)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise PackerError(f"{manifest}: no AMI in Packer's manifest ({exc})") from exc
    return Artifact(ami_id=ami_id, region=region, ami_name=str(last.get("custom_data", {}).get("ami_name", "")))
