"""The local cloud: a moto server on loopback (control plane) and a systemd base image (data plane)."""
