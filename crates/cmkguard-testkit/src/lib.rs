//! Test harness for cmkguard: a moto server of a test's own ([`Moto`]), SDK configurations for
//! it, a Lambda Runtime API emulator ([`RuntimeApi`]) to run the Lambda binary locally
//! ([`Process`]), and a fast stand-in for the AWS APIs of an organization-wide audit ([`Standin`]).

// Test support: a setup that fails should panic loudly, where the test is, not return errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bucket;
pub mod http;
mod moto;
mod process;
pub mod proxy;
mod runtime_api;
mod serve;
pub mod standin;
pub mod versions;
pub mod world;

pub use http::form_value;
pub use moto::{
    CARGO_LAMBDA_REQUIREMENT, DEFAULT_ACCOUNT, MOTO_REQUIREMENT, MOTO_SERVER_ENV, Moto,
    TEST_ROLE_NAME, cargo_lambda_binary, moto_server_binary, workspace_root,
};
pub use process::{
    FIXTURE_KEY_ARN, Process, audit_records, event_for, key_event_for, run_with_input,
    sibling_binary,
};
pub use proxy::{Fault, FaultProxy, RateLimits, Rule, When};
pub use runtime_api::{DEFAULT_FUNCTION_ARN, DEFAULT_TIMEOUT, Invocation, Outcome, RuntimeApi};
pub use standin::{Standin, StandinBuilder};
pub use versions::VersionEvent;
