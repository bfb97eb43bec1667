# Two entry points for a fresh Debian 12 machine: `make demo` and `make test`.
# Both install their apt and pip dependencies idempotently.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := busybox-static libseccomp2 iproute2 iptables nftables procps runc crun docker.io tini hyperfine skopeo umoci docker-registry openssl
STAMP := $(VENV)/.deps-stamp

.PHONY: deps apt venv demo test unit integration e2e bench clean

deps: apt venv

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@# the reference dockerd must never start on its own and touch the host's networking
	@systemctl disable --now docker.service docker.socket containerd.service >/dev/null 2>&1 || true
	@# nor Debian's docker-registry (tests start their own, on free ports)
	@systemctl disable --now docker-registry.service >/dev/null 2>&1 || true

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)
	@# bytecode up front: the environment may set PYTHONDONTWRITEBYTECODE, and the runtime's
	@# start time is mostly imports
	$(PY) -m compileall -q src >/dev/null

demo: deps
	$(PY) -m dockyard.testing.demo

test: deps
	$(PY) -m compileall -q src >/dev/null
	$(PY) -m pytest -p no:cacheprovider tests

unit: venv
	$(PY) -m pytest -p no:cacheprovider -m unit tests

bench: deps
	$(PY) -m compileall -q src >/dev/null
	$(PY) bench/runtime.py
	$(PY) bench/network.py

clean:
	rm -rf $(VENV) build src/*.egg-info
