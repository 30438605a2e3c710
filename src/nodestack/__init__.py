"""nodestack: roles, golden-AMI bake and stack playbooks for a Node.js service on AWS."""

__version__ = "0.1.0"
