# tfckd_lite: two commands on a fresh machine.
#   make lab    set everything up, then open JupyterLab on notebooks/00_overview.ipynb
#   make test   set everything up, then run the unit tests and every notebook (nbval, JupyterLab)
# Everything lives in .venv inside the project; nothing is registered outside it.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tfckd-installed
# Keep Jupyter, IPython and matplotlib state inside the project's environment.
export JUPYTER_RUNTIME_DIR := $(abspath $(VENV))/share/jupyter/runtime
export IPYTHONDIR          := $(abspath $(VENV))/etc/ipython
export MPLCONFIGDIR        := $(abspath $(VENV))/etc/matplotlib
PYTEST_NOTEBOOKS := --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

.PHONY: setup lab test unit notebooks bench clean help system-deps browser-deps data data-mc pretrained pretrained-mc channels assignments reproduce reproduce-status reproduce-stage \
	reproduce-mc reproduce-mc-status reproduce-mc-stage

help:
	@echo "make lab    - set up .venv and open JupyterLab on the overview notebook"
	@echo "make test   - set up .venv and run unit tests + all notebooks (nbval, and in JupyterLab in Chromium)"
	@echo "make bench  - print model and distillation benchmarks for this machine"
	@echo "make data   - build the 'small' reduced dataset in data/generated/small"
	@echo "make data-mc - build 'mc-small', the simulated multi-channel L3DAS23, in data/generated/mc-small"
	@echo "make pretrained - retrain and export the shipped lite teacher and student (~2.5 h)"
	@echo "make pretrained-mc - train and export the 4-channel lite teacher and student, and the W-only lite-teacher-w, on mc-small"
	@echo "make channels - lite-teacher-mc4 against lite-teacher-w and lite-teacher given W only, on mc-small's test scenes (needs make pretrained-mc)"
	@echo "make reproduce - every distillation method x 3 seeds on 'small'; ships the results (GPU: minutes, CPU: many hours)"
	@echo "make reproduce-status - how far 'make reproduce' has got, and the time left"
	@echo "make reproduce-stage - git add the experiment's finished runs and the resume files of runs in progress"
	@echo "make reproduce-mc - none, frame-similarity and tfckd x 3 seeds on the 4-channel 'mc-small'; ships its students and report (needs make pretrained-mc)"
	@echo "make reproduce-mc-status / reproduce-mc-stage - the same as above for the multi-channel experiment"
	@echo "make assignments - generate the student versions of the graded assignments (nbgrader)"

# The stamp is rebuilt only when the dependency list changes, so a second run is instant.
# pyproject.toml declares the oldest torch the library supports; constraints.txt pins the exact
# CPU build installed here, so that no dependency can pull a newer torch or a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -c constraints.txt -e ".[lab,test]"
	@touch $(STAMP)

# JupyterLab's settings for this environment only (first-run prompts off): the overrides file
# in the environment's own settings folder; the browser tests serve JupyterLab with the same file.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
$(LAB_OVERRIDES): jupyterlab-settings/overrides.json $(STAMP)
	@mkdir -p $(dir $@)
	cp $< $@

setup: system-deps browser-deps $(STAMP) $(LAB_OVERRIDES)

# Real recorded speech for the reduced dataset: the asterisk G.722 prompt packages (Debian).
# Instant when present; installed with apt-get when running as root (CI); otherwise a hint is
# printed and the build goes on (the dataset builder then makes an espeak-only set).
ASTERISK_SOUNDS   ?= /usr/share/asterisk/sounds
ASTERISK_DIRS     := en_US_f_Allison es_MX_f_Allison fr_CA_f_June it_IT_m_Carlo ru_RU_f_IvrvoiceRU
ASTERISK_PACKAGES := asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722 \
                     asterisk-core-sounds-fr-g722 asterisk-core-sounds-it-g722 \
                     asterisk-core-sounds-ru-g722 asterisk-core-sounds-en
system-deps:
	@missing=""; for d in $(ASTERISK_DIRS); do \
	  test -d "$(ASTERISK_SOUNDS)/$$d" || missing="$$missing $$d"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing the asterisk prompt packages (missing:$$missing)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     --no-install-recommends $(ASTERISK_PACKAGES) >/dev/null) \
	  || echo "WARNING: apt-get failed; the dataset will be espeak-only"; \
	else \
	  echo "NOTE: recorded speech missing (asterisk prompt folders:$$missing)."; \
	  echo "      Install it with: sudo apt-get install -y --no-install-recommends $(ASTERISK_PACKAGES)"; \
	  echo "      Continuing; the dataset builder will make an espeak-only set."; \
	fi

