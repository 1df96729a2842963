# Two commands do all the set-up on a fresh machine:
#   make run    install what is needed, migrate the SQLite database, serve http://127.0.0.1:5000 with a worker
#   make test   install what is needed and run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# System libraries WeasyPrint loads (Pango, HarfBuzz's subsetter): all the app needs. The tests also need the
# PDF tools (poppler) and a browser (Debian's Chromium, driven by Playwright).
RUN_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fontconfig
TEST_PACKAGES := $(RUN_PACKAGES) poppler-utils chromium chromium-driver

.PHONY: run test bench sysdeps sysdeps-test install-packages venv clean lock user flask

sysdeps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(RUN_PACKAGES)"

sysdeps-test:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(TEST_PACKAGES)"

install-packages:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "Please install these system packages (Debian/Ubuntu names):$$missing"; exit 1; \
	fi

# requirements.txt is the lock: every package, direct or not, pinned with its hashes (made from requirements.in
# by `make lock`). pip refuses anything whose hash is not in it.
$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

# The web server and the task queue's worker (PDFs, email) together; stopping the server (Ctrl-C) stops the worker.
PORT ?= 5000
run: sysdeps $(STAMP)
	$(BIN)/flask --app wsgi screening check-rules
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/flask --app wsgi screening worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/flask --app wsgi run --host 127.0.0.1 --port $(PORT)

test: sysdeps-test $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Staff accounts without typing the venv's path: the password is asked for (twice, hidden).
#   make user EMAIL=pat@clinic.example NAME="Pat Smith" ROLES="practitioner admin"
user: $(STAMP)
	@test -n "$(EMAIL)" -a -n "$(ROLES)" || { echo 'usage: make user EMAIL=... NAME="..." ROLES="practitioner desk admin"'; exit 2; }
	$(BIN)/flask --app wsgi screening create-user "$(EMAIL)" --name "$(NAME)" $(foreach r,$(ROLES),--role $(r))

# Any other command of the app: make flask ARGS="screening backup /mnt/backup"
flask: $(STAMP)
	$(BIN)/flask --app wsgi $(ARGS)

bench: sysdeps-test $(STAMP)
	$(BIN)/python bench/bench_rules.py
	$(BIN)/python bench/bench_pages.py
	$(BIN)/python bench/bench_pdf.py
	$(BIN)/python bench/bench_submit.py
	$(BIN)/python bench/bench_list.py
	$(BIN)/python bench/bench_concurrency.py
	$(BIN)/python bench/bench_appointments.py

# Re-make the lock after changing requirements.in (pip-tools runs in its own throwaway venv, outside the lock).
PIP_TOOLS := pip-tools==7.6.2
lock:
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_TOOLS)
	$(VENV)-lock/bin/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.txt requirements.in
	rm -rf $(VENV)-lock

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
