# make demo — fresh venv, install, simulated county, backtest, train, promote, score, serve
# make test — the test suite (what .ci/run calls)
PY     ?= python3
export OMP_WAIT_POLICY ?= PASSIVE
# make test: two pytest workers fill the two cores, so each test's LightGBM and BLAS get one thread
# (two threads each were 2× slower in wall time and 2.4× in CPU for a county training, load ≈ 2.7).
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint bench browser venv clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's Chromium for the page tests (Playwright's own browser download is not reachable here).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || [ ! -d /usr/share/fonts/opentype/noto ]; then \
	  echo "installing Debian chromium + chromium-driver + fonts-noto-cjk"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null; \
	fi

demo: venv browser
	$(BIN)/sanling demo

test: venv browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile

test-fast: venv
	$(BIN)/python -m pytest -m "not slow and not browser"

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

bench: venv
	$(BIN)/python benchmarks/simulate.py
	$(BIN)/python benchmarks/features.py

clean:
	rm -rf $(VENV) .sanling demo .pytest_cache .ruff_cache
