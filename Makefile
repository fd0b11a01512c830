# localbatch developer targets. `make demo` and `make test` set up everything they need.
#
# Set-up policy: the virtualenv (.venv) is always created here. The Docker engine is only
# installed and started when none answers AND we are root on Debian (a fresh CI or dev
# machine): then Debian's docker.io runs as `dockerd --bridge=none --iptables=false`.
# On a machine where Docker already runs, nothing of the system is touched. Likewise Debian's
# chromium, chromium-driver (the dashboard's browser test) and tmux (`top` in a terminal) are
# installed only when missing, as root on Debian.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_IMAGE := busybox:1.36
DOCKERD_LOG ?= /var/log/localbatch-dockerd.log
# pytest-xdist workers: integration tests mostly wait on containers, so two overlap well even on
# two cores; each test file stays on one worker (--dist loadfile), as its fixtures assume.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

.DEFAULT_GOAL := help
.PHONY: help install docker images tools demo test test-unit test-integration faults bench bench-quick soak lint fmt typecheck check clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv and install localbatch with its dev tools

docker: ## Make sure a Docker engine answers (installs docker.io as root on Debian if none does)
	@if docker info >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then \
	  echo "No Docker engine answers. Start Docker (Docker Desktop, or: sudo systemctl start docker) and retry." >&2; \
	  exit 1; \
	fi; \
	if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null || [ ! -x /bin/busybox ]; then \
	  echo "installing Debian's docker.io and busybox-static ..." >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io busybox-static >/dev/null; \
	fi; \
	if ! pgrep -x dockerd >/dev/null; then \
	  rm -f /var/run/docker.pid; \
	  echo "starting dockerd (log: $(DOCKERD_LOG)) ..." >&2; \
	  nohup dockerd --bridge=none --iptables=false >>$(DOCKERD_LOG) 2>&1 & \
	fi; \
	for i in $$(seq 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done; \
	echo "dockerd did not answer within 60 s; see $(DOCKERD_LOG)" >&2; exit 1

images: docker ## Make sure the images the demo and tests use exist (built locally when no registry)
	@if docker image inspect $(DEMO_IMAGE) >/dev/null 2>&1; then exit 0; fi; \
	if [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; then \
	  echo "building $(DEMO_IMAGE) from this host's static busybox (no registry needed) ..." >&2; \
	  dir=$$(mktemp -d) && cp /bin/busybox $$dir/ && \
	  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' > $$dir/Dockerfile && \
	  DOCKER_BUILDKIT=0 docker build --quiet -t $(DEMO_IMAGE) $$dir >/dev/null 2>&1; rc=$$?; rm -rf $$dir; exit $$rc; \
	else \
	  docker pull $(DEMO_IMAGE); \
	fi

tools: ## Make sure headless Chromium, its driver and tmux exist (installs Debian's as root) for the UI tests
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v tmux >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then \
	  echo "Missing chromium, chromedriver or tmux: install them (Debian: apt-get install chromium chromium-driver tmux) and retry." >&2; \
	  exit 1; \
	fi; \
	echo "installing Debian's chromium, chromium-driver and tmux ..." >&2; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver tmux >/dev/null

demo: install images ## Set up everything, then run jobdefs/hello.toml
	$(BIN)/localbatch validate jobdefs/*.toml
	$(BIN)/localbatch run jobdefs/hello.toml

test: install ## Run every test: unit, and integration on the real engine (CI requires the engine)
	@$(MAKE) --no-print-directory images || { \
	  if [ "$$LOCALBATCH_REQUIRE_DOCKER" = 1 ]; then exit 1; fi; \
	  echo "no Docker engine: the integration tests will be skipped" >&2; }
	@$(MAKE) --no-print-directory tools || { \
	  if [ "$$LOCALBATCH_REQUIRE_DOCKER" = 1 ]; then exit 1; fi; \
	  echo "no chromium or tmux: the dashboard's browser test and top's terminal test will be skipped" >&2; }
	$(PYTEST)

test-unit: install ## Fast tests only (no Docker)
	$(PYTEST) tests/unit

test-integration: install images tools ## Tests on the real engine only
	$(PYTEST) tests/integration

faults: install images ## Fault tests, the long ones too: engine restart, full disk, 1 GiB of output, kill -9 in every job state, 1,000 clients (tests/faults)
	$(PYTEST) tests/faults

bench: install images ## Measure: against raw Docker, FIFO and moto; scheduler, store, API, daemon, S3 (benchmarks/results/)
	$(BIN)/python -m benchmarks.run

bench-quick: install images ## The same with smaller inputs, without the S3 transfers (under 3 minutes)
	$(BIN)/python -m benchmarks.run --quick

soak: install images ## 5,000 seeded short jobs through one daemon; then every job ends as the seed says, nothing leaks (~25 min)
	$(BIN)/python -m benchmarks.soak --jobs 5000 --json benchmarks/results/soak-latest.json

lint: install ## ruff check and format check
	$(BIN)/ruff check localbatch tests benchmarks
	$(BIN)/ruff format --check localbatch tests benchmarks

fmt: install ## Format the code
	$(BIN)/ruff check --fix localbatch tests benchmarks
	$(BIN)/ruff format localbatch tests benchmarks

typecheck: install ## mypy, strict on the package
	$(BIN)/mypy

check: lint typecheck test ## What CI runs

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
