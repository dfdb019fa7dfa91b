# cmkguard tasks. `just demo` runs the guard against a local AWS emulator; `just test` runs every test.

set shell := ["bash", "-euo", "pipefail", "-c"]

moto_pin := "moto[server]==5.2.5"

import 'cloudformation/cfn.just'

# Run every test: format, lints, unit, adapter, emulator and Lambda Runtime API tests, templates.
test: venv
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --quiet -- -D warnings
    cargo test --workspace --quiet 2>&1 | tee target/test.log
    ./cloudformation/check

# Start moto, make a key and secrets, run the guard on their events, show before and after.
demo: venv
    cargo build --quiet -p cmkguard-cli --bins --examples
    cargo run --quiet -p cmkguard-cli --example demo

# The pinned moto server, in .venv (the test harness uses it too).
venv:
    @test -x .venv/bin/moto_server || (python3 -m venv .venv && .venv/bin/pip install --quiet '{{moto_pin}}')

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
