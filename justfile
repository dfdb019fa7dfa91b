# cmkguard tasks. `just demo` runs the guard against a local AWS emulator; `just test` runs every test.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Every tool a recipe needs is installed here, pinned, on first use.
moto_pin := "moto[server]==5.2.5"
cargo_lambda_pin := "cargo-lambda==1.9.2"
cargo_deny_version := "0.20.2"
cargo_fuzz_version := "0.13.2"
root := justfile_directory()
# cargo-installed tools (cargo-deny), kept out of ~/.cargo so a pin is this checkout's own.
tools := root / ".tools"
cargo_deny := tools / "bin" / "cargo-deny"
cargo_lambda := root / ".venv-lambda" / "bin" / "cargo-lambda"
# A copy of the RustSec advisory database (with SNAPSHOT.md), for `just deny` without GitHub.
advisory_snapshot := root / ".." / "shared" / "advisory-db"
# Cargo's target directory, wherever CARGO_TARGET_DIR puts it (relative to the checkout, as
# recipes run there); the Rust test log goes there, and `.ci/run` reads it from there.
target_dir := env("CARGO_TARGET_DIR", root / "target")
test_log := target_dir / "test.log"
# `cargo`, replaceable (`just --set cargo ...`) so the log handling can be tested on its own.
cargo := "cargo"
# The browser of `just test-browser`: Debian's package.
chromium := "/usr/bin/chromium"

import 'cloudformation/cfn.just'

# Run every test: format, lints, unit, adapter, emulator, Runtime API, templates, cargo-deny.
test: venv lambda-tools deny-tool
    {{cargo}} fmt --all --check
    {{cargo}} clippy --workspace --all-targets --quiet -- -D warnings
    {{just_executable()}} --justfile '{{justfile()}}' --set cargo '{{cargo}}' rust-tests
    ./cloudformation/check
    {{just_executable()}} --justfile '{{justfile()}}' deny

# The Rust tests (`cargo test`, with `args`), their output also in `test_log` for `.ci/run`.
rust-tests *args:
    mkdir -p '{{parent_directory(test_log)}}'
    {{cargo}} test --workspace --quiet {{args}} 2>&1 | tee '{{test_log}}'

# cargo-deny: licenses, bans and sources; then advisories, offline against the RustSec snapshot at
# `advisory_snapshot` when there is one (GitHub is out of reach here), else against the database
# cargo-deny fetches (see .ci/deny-advisories).
deny: deny-tool
    '{{cargo_deny}}' check licenses bans sources
    ./.ci/deny-advisories '{{cargo_deny}}' '{{advisory_snapshot}}'

# cargo-deny, pinned and --locked, built once into .tools. Its release profile (fat LTO, one
# codegen unit) takes ~10 minutes on 2 cores; opt-level 1 without LTO builds the same source in
# ~2 and checks this workspace in about a second.
deny-tool:
    @'{{cargo_deny}}' --version 2>/dev/null | grep -qx 'cargo-deny {{cargo_deny_version}}' || { \
        echo "installing cargo-deny {{cargo_deny_version}} into {{tools}} (once, ~2 minutes)" >&2; \
        CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
        {{cargo}} install --quiet --locked --root '{{tools}}' 'cargo-deny@{{cargo_deny_version}}'; }

# cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1 lets the stable toolchain build it.
# Fuzz event reading (through the whole engine) and configuration reading, `seconds` per target.
fuzz seconds="300":
    @test -x '{{tools}}/bin/cargo-fuzz' || cargo install --locked --root '{{tools}}' cargo-fuzz@{{cargo_fuzz_version}}
    mkdir -p fuzz/corpus/event fuzz/corpus/config
    cd fuzz && PATH='{{tools}}/bin':"$PATH" RUSTC_BOOTSTRAP=1 cargo fuzz run event corpus/event ../testdata/events ../testdata/hostile -- -max_total_time={{seconds}}
    cd fuzz && PATH='{{tools}}/bin':"$PATH" RUSTC_BOOTSTRAP=1 cargo fuzz run config corpus/config -- -max_total_time={{seconds}}

# The HTML report in a real headless Chromium (Debian's): every finding row and the totals, the
# filters and the sort, hostile names and tags shown as text, nothing fetched. A moto world is
# audited into `target_dir/browser/`; tests/browser/report.test.mjs drives the browser.
test-browser: venv chromium browser-deps
    cargo build --quiet -p cmkguard-cli --bins --examples
    cargo run --quiet -p cmkguard-cli --example report_world -- browser '{{target_dir}}/browser'
    cargo run --quiet -p cmkguard-cli --example report_world -- big '{{target_dir}}/browser-big'
    cd tests/browser && REPORT_DIR='{{target_dir}}/browser' CHROMIUM='{{chromium}}' node --test report.test.mjs
    cd tests/browser && REPORT_DIR='{{target_dir}}/browser-big' CHROMIUM='{{chromium}}' node --test paging.test.mjs

# The README's picture (docs/report.png): a demo organization's report rendered by the same browser.
report-screenshot: venv chromium browser-deps
    cargo build --quiet -p cmkguard-cli --bins --examples
    cargo run --quiet -p cmkguard-cli --example report_world -- demo '{{target_dir}}/report-demo'
    cd tests/browser && REPORT_DIR='{{target_dir}}/report-demo' CHROMIUM='{{chromium}}' node screenshot.mjs '{{root}}/docs/report.png'