# A browser for the browser tests (tests/browser: every notebook run in JupyterLab): Debian's
# Chromium, driven by Playwright (a test requirement); Playwright's own browser download is not
# used. Installed with apt-get when running as root (CI); otherwise the browser tests are skipped
# and pytest names the reason.
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (for the browser tests)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	     >/dev/null) || echo "WARNING: apt-get failed; the browser tests will be skipped"; \
	else \
	  echo "NOTE: Chromium is missing, so the browser tests (tests/browser) will be skipped."; \
	  echo "      Install it with: sudo apt-get install -y chromium"; \
	fi

# The 'small' reduced dataset for real training (about a minute; verified and skipped when built).
data: setup
	$(PY) -m tfckd_lite data build --profile small --out data/generated/small

# 'mc-small', the simulated reduced L3DAS23 (rooms, two Ambisonics microphones; minutes).
data-mc: setup
	$(PY) -m tfckd_lite data build --profile mc-small --out data/generated/mc-small

# The shipped lite models (tfckd_lite/pretrained/), exactly as they were made: the teacher
# (20 epochs) and the student baseline (6 epochs, the budget of the distillation experiment)
# train side by side on one thread each (about 2.5 h on 2 cores; an interrupted run resumes),
# then each best epoch is scored on the test split and exported (on the view of the corpus the
# run was trained on: export reads --mics/--channel from the run's recorded command).
# $(call train-run,NAME,PRESET,EPOCHS,DATA,EXTRA TRAIN FLAGS): one single-threaded run into
# runs/NAME, its output in runs/NAME.log
train-run = OMP_NUM_THREADS=1 $(PY) -m tfckd_lite train --preset $(2) --out runs/$(1) \
	--epochs $(3) --data $(4) --valid-clips 100 --checkpoint-every 50 $(5) > runs/$(1).log 2>&1
# $(call train-and-export,TEACHER,STUDENT,DATA,EXTRA TRAIN FLAGS[,AFTER,AFTER PRESET,AFTER FLAGS])
# AFTER (optional): a third 20-epoch run, NAME AFTER of preset AFTER PRESET with AFTER FLAGS,
# started on the student's thread once the student has finished, so that two runs at most
# share the two cores (a third in parallel would only slow the other two)
define train-and-export
	@mkdir -p runs; set -e; \
	$(call train-run,$(1),$(1),20,$(3),$(4)) & teacher=$$!; \
	( $(call train-run,$(2),$(2),6,$(3),$(4)) \
	  $(if $(5),&& $(call train-run,$(5),$(6),20,$(3),$(7))) ) & student=$$!; \
	echo "training $(1) and $(2)$(if $(5), then $(5)) (logs in runs/*.log)"; \
	wait $$teacher; wait $$student
	$(PY) -m tfckd_lite export --run runs/$(1) --name $(1) --data $(3)
	$(PY) -m tfckd_lite export --run runs/$(2) --name $(2) --data $(3)
	$(if $(5),$(PY) -m tfckd_lite export --run runs/$(5) --name $(5) --data $(3))
endef

pretrained: data
	$(call train-and-export,lite-teacher,lite-student,data/generated/small,)

# The shipped 4-channel models (issue 28): the same schedule on the simulated L3DAS23
# (mc-small, microphone A), and lite-teacher-w, the fair single-channel baseline of
# `make channels`: the single-channel lite teacher trained on W (channel 0 of mic A) of the same
# reverberant scenes, after the student (the shipped lite-teacher never heard a room).
pretrained-mc: data-mc
	$(call train-and-export,lite-teacher-mc4,lite-student-mc4,data/generated/mc-small,--mics A,lite-teacher-w,lite-teacher,--mics A --channel 0)

# What the extra channels are worth (issue 28, notebook 07): lite-teacher-mc4 against the
# single-channel lite-teacher-w (trained on W of the same scenes) and lite-teacher (trained dry)
# given W only, on the 200 test scenes of mc-small, per RT60 and SNR band with paired clip-level
# intervals; writes tfckd_lite/pretrained/results/channels.{json,md} (minutes; needs
# `make pretrained-mc`).
channels: data-mc
	$(PY) -m tfckd_lite channels --multi lite-teacher-mc4 --mono lite-teacher-w lite-teacher \
	  --data data/generated/mc-small --out tfckd_lite/pretrained/results/channels.json

