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
