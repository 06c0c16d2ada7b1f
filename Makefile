# The two set-up commands: `make demo` and `make test`. Both create .venv when missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
HSSL   := $(VENV)/bin/hybridssl
STAMP  := $(VENV)/.installed
DEMO   ?= demo
# tcmalloc cuts system time 5-10x for torch on CPU here; used when present. Looked up when a
# recipe runs (not when make parses this file) so the copy `install` just added counts too.
TCMALLOC_GLOB := /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4
RUN    := env LD_PRELOAD="$$(ls $(TCMALLOC_GLOB) 2>/dev/null | head -n1)" PYTHONUNBUFFERED=1

.PHONY: install test demo demo-synthetic benchmark-real faults throughput clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch torchvision
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	-@ls $(TCMALLOC_GLOB) >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  apt-get install -y -q --no-install-recommends libtcmalloc-minimal4 >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends libtcmalloc-minimal4 >/dev/null 2>&1; } || \
	  echo "note: libtcmalloc-minimal4 not installed; continuing with glibc malloc (slower)"
	touch $(STAMP)

install: $(STAMP)

# two worker processes: tests run one torch thread each, so two cores do two tests at once; tests are
# handed out two at a time (xdist would otherwise give the first worker every slow test); the 15
# slowest are listed at the end (speed itself is measured in benchmarks/, never asserted in tests)
TEST_WORKERS ?= 2
test: install
	$(RUN) $(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --maxschedchunk 2 --durations=15

# real galaxies (data_prep/galaxies); the synthetic one stays as demo-synthetic
demo: install
	$(RUN) bash benchmarks/demo.sh $(DEMO)

demo-synthetic: install
	$(RUN) bash benchmarks/demo_synthetic.sh $(DEMO)-synthetic

# several pretraining seeds per mode, matched steps and matched wall-clock; long on CPU.
# On a GPU machine: make benchmark-real REAL_ARGS="--accelerator gpu --device cuda"
REAL_ARGS ?=
benchmark-real: install
	$(RUN) $(PY) -m benchmarks.benchmark_real $(DEMO)-real $(REAL_ARGS)

# scripted faults against the real CLI; the table goes to docs/faults.md (make test runs a quick form)
faults: install
	$(RUN) $(PY) -m benchmarks.faults --out docs/faults.md

# speed of every stage against its baseline (benchmarks/results/throughput-<device>.json)
throughput: install
	$(RUN) $(PY) -m benchmarks.throughput

clean:
	rm -rf $(DEMO) $(DEMO)-synthetic $(DEMO)-real runs .pytest_cache
