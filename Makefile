# Every target that runs code installs first (into .venv) when needed.
# Experiments are Sacred commands: any config value can be overridden with `python -m experiments.<name> with k=v`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL ?= 2

GAME ?= pong
SEED ?= 0
FRAMES ?=
OUT ?=
MODE ?= rollouts
PRESET ?=
MODEL ?= transporter
ARCH ?=
ENC ?= gnn
GRID ?= table1
SEEDS ?= 0,1,2
GAMES ?=
RUNS_DIR ?= runs
KP ?=
POLICY ?=
CHANGE_PROBABILITY ?=
POLICIES ?= uniform,sticky:0.1
# Noisy Atari distractor bars (none|vertical|horizontal|both); NOISE= is its older name, still taken.
DISTRACTORS ?= $(NOISE)

.PHONY: install test demo data bench-data coverage lint format help train-permakey bench-permakey train-transporter \
	bench-transporter eval-keypoints train-agent evaluate-agent test-agent explore bench-agent bench-grid rl-benchmark compare

help:
	@echo "make demo                       small end-to-end run (fresh machine: installs first)"
	@echo "make test                       the test suite (what CI runs)"
	@echo "make data GAME=pong [FRAMES=n] [SEED=s] [OUT=dir] [MODE=rollouts|diverse_pairs] [PRESET=quick]"
	@echo "          [POLICY=uniform|sticky] [CHANGE_PROBABILITY=0.1]   random policy (sticky: hold actions)"
	@echo "make train-permakey GAME=pong [PRESET=quick|cpu] [DISTRACTORS=vertical]   train PermaKey, record the run"
	@echo "make train-transporter GAME=pong [MODEL=transporter|imm] [ARCH=paper|pkey_reimpl] [PRESET=quick] [DISTRACTORS=...]"
	@echo "make eval-keypoints GAME=pong RUNS=9,10 [REPORT=docs/x.md]   tracking precision/recall vs ground truth"
	@echo "make train-agent GAME=ms_pacman KP=<keypointer run id> [ENC=gnn|cnn|keyqn] [PRESET=quick|cpu] [DISTRACTORS=...] [STEPS=...]"
	@echo "                                 KP=oracle: the game's ground-truth objects (OCAtari) as keypoints, the ceiling"
	@echo "                                 KP=motion: the training-free motion baseline on the oracle's grid, the floor"
	@echo "make explore GAME=ms_pacman [KP=<keypointer run>] [PRESET=quick]   keypoint options: random options of the"
	@echo "                                 most controllable keypoint vs random actions (Transporter 4.2.2)"
	@echo "make evaluate-agent RUNS=21,22,23   the paper's test protocol over agent runs, beside the random policy"
	@echo "                                 (make test-agent: its older name, the same)"
	@echo "make rl-benchmark [GRID=table1|table2|table3|keypoints|atari100k] [PRESET=quick|paper|cpu (atari100k)] [SEEDS=0,1,2]"
	@echo "                  [GAMES=ms_pacman] [KEYPOINTERS=oracle (atari100k)]  the papers' grids on Ray (local cores; a cluster via RAY_ADDRESS), resumable"
	@echo "make compare [RUNS_DIR=runs] [GRID=table1] [PAGE=docs/x.md]   tables (ours beside the papers'), curves, aggregate"
	@echo "make bench-data                 data generation and reading throughput table"
	@echo "make coverage [GAMES=pong,ms_pacman] [FRAMES=3000] [POLICIES=uniform,sticky:0.1]"
	@echo "                                 how far the random policies move the avatar (docs/data_coverage.md)"
	@echo "make bench-permakey             PermaKey training/inference throughput, float32 vs bfloat16"
	@echo "make bench-transporter          Transporter/IMM training/inference throughput, both architectures"
	@echo "make bench-agent                agent steps/s per encoder, time shares, projected 100k-step wall time"
	@echo "make bench-grid                 wall time of the Ray grid runner by workers x threads per job"
	@echo "make lint                       ruff + mypy"

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	# OCAtari without its declared dependencies (see requirements.txt for why).
	$(VENV)/bin/pip install --quiet --no-deps ocatari==2.1.0
	touch $@

# Two test processes, one TensorFlow thread each: on a 2-core machine more threads only contend (tiny models).
test: install
	TF_NUM_INTRAOP_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadgroup tests

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

data: install
	$(PY) -m experiments.generate_data with game=$(GAME) seed=$(SEED) mode=$(MODE) \
		$(if $(FRAMES),frames=$(FRAMES)) $(if $(OUT),out=$(OUT)) $(PRESET) \
		$(if $(POLICY),policy=$(POLICY)) $(if $(CHANGE_PROBABILITY),change_probability=$(CHANGE_PROBABILITY))

bench-data: install
	$(PY) -m bench.bench_data

coverage: install
	$(PY) -m bench.coverage --games $(or $(GAMES),$(GAME)) --policies $(POLICIES) --seed $(SEED) \
		$(if $(FRAMES),--frames $(FRAMES))