# Debian's Chromium, installed when missing and this machine allows (root with apt-get).
chromium:
    @test -x '{{chromium}}' || { \
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
            echo "installing Debian's chromium (once)" >&2; \
            export DEBIAN_FRONTEND=noninteractive; \
            apt-get install -y -qq chromium >/dev/null 2>&1 \
                || { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }; \
        else \
            echo "the browser test needs Chromium at {{chromium}}: install it with \`sudo apt-get install chromium\` (Debian, Ubuntu), or set it with \`just --set chromium PATH test-browser\`" >&2; \
            exit 1; \
        fi; }
    @test -x '{{chromium}}' || { echo "chromium: {{chromium}} missing after apt-get install" >&2; exit 1; }

# playwright-core, pinned by tests/browser/package-lock.json (it drives the system Chromium; it
# downloads no browser of its own).
browser-deps:
    @test -d tests/browser/node_modules/playwright-core || (cd tests/browser && npm ci --silent --no-audit --no-fund)

# Start moto, make a key and secrets, run the guard on their events, show before and after, and
# write the audit's HTML report.
demo: venv
    cargo build --quiet -p cmkguard-cli --bins --examples
    cargo run --quiet -p cmkguard-cli --example demo

# The pinned moto server, in .venv (the test harness uses it too).
venv:
    @test -x .venv/bin/moto_server || (python3 -m venv .venv && .venv/bin/pip install --quiet '{{moto_pin}}')

# The pinned cargo-lambda (its PyPI package), in .venv-lambda: `just watch`, `just invoke`, tests.
lambda-tools:
    @test -x '{{cargo_lambda}}' || (python3 -m venv .venv-lambda && .venv-lambda/bin/pip install --quiet '{{cargo_lambda_pin}}')

# The local Lambda loop: moto with the designated key, and `cargo lambda watch` running the
# function from the working tree (rebuilt on every change). Then, in another terminal:
# `just invoke testdata/events/CreateSecret-default-key.json`.
watch port="9000": venv lambda-tools
    cargo build --quiet -p cmkguard-cli --examples
    PATH='{{parent_directory(cargo_lambda)}}':"$PATH" cargo run --quiet -p cmkguard-cli --example local -- watch {{port}}

# Delivers one event to the function under `just watch` and shows its audit records.
invoke event: lambda-tools
    PATH='{{parent_directory(cargo_lambda)}}':"$PATH" cargo run --quiet -p cmkguard-cli --example local -- invoke '{{invocation_directory() / event}}'

# Format and lint.
fmt:
    cargo fmt --all
    cargo clippy --workspace --all-targets -- -D warnings

c7n_pin := "c7n==0.9.53"

# Cloud Custodian, pinned, in its own venv (the peer the benchmarks compare against).
c7n-venv:
    @test -x .venv-c7n/bin/custodian || (python3 -m venv .venv-c7n && .venv-c7n/bin/pip install --quiet '{{c7n_pin}}')

# The Lambda's performance budget: init, requests and time per event, peak RSS, zip size.
bench: venv c7n-venv
    cargo build --release --quiet -p cmkguard-lambda --bins --example hello
    cargo bench --quiet -p cmkguard-lambda --bench lambda

# `cmkguard audit` against Cloud Custodian and the bare ListSecrets floor, same run, same moto.
bench-audit sizes="1000,10000": venv c7n-venv
    cargo build --quiet --release -p cmkguard-cli
    .venv/bin/python bench/audit.py --moto .venv/bin/moto_server --custodian .venv-c7n/bin/custodian --cmkguard target/release/cmkguard --sizes {{sizes}}

# A burst of 300 CreateSecret events from 30 concurrent handlers under AWS's quotas (scaled to a
# fifth), through the CLI and through the Lambda binary: failures, throttling, losses, time.
bench-burst events="300" workers="30": venv
    cargo build --release --quiet -p cmkguard-cli -p cmkguard-lambda --bins
    BURST_EVENTS={{events}} BURST_WORKERS={{workers}} cargo bench --quiet -p cmkguard-lambda --bench burst

# `cmkguard audit --apply` with `securityhub` against the same audit without it, same run, same moto.
bench-securityhub sizes="10000": venv
    cargo build --quiet --release -p cmkguard-cli
    .venv/bin/python bench/audit.py --securityhub --moto .venv/bin/moto_server --cmkguard '{{target_dir}}/release/cmkguard' --sizes {{sizes}}

# `cmkguard audit --organization --all-regions` at 1,000 and 5,000 member accounts x 17 regions,
# and the warm Lambda across 1,000 accounts, against the testkit's AWS stand-in (100 ms per
# answer): wall time against the critical path, peak RSS, requests against the floor. Knobs:
# ORG_ACCOUNTS, ORG_DELAY_MS, ORG_STS_RATE, ORG_CONCURRENCY, ORG_LAMBDA_ACCOUNTS, ORG_MAX_RSS_MIB
# (see benches/org.rs); ORG_CMKGUARD and ORG_LAMBDA (comma lists of `label=path`) compare builds
# in one run.
bench-org:
    cargo build --release --quiet -p cmkguard-cli -p cmkguard-lambda --bins
    cargo bench --quiet -p cmkguard-lambda --bench org

# The organization's HTML report (1,000 accounts x 17 regions, one finding per account-region) in
# headless Chromium, as a person uses it: open, filter by an account, clear, sort; against the
# golden report in the same run (tests/browser/scale.mjs).
bench-report: chromium browser-deps
    cargo build --release --quiet -p cmkguard-cli --bins
    ORG_SECTIONS=audit ORG_ACCOUNTS=1000 ORG_FORMATS=html ORG_REPORT_DIR='{{target_dir}}/bench-report' cargo bench --quiet -p cmkguard-lambda --bench org
    cd tests/browser && REPORT='{{target_dir}}/bench-report/report.html' BASELINE='{{root}}/testdata/audit/audit.html' CHROMIUM='{{chromium}}' node scale.mjs
