# cmkguard tasks. `just demo` runs the guard against a local AWS emulator; `just test` runs every test.

set shell := ["bash", "-euo", "pipefail", "-c"]

moto_pin := "moto[server]==5.2.5"
cargo_fuzz_version := "0.13.2"

import 'cloudformation/cfn.just'

# Run every test: format, lints, unit, adapter, emulator, Runtime API, templates, cargo-deny.
test: venv
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --quiet -- -D warnings
    cargo test --workspace --quiet 2>&1 | tee target/test.log
    ./cloudformation/check
    just deny

# Advisories need the RustSec database from GitHub: skipped, and said so on stderr, when unreachable.
# cargo-deny: licenses, bans and sources; advisories when the RustSec database can be fetched.
deny:
    cargo deny check licenses bans sources
    if timeout 30 git ls-remote --exit-code https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1; then \
        cargo deny check advisories; \
    else \
        echo "deny: advisories NOT checked: the RustSec advisory database (github.com) is unreachable" >&2; \
    fi

# cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1 lets the stable toolchain build it.
# Fuzz event reading (through the whole engine) and configuration reading, `seconds` per target.
fuzz seconds="300":
    @command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@{{cargo_fuzz_version}}
    mkdir -p fuzz/corpus/event fuzz/corpus/config
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run event corpus/event ../testdata/events ../testdata/hostile -- -max_total_time={{seconds}}
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run config corpus/config -- -max_total_time={{seconds}}

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

# `cmkguard audit` against Cloud Custodian and the bare ListSecrets floor, same run, same moto.
bench-audit sizes="1000,10000": venv c7n-venv
    cargo build --quiet --release -p cmkguard-cli
    .venv/bin/python bench/audit.py --moto .venv/bin/moto_server --custodian .venv-c7n/bin/custodian --cmkguard target/release/cmkguard --sizes {{sizes}}