# The demo grows with the project; today: a small Pong dataset with a picture of its ground truth, a quick PermaKey run
# on it (about 17 minutes on a 2-core CPU with fast bfloat16), its evaluation against ground truth, and a quick agent
# run on its keypointer. Quick Transporter is left out until its keypoints move (README, docs/transporter_quick.md):
# `make train-transporter PRESET=quick` runs it.
# The demo's dataset and keypointer: the folders the experiments name for these settings (experiments/workspace.py).
WORKSPACE = PYTHONPATH=$(CURDIR) $(PY) -m experiments.workspace
DEMO_DATA = $(shell $(WORKSPACE) dataset pong quick)
DEMO_KP = $(shell $(WORKSPACE) work permakey pong quick none --seed 0)/best

demo: install
	$(PY) -m experiments.generate_data with quick game=pong out=$(DEMO_DATA)
	$(PY) -m experiments.train_permakey with quick game=pong
	$(PY) -m experiments.eval_keypoints with game=pong frames=500 labels='["permakey"]' runs='["$(DEMO_KP)"]'
	$(PY) -m experiments.train_agent with quick game=pong keypointer=$(DEMO_KP) encoder=gnn
	$(PY) -m experiments.compare with out=reports/demo
	@echo "Pictures (ground_truth.png, keypoints.png, error_maps.png, reconstructions.png, tracking.png, episode_*.gif,"
	@echo "learning_curve.png, test_episode.gif) and tables (tracking.md, test_scores.csv) are in the newest runs/"
	@echo "folders; the comparison is in reports/demo/compare.md."

train-permakey: install
	$(PY) -m experiments.train_permakey with game=$(GAME) seed=$(SEED) $(PRESET) $(if $(DISTRACTORS),distractors=$(DISTRACTORS)) \
		$(if $(POLICY),data_policy=$(POLICY)) $(if $(CHANGE_PROBABILITY),data_change_probability=$(CHANGE_PROBABILITY))

bench-permakey: install
	$(PY) -m bench.bench_permakey

train-transporter: install
	$(PY) -m experiments.train_transporter with game=$(GAME) seed=$(SEED) model=$(MODEL) $(PRESET) \
		$(if $(ARCH),architecture=$(ARCH)) $(if $(DISTRACTORS),distractors=$(DISTRACTORS)) \
		$(if $(POLICY),data_policy=$(POLICY)) $(if $(CHANGE_PROBABILITY),data_change_probability=$(CHANGE_PROBABILITY))

bench-transporter: install
	$(PY) -m bench.bench_transporter

eval-keypoints: install
	@test -n "$(RUNS)" || { echo "Give the keypointer runs to evaluate: make eval-keypoints GAME=pong RUNS=9,10"; exit 2; }
	$(PY) -m experiments.eval_keypoints with game=$(GAME) 'runs=[$(RUNS)]' $(if $(REPORT),report=$(REPORT)) \
		$(if $(POLICY),dataset_policy=$(POLICY)) $(if $(CHANGE_PROBABILITY),dataset_change_probability=$(CHANGE_PROBABILITY))

train-agent: install
	@test -n "$(KP)" || { echo "Give the keypointer the agent sees through: make train-agent GAME=ms_pacman KP=<run id>"; \
		echo "(a run of make train-permakey or make train-transporter; ls runs/ lists them; KP=oracle for the"; \
		echo "game's ground-truth objects; KP=motion for the motion baseline) [ENC=gnn|cnn|keyqn]"; exit 2; }
	$(PY) -m experiments.train_agent with game=$(GAME) keypointer=$(KP) encoder=$(ENC) seed=$(SEED) $(PRESET) \
		$(if $(DISTRACTORS),distractors=$(DISTRACTORS)) $(if $(STEPS),steps=$(STEPS))

evaluate-agent: install
	@test -n "$(RUNS)" || { echo "Give the agent runs (one policy each): make evaluate-agent RUNS=21,22,23"; exit 2; }
	$(PY) -m experiments.evaluate_agent with 'runs=[$(RUNS)]'

test-agent: evaluate-agent  # the target's older name

# The keypointer defaults to the quick PermaKey run of GAME (trained first when missing, about 12 minutes).
EXPLORE_KP = $(or $(KP),$(shell $(WORKSPACE) work permakey $(GAME) quick none --seed 0)/best)

explore: install
	@if [ -z "$(KP)" ] && [ ! -f "$(EXPLORE_KP)/keypointer.json" ]; then \
		echo "No keypointer given (KP=...): training the quick PermaKey keypointer of $(GAME) first."; \
		$(PY) -m experiments.train_permakey with quick game=$(GAME) seed=0; fi
	$(PY) -m experiments.explore with game=$(GAME) keypointer=$(EXPLORE_KP) seed=$(SEED) $(PRESET)

bench-agent: install
	$(PY) -m bench.bench_agent

bench-grid: install
	$(PY) -m bench.bench_grid

rl-benchmark: install
	$(PY) -m experiments.run_grid --grid $(GRID) --preset $(or $(PRESET),quick) --seeds $(SEEDS) --runs $(RUNS_DIR) \
		$(if $(GAMES),--games $(GAMES)) $(if $(KEYPOINTERS),--keypointers $(KEYPOINTERS))

compare: install
	$(PY) -m experiments.compare with runs_dir=$(RUNS_DIR) $(if $(filter command line,$(origin GRID)),grid=$(GRID)) \
		preset=$(or $(PRESET),quick) 'seeds=[$(SEEDS)]' $(if $(PAGE),page=$(PAGE))
