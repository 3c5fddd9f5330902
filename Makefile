# gmail-oauth: build, lint and test. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
VENV := .venv
PYTHON ?= python3
CARGO ?= cargo

.PHONY: test venv fmt-check clippy release lint-template run fuzz deploy clean

GMAIL_OAUTH := target/release/gmail-oauth

## test: everything CI checks, from a clean clone.
test: venv fmt-check clippy release lint-template
	@mkdir -p target
	set -o pipefail; { $(CARGO) test --workspace --all-targets && $(CARGO) test --workspace --doc; } 2>&1 | tee target/test-output.log
	@awk '/^test result:/ { passed += $$4; failed += $$6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.log

## venv: the pinned Python tools (moto_server, cfn-lint) in .venv.
venv: $(VENV)/.installed

$(VENV)/.installed: requirements-test.txt constraints-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt -c constraints-test.txt
	touch $@

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## release: the two function binaries the Runtime API tests run.
release:
	$(CARGO) build --release -p oauth-callback -p gmail-refresh
	@ls -l target/release/oauth-callback target/release/gmail-refresh

lint-template: venv
	$(VENV)/bin/cfn-lint template.yaml

## run: the main job on this machine, on the local file store: consent in the browser the
## first time (CLIENT_SECRETS=path to the JSON from Google Cloud Console), then read the inbox.
run:
	$(CARGO) build --release --quiet -p gmail-oauth-cli
	@$(GMAIL_OAUTH) status > /dev/null 2>&1; status=$$?; \
	if [ $$status -eq 4 ]; then \
	  $(GMAIL_OAUTH) login $(if $(CLIENT_SECRETS),--client-secrets $(CLIENT_SECRETS)) || exit $$?; \
	fi
	$(GMAIL_OAUTH) run

## fuzz: the hostile-input and fault-schedule tests with ten times the cases of `make test`.
fuzz: venv
	PROPTEST_CASES=100000 FAULT_SCHEDULES=10000 $(CARGO) test -p integration-tests --test hostile --test faults -- --nocapture

## deploy: build with cargo-lambda and deploy with AWS SAM (asks for the parameters once).
deploy:
	sam build && sam deploy --guided

clean:
	rm -rf $(VENV) target
