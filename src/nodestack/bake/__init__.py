"""The golden-AMI bake job: Packer + the app-server playbook, validation, promotion, pruning."""
