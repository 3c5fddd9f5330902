# gmail-oauth: build, lint and test. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
VENV := .venv
PYTHON ?= python3
CARGO ?= cargo

.PHONY: test prerequisites venv sam-venv lambda-venv browser-deps fmt-check clippy release lambda lint-template publish-check run fuzz bench deploy clean

GMAIL_OAUTH := target/release/gmail-oauth
SAM_VENV := .venv-sam
LAMBDA_VENV := .venv-lambda
REGION := $(or $(AWS_REGION),$(AWS_DEFAULT_REGION))
LAMBDA_TARGET := aarch64-unknown-linux-gnu

## test: everything CI checks, from a clean clone.
test: prerequisites venv sam-venv browser-deps fmt-check clippy release lambda lint-template publish-check
	@mkdir -p target
	set -o pipefail; { $(CARGO) test --workspace --all-targets && $(CARGO) test --workspace --doc; } 2>&1 | tee target/test-output.log
	@awk '/^test result:/ { passed += $$4; failed += $$6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.log

## prerequisites: what the machine must have before anything is installed: say what is
## missing and how to get it, instead of failing halfway.
prerequisites:
	@missing=0; \
	command -v $(CARGO) > /dev/null || { echo "make: cargo not found: install Rust with rustup (https://rustup.rs)" >&2; missing=1; }; \
	command -v rustup > /dev/null || { echo "make: rustup not found: the arm64 target is added with it (https://rustup.rs)" >&2; missing=1; }; \
	command -v $(PYTHON) > /dev/null || { echo "make: $(PYTHON) not found: install Python 3.10 or later" >&2; missing=1; }; \
	$(PYTHON) -c 'import venv, ensurepip' 2> /dev/null || { echo "make: $(PYTHON) cannot make venvs: install python3-venv (Debian/Ubuntu: apt-get install python3-venv)" >&2; missing=1; }; \
	exit $$missing

## venv: the pinned Python tools (moto_server, cfn-lint) in .venv.
venv: $(VENV)/.installed

$(VENV)/.installed: requirements-test.txt constraints-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt -c constraints-test.txt
	touch $@

## sam-venv: the pinned AWS SAM CLI in a venv of its own (its pins conflict with moto's).
sam-venv: $(SAM_VENV)/.installed

$(SAM_VENV)/.installed: requirements-sam.txt constraints-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt -c constraints-sam.txt
	touch $@

## browser-deps: Debian's Chromium and ChromeDriver for the browser test.
browser-deps:
	@if ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then \
	  if command -v apt-get > /dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && apt-get install -y -q chromium chromium-driver; \
	  else \
	    echo "make: the browser test needs chromium and chromedriver on PATH (Debian: sudo apt-get install chromium chromium-driver; macOS: brew install chromium chromedriver)" >&2; \
	    exit 1; \
	  fi; \
	fi

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## release: the two function binaries and the example Lambda the Runtime API tests run.
release:
	$(CARGO) build --release -p oauth-callback -p gmail-refresh -p label-new-mail
	@ls -l target/release/oauth-callback target/release/gmail-refresh target/release/label-new-mail

## lambda: the arm64 bootstraps that `cargo lambda deploy` and `sam build` ship, cross-built
## with cargo-lambda and zig from the venv.
lambda: venv
	rustup target add $(LAMBDA_TARGET)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 -p oauth-callback -p gmail-refresh
	@ls -l target/lambda/oauth-callback/bootstrap target/lambda/gmail-refresh/bootstrap

## publish-check: the library crate packages and builds from its package alone, as
## `cargo publish` would upload it (nothing is uploaded).
publish-check:
	$(CARGO) publish --dry-run --allow-dirty -p gmail-oauth

lint-template: venv sam-venv
	$(VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --template template.yaml --region us-east-1

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
	PROPTEST_CASES=100000 FAULT_SCHEDULES=10000 $(CARGO) test -p integration-tests --test hostile --test faults --test events_faults -- --nocapture

## bench: gmail-refresh against the Python baseline (cold, +20 ms per call, warm) and the
## arm64 sizes; one run over 1 to 1,000 mailboxes under Parameter Store's quotas; events
## against list-and-get. Prints tables and writes BENCHMARKS.md. Not part of `make test`.
bench: venv release lambda
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 --output-format zip \
	  --lambda-dir target/lambda-zip -p oauth-callback -p gmail-refresh
	$(CARGO) run --release --quiet -p integration-tests --bin bench
	$(CARGO) run --release --quiet -p integration-tests --bin bench_scale
	$(CARGO) run --release --quiet -p integration-tests --bin bench_events

## lambda-venv: only cargo-lambda and zig, for `make deploy` (not the test tools).
lambda-venv: $(LAMBDA_VENV)/.installed

$(LAMBDA_VENV)/.installed: requirements-lambda.txt
	$(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-lambda.txt
	touch $@

## deploy: build with cargo-lambda and deploy with AWS SAM, as samconfig.toml says (the pinned
## SAM CLI; cargo-lambda and zig from their own venv), in $AWS_REGION (the region the client
## secrets and tokens are stored in). The first time, give the parameters:
## make deploy PARAMETERS="AllowedAccounts=me@example.com AlertEmail=me@example.com"
deploy: prerequisites
	@test -n "$(REGION)" || { echo "make deploy: set AWS_REGION to the region of your parameters (export AWS_REGION=eu-west-1): the stack, put-client-secrets and push must use the same one" >&2; exit 2; }
	$(MAKE) --no-print-directory lambda-venv sam-venv
	rustup target add $(LAMBDA_TARGET)
	PATH="$(CURDIR)/$(LAMBDA_VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam deploy --region $(REGION) $(if $(PARAMETERS),--parameter-overrides $(PARAMETERS))

clean:
	rm -rf $(VENV) $(SAM_VENV) $(LAMBDA_VENV) target
