"""The local cloud's data plane: a controller thread inside the endpoint process that makes
what the emulator says exist also run.

Each tick (about a second) it reads moto's backends and
- runs every running instance whose AMI has a local image as a container (launch, stop,
  start, reboot, terminate follow the instance), the others stay API-only;
- serves every load balancer from HAProxy and records the health HAProxy sees, which
  DescribeTargetHealth / DescribeInstanceHealth then report;
- acts as Auto Scaling's health checks: an instance whose container died (the EC2 status
  check) or, with health check type ELB, that a load balancer reports unhealthy after the
  grace period is marked Unhealthy and replaced;
- publishes HealthyHostCount / UnHealthyHostCount to CloudWatch and evaluates the alarms
  on them (alarms.py);
- writes a status snapshot that `nodestack local status` reads.
A DNS server on loopback answers the hosted zones (dns.py).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from moto.autoscaling.models import autoscaling_backends
from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import Instance
from werkzeug.serving import WSGIRequestHandler

from nodestack.local_cloud import alarms, ami_images, cloud_init, fix_instance_refresh, imds
from nodestack.local_cloud.backend_lock import BACKENDS
from nodestack.local_cloud.dns import DnsServer, LoadBalancerView
from nodestack.local_cloud.dns_zones import moto_zones
from nodestack.local_cloud.fix_target_health import BOARD, Observed, classic_key
from nodestack.local_cloud.guest_services import DROP_IN_MOUNT, GuestServices
from nodestack.local_cloud.haproxy import LoadBalancerProxy
from nodestack.local_cloud.instances import Container, InstanceRuntime
from nodestack.local_cloud.lb_state import Addresses, LoadBalancerPlan, plan, regions, targets
from nodestack.local_cloud.request_log import WsgiApp

LOG = logging.getLogger("nodestack.data_plane")
TICK_SECONDS = 1.0
_REBOOTED: set[str] = set()  # instance ids RebootInstances asked for, taken by the next tick


def _record_reboots() -> None:
    original = Instance.reboot

    def reboot(self: Instance) -> None:
        original(self)
        _REBOOTED.add(self.id)

    Instance.reboot = reboot  # type: ignore[method-assign]


def _user_data(instance: Instance) -> bytes:
    raw = instance.user_data
    if raw is None:
        return b""
    if isinstance(raw, list):  # older moto kept a one-item list
        raw = raw[0] if raw else None
    text = raw if isinstance(raw, (str, bytes)) else getattr(raw, "_encoded_string", "")
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        return text.encode() if isinstance(text, str) else bytes(text or b"")


def _hostname(instance: Instance) -> str:
    return str(instance.private_dns_name or instance.id).split(".")[0]


class Controller:
    def __init__(self, cloud_port: int, dns_port: int, state: Path,
                 api: tuple[WsgiApp, type[WSGIRequestHandler]] | None = None) -> None:
        self.cloud_port = cloud_port
        self.state = state
        self.runtime = InstanceRuntime(str(cloud_port), state / "seeds")
        self.proxy = LoadBalancerProxy(state / "haproxy")
        self.addresses = Addresses(cloud_port)
        self.views: dict[str, LoadBalancerView] = {}
        self.dns = DnsServer(self._lookup_lb, port=dns_port)
        self.status_file = state / "status.json"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="data-plane", daemon=True)
        self._containers: dict[str, Container] = {}
        self._stopped_by_us: set[str] = set()
        self._impaired: set[str] = set()
        self._errors: dict[str, str] = {}
        self._plan = LoadBalancerPlan()
        self._health: dict[tuple[str, str], Observed] = {}
        self._local: dict[str, Instance] = {}
        self._ready_since: dict[str, float] = {}
        # with the endpoint's app: instances reach the API and their metadata (and credentials)
        self.guests = GuestServices(api, imds.MetadataService(self._instance_at), state) if api else None

    # lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        _record_reboots()
        BOARD.runs_image = self.runtime.has_image
        self.runtime.remove_all()  # what a crashed run left behind
        # A crashed run's images on this port, named now: an image made for this run's AMIs from
        # here on is not one of them. Removed beside serving, not before (`up` waits for the ping).
        stale = ami_images.of_cloud(self.runtime.cloud_id)
        threading.Thread(target=self._remove_stale_images, args=(stale,), name="stale-images", daemon=True).start()
        self.proxy.stop()
        self.dns.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.dns.stop()
        self.proxy.stop()
        if self.guests is not None:
            self.guests.stop()
        self.runtime.remove_with_images()
        self.status_file.unlink(missing_ok=True)

    def _remove_stale_images(self, stale: list[str]) -> None:
        """A crashed run's images on this port (its AMIs are gone), then ended clouds' images."""
        try:
            ami_images.remove(stale)
            ami_images.remove_orphans(self.runtime.cloud_id)
        except Exception:  # Podman failing here must not end the data plane
            LOG.exception("removing stale AMI images failed")

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception as exc:  # a bad tick must not end the data plane
                LOG.exception("data plane tick failed")
                self._errors["tick"] = f"{type(exc).__name__}: {exc}"
            self._stop.wait(max(0.1, TICK_SECONDS - (time.monotonic() - started)))

    # one pass ----------------------------------------------------------------
    def tick(self) -> None:
        # moto's backends are read and changed under BACKENDS; Podman and HAProxy work is not,
        # so API requests wait only for the short in-memory steps.
        with BACKENDS:
            instances = [i for backend in regions(ec2_backends) for i in list(backend.all_instances())]
        local = {i.id: i for i in instances if self.runtime.has_image(i.image_id)}
        if local or self._containers:
            self._containers = self.runtime.containers()
            self._reconcile(local)
        with BACKENDS:
            self._plan = plan(self.addresses)
        running = {i: c.address for i, c in self._containers.items() if c.running and c.address}
        self.proxy.apply(self._plan.listeners, self._plan.target_groups, targets(self._plan, running))
        self._health = self._observe(local)
        self._views()
        self._local = local
        try:
            with BACKENDS:
                self._autoscaling_health(local)
                fix_instance_refresh.advance_all(list(regions(autoscaling_backends)), self._ready)
                alarms.publish_and_evaluate(self._plan, self._health)
        finally:
            self._write_status(instances, local)

    def _reconcile(self, local: dict[str, Instance]) -> None:
        for instance_id in list(self._containers):
            instance = local.get(instance_id)
            if instance is None or instance.state in ("terminated", "shutting-down"):
                self.runtime.remove(instance_id)
                self._containers.pop(instance_id)
                self._impaired.discard(instance_id)
        for instance_id, instance in local.items():
            container = self._containers.get(instance_id)
            try:
                if instance.state == "running" and container is None:
                    self._launch(instance)
                elif instance.state == "running" and instance_id in _REBOOTED:
                    _REBOOTED.discard(instance_id)
                    self.runtime.restart(instance_id)
                elif instance.state == "running" and container is not None and not container.running:
                    if instance_id in self._stopped_by_us:  # StartInstances after a stop
                        self._stopped_by_us.discard(instance_id)
                        self.runtime.start(instance_id)
                    else:
                        self._impaired.add(instance_id)  # it died: the EC2 status check fails
                elif instance.state in ("stopped", "stopping") and container and container.running:
                    self._stopped_by_us.add(instance_id)
                    self.runtime.stop(instance_id)
                self._errors.pop(instance_id, None)
            except Exception as exc:
                self._errors[instance_id] = str(exc)
                LOG.warning("instance %s: %s", instance_id, exc)

    def _launch(self, instance: Instance) -> None:
        keys: tuple[str, ...] = ()
        if instance.key_name:
            pair = instance.ec2_backend.key_pairs.get(instance.key_name)
            if pair is not None:
                keys = (pair.material_public.decode() if isinstance(pair.material_public, bytes)
                        else str(pair.material_public),)
        meta = cloud_init.InstanceMetadata(instance.id, _hostname(instance), str(instance.placement.zone),
                                           instance.ec2_backend.region_name, keys)
        mounts = []
        if self.guests is not None:
            mounts.append((self.guests.ensure(self.runtime.gateway()), DROP_IN_MOUNT))
        self.runtime.launch(meta, instance.image_id, _user_data(instance), mounts)
        LOG.info("instance %s: container started from %s in %s", instance.id, instance.image_id, meta.availability_zone)

    def _instance_at(self, address: str) -> Instance | None:
        """The instance whose container has this address on the cloud's network."""
        for instance_id, container in list(self._containers.items()):
            if container.running and container.address == address:
                return self._local.get(instance_id)
        return None

    # health ------------------------------------------------------------------
    def _observe(self, local: dict[str, Instance]) -> dict[tuple[str, str], Observed]:
        seen = {key: Observed(h.state, h.reason, h.description) for key, h in self.proxy.health().items()}
        draining: dict[str, dict[str, int]] = {}
        for (group, target), health in seen.items():
            if health.state == "draining":
                draining.setdefault(group, {})[target] = self._plan.registered.get(group, {}).get(target, 0)
        for group, members in self._plan.registered.items():
            for instance_id in members:
                if instance_id in local and (group, instance_id) not in seen:
                    state = local[instance_id].state
                    seen[(group, instance_id)] = (
                        Observed("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
                        if state in ("pending", "running") else
                        Observed("unused", "Target.InvalidState", f"Target is in the {state} state"))
        BOARD.replace(seen, draining)
        return seen

    def _views(self) -> None:
        views: dict[str, LoadBalancerView] = {}
        for _name, dns_name, address, groups in self._plan.balancers:
            healthy = any(self._group_healthy(g) for g in groups)
            views[dns_name.lower().rstrip(".")] = LoadBalancerView(address, healthy)
        self.views = views

    def _group_healthy(self, group: str) -> bool:
        members = self._plan.registered.get(group, {})
        return any(self._health.get((group, m), Observed("healthy")).state == "healthy" for m in members)

    def _lookup_lb(self, name: str) -> LoadBalancerView | None:
        return self.views.get(name)

    def _autoscaling_health(self, local: dict[str, Instance]) -> None:
        now = datetime.now(timezone.utc)
        for backend in regions(autoscaling_backends):
            for group in list(backend.autoscaling_groups.values()):
                for state in list(group.active_instances()):
                    instance_id = state.instance.id
                    if instance_id not in local:
                        continue
                    reason = self._unhealthy_reason(group, state.instance, now)
                    if reason:
                        self._replace(backend, group, instance_id, reason)

    def _unhealthy_reason(self, group: Any, instance: Instance, now: datetime) -> str | None:
        if instance.id in self._impaired:
            return "an EC2 instance status check failure (its container stopped)"
        if group.health_check_type != "ELB":
            return None
        launched = instance.launch_time
        if isinstance(launched, str):
            launched = datetime.fromisoformat(launched.replace("Z", "+00:00"))
        if launched.tzinfo is None:
            launched = launched.replace(tzinfo=timezone.utc)
        if (now - launched).total_seconds() < (group.health_check_grace_period or 0):
            return None
        keys = list(group.target_group_arns) + [classic_key(n) for n in group.load_balancer_names or []]
        for key in keys:
            seen = self._health.get((key, instance.id))
            if seen is not None and seen.state == "unhealthy":
                return f"an ELB health check failure ({seen.reason})"
        return None

    def _ready(self, group: Any, instance_id: str, warmup: float) -> bool:
        """For instance refresh: InService and passing its health checks for the warm-up."""
        if instance_id not in self._local:
            return True  # API-only: nothing to wait for
        state = next((s for s in group.instance_states if s.instance.id == instance_id), None)
        container = self._containers.get(instance_id)
        healthy = bool(state and state.lifecycle_state == "InService" and container and container.running)
        if healthy and group.health_check_type == "ELB":
            keys = list(group.target_group_arns) + [classic_key(n) for n in group.load_balancer_names or []]
            healthy = all(self._health.get((k, instance_id), Observed("initial")).state == "healthy" for k in keys)
        if not healthy:
            self._ready_since.pop(instance_id, None)
            return False
        since = self._ready_since.setdefault(instance_id, time.monotonic())
        return time.monotonic() - since >= warmup

    def _replace(self, backend: Any, group: Any, instance_id: str, reason: str) -> None:
        LOG.info("auto scaling %s: %s marked Unhealthy after %s; replacing it", group.name, instance_id, reason)
        backend.set_instance_health(instance_id, "Unhealthy")
        fix_instance_refresh.instance_failed(backend, group.name, instance_id, reason)
        for arn in group.target_group_arns:  # AWS deregisters the instance before terminating it
            backend.elbv2_backend.deregister_targets(arn, [{"Id": instance_id}])
        backend.terminate_instance(instance_id, should_decrement=False)
        backend.update_attached_target_groups(group.name)
        self._impaired.discard(instance_id)

    # status ------------------------------------------------------------------
    def snapshot(self, instances: list[Instance] | None = None,
                 local: dict[str, Instance] | None = None) -> dict[str, Any]:
        instances = instances if instances is not None else []
        local = local or {}
        listeners = self._plan.listeners
        balancers = [{"name": name, "dns_name": dns_name, "address": address,
                      "url": f"http://{address}/"
                      if any(listener.address == address and listener.port == 80 for listener in listeners)
                      else f"http://{address}:"
                           f"{next((listener.port for listener in listeners if listener.address == address), 80)}/",
                      "healthy": self.views.get(dns_name.lower(), LoadBalancerView(address, False)).healthy}
                     for name, dns_name, address, _ in self._plan.balancers]
        rows = []
        for instance in instances:
            if instance.state == "terminated":
                continue
            container = self._containers.get(instance.id)
            health = sorted({h.state for (g, i), h in self._health.items() if i == instance.id})
            rows.append({
                "id": instance.id, "image": instance.image_id, "zone": instance.placement.zone,
                "state": instance.state,
                "container": container.name if container else None,
                "address": container.address if container else None,
                "health": ",".join(health) if health
                          else ("api-only" if instance.id not in local else "not registered"),
                "data_plane": "container" if instance.id in local else "api-only",
                "impaired": instance.id in self._impaired,
            })
        apps = sorted({f"http://{r.name}/" for zone in moto_zones(None) for r in zone.records
                       if r.alias and r.alias.dns_name in self.views})
        return {"time": time.time(), "dns": f"127.0.0.1:{self.dns.port}", "apps": apps, "load_balancers": balancers,
                "instances": rows, "haproxy_pid": self.proxy.pid, "errors": dict(self._errors)}

    def _write_status(self, instances: list[Instance], local: dict[str, Instance]) -> None:
        data = self.snapshot(instances, local)
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, default=str))
        tmp.replace(self.status_file)
