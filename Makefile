# `make up`: set up, start the local cloud, build the base image, bake dev and prod AMIs
# on it (nodestack bake), then run site.yml on it; ends with the app's URL and a command that
# fetches it through the load balancer by its DNS name.
# `make test`: set up, then every check and test (see scripts/test.sh).
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/$(VENV):$(PATH)
export CONTAINERS_CONF ?= $(CURDIR)/config/containers.conf

.PHONY: setup up down test bench lint

setup:
	@scripts/setup.sh

up: setup
	nodestack local up
	nodestack image build
	nodestack bake --env dev --env prod
	eval "$$(nodestack local env)" && ansible-playbook site.yml
	@nodestack local status
	@url=$$(nodestack local status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["apps"][0])') && \
	  printf '\nThe app: %s\nFetch it through the load balancer by its DNS name:\n  %s/nodestack local curl %s\n\n' \
	    "$$url" "$(VENV)" "$$url" && nodestack local curl "$$url"

down: setup
	nodestack local down

test: setup
	scripts/test.sh

lint: setup
	scripts/test.sh --lint-only

bench: setup
	nodestack bench
