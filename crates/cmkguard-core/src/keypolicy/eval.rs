//! The evaluator (written by the key policy review work; see `review`).

use super::{Grant, KeyReview};

/// Reviews the key `key_arn`'s policy document (JSON, as `GetKeyPolicy` returns it) and grants.
pub fn review(_key_arn: &str, _policy: &str, _grants: &[Grant]) -> KeyReview {
    KeyReview::unreadable("the key policy evaluator is not written yet")
}