# The distillation experiment of notebook 05: every method x 3 seeds under one budget, λ tuned on
# validation, and seeds 3-5 of the leading methods (issue 27 §4); resumable (re-run the same command after an interruption). --ship exports the best
# seeds and the report into tfckd_lite/pretrained. On a CPU, two single-threaded runs side by side.
# The folder is committed, so a fresh clone resumes where it stopped. On a machine lent for a while:
#   STOP_AFTER=2.6  trains for 2.6 h, then stops the runs in progress at their last checkpoint;
#                   `make reproduce-stage` then commits them too, and the next machine continues
#   HOURS=2.5       starts only runs estimated to finish within 2.5 h and waits for them
REPRODUCE_ARGS := --data data/generated/small --out experiments/distillation-small --jobs 2 \
	--extra-seeds 3 4 5 --extra-seed-methods none tfckd frame-similarity tfckd-intra
# $(call reproduce-experiment,ARGS,EXTRA FLAGS): run or resume one experiment, under the budget
# HOURS or STOP_AFTER when given
define reproduce-experiment
	$(PY) -m tfckd_lite reproduce $(1) $(if $(HOURS),--hours $(HOURS)) \
	  $(if $(STOP_AFTER),--stop-after $(STOP_AFTER)) $(2)
endef
reproduce: data
	$(call reproduce-experiment,$(REPRODUCE_ARGS),--ship)
reproduce-status: setup
	@$(PY) -m tfckd_lite reproduce $(REPRODUCE_ARGS) --status
# stage what a fresh clone resumes from: finished runs, and the resume files of runs in progress
# (STAGE=finished leaves those out: for a commit in the middle of a session)
STAGE ?= all
reproduce-stage: setup
	@$(PY) -m tfckd_lite reproduce $(REPRODUCE_ARGS) --stage $(STAGE)

# The same experiment on the simulated L3DAS23 (issue 28, notebook 07): microphone A (4 channels),
# the 4-channel lite teacher (`make pretrained-mc` ships it) and student, the leading methods x 3
# seeds, λ tuned on validation with seed 0 as above. --ship exports under names of its own, beside
# the single-channel ones: lite-student-mc4-<method> and pretrained/results/distillation-mics-A.*
# (notebook 07 and the README read them).
REPRODUCE_MC_ARGS := --data data/generated/mc-small --out experiments/distillation-mc-small \
	--mics A --teacher lite-teacher-mc4 --student lite-student-mc4 \
	--methods none frame-similarity tfckd --seeds 0 1 2 --jobs 2
reproduce-mc: data-mc
	$(call reproduce-experiment,$(REPRODUCE_MC_ARGS),--ship)
reproduce-mc-status: setup
	@$(PY) -m tfckd_lite reproduce $(REPRODUCE_MC_ARGS) --status
reproduce-mc-stage: setup
	@$(PY) -m tfckd_lite reproduce $(REPRODUCE_MC_ARGS) --stage $(STAGE)

# Student versions of the graded assignments: nbgrader replaces the solutions by stubs and writes
# notebooks/assignments/release/<name>/ (and its gradebook.db). nbgrader runs helper programs
# (alembic) from PATH, hence the environment's bin/ first. Guide: notebooks/assignments/README.md.
ASSIGNMENTS := $(notdir $(wildcard notebooks/assignments/source/*))
assignments: setup
	cd notebooks/assignments && for name in $(ASSIGNMENTS); do \
	  PATH="$(abspath $(VENV))/bin:$$PATH" $(abspath $(PY)) -m nbgrader generate_assignment $$name \
	    --force || exit 1; done

lab: setup
	cd notebooks && ../$(VENV)/bin/jupyter lab 00_overview.ipynb

unit: setup
	$(PY) -m pytest tests

notebooks: setup
	$(PY) -m pytest notebooks $(PYTEST_NOTEBOOKS)

test: setup
	$(PY) -m pytest tests notebooks $(PYTEST_NOTEBOOKS)

bench: setup
	$(PY) bench/bench_models.py
	$(PY) bench/bench_distill.py
	$(PY) bench/bench_precision.py
	$(PY) bench/bench_scaling.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
