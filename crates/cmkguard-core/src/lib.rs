//! The cmkguard engine: what a secret and its key are, what the policy says about them, and what
//! to do about it. No AWS SDK here: AWS is reached through the port traits in [`ports`],
//! implemented by `cmkguard-aws` (and by in-memory fakes under the `test-util` feature). It starts
//! no runtime but runs on the caller's Tokio one: a sweep's deadline is a Tokio timer, and
//! concurrent lookups of one key wait on a Tokio lock.

pub mod act;
pub mod advice;
pub mod arn;
pub mod config;
pub mod dispatch;
pub mod email;
pub mod event;
pub mod facts;
pub mod finding;
pub mod guard;
pub mod keyfindings;
pub mod keypolicy;
pub mod policy;
pub mod ports;
pub mod reason;
pub mod record;
pub mod sweep;
pub mod tags;

pub mod bounded;
mod cache;
mod text;

#[cfg(feature = "test-util")]
pub mod fake;

pub use config::{Action, Config, ConfigError};
pub use dispatch::{GuardError, SecretRef};
pub use event::{EventError, Input};
pub use facts::{KeyFacts, KeyManager, KeyState, Replica, SecretFacts};
pub use guard::{Context, DEADLINE_MARGIN, Guard};
pub use ports::{AwsError, Notification, Ports, Scope};
pub use reason::Reason;
pub use record::{ActionRecord, Outcome, Record, Verdict};
