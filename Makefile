# The two commands of the README: `make run` and `make test`. Both bootstrap .venv on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.airssys-installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
# cargo's build directory lives outside the clone, so every clone and CI run on this machine reuses the compiled
# wasmtime (the first build takes several minutes, later ones about a minute).
export CARGO_TARGET_DIR ?= $(HOME)/.cache/airssys-web/target
NATIVE := Cargo.toml Cargo.lock $(wildcard src/*.rs) $(wildcard airssys_web/wit/*.wit)

# cargo builds against the venv's interpreter; `cargo test` links libpython, so it must find it when run.
PYO3_ENV = PYO3_PYTHON=$(abspath $(BIN)/python) \
	LD_LIBRARY_PATH=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')

.PHONY: run test lint typecheck rust browser pytest bench loadtest clean redis-server

$(STAMP): pyproject.toml $(NATIVE)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m example_site --host $(HOST) --port $(PORT)

test: $(STAMP) lint typecheck rust browser pytest

lint: $(STAMP)
	$(BIN)/ruff check airssys_web tests example_site benchmarks loadtests tools

typecheck: $(STAMP)
	$(BIN)/mypy

rust: $(STAMP)  # the extension's crate (src/): formatting, clippy, its unit tests (release: reuses the build)
	cargo fmt --check
	$(PYO3_ENV) cargo clippy --release --all-targets --quiet -- -D warnings
	$(PYO3_ENV) cargo test --release --quiet

# The dashboard's browser tests drive Debian's chromium through playwright's executable_path (no browser download).
# Installed once with apt-get where that works (root, Debian); elsewhere the tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the dashboard's browser tests (apt-get, once)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium >/dev/null) || echo "note: chromium could not be installed; the browser tests will skip"; \
	  else echo "note: no chromium and no apt-get as root; the dashboard's browser tests will skip"; fi; }

pytest: $(STAMP) redis-server
	$(BIN)/python -m pytest -q

# The Redis registry's tests start a real redis-server (Debian's package) on a loopback port: install it if missing.
redis-server:
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server (Debian package) for the Redis registry tests"; \
		$$(test "$$(id -u)" = 0 || echo sudo) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$(test "$$(id -u)" = 0 || echo sudo) apt-get install -y -qq redis-server \
			>/dev/null; }

bench: $(STAMP)
	$(BIN)/python -m benchmarks

loadtest: $(STAMP)  # ~60 s on 127.0.0.1: the traffic mix plus updates/rollbacks under load; fails on any failure
	$(BIN)/python -m pip install --quiet -e '.[load]'
	$(BIN)/python -m loadtests --duration 60s

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache airssys_web/_native*.so
