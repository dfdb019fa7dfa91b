//! Keys are compared by the ARN they resolve to, in one place (`Record::is_on_key`): a secret
//! that names the designated key by its alias or its key id is on that key, and is never
//! "re-encrypted" onto it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use cmkguard_core::config::Config;
use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{KEY_ALIAS, ctx};
use cmkguard_core::{Action, Guard, KeyFacts, KeyState, Outcome, Reason, Verdict};

mod common;

use common::{arn, cmk, event, scope, secret};

#[tokio::test]
async fn a_secret_naming_the_designated_key_by_alias_or_id_is_never_moved_onto_it() {
    for named_as in [
        KEY_ALIAS.to_owned(),
        "designated".to_owned(),
        cmk("designated"),
    ] {
        let fake = FakeAws::new();
        fake.put_key(
            &scope(),
            KeyFacts::customer(cmk("designated"), KeyState::Enabled),
        );
        fake.put_alias(&scope(), KEY_ALIAS, &cmk("designated"));
        fake.put_secret(&scope(), secret("app/db", Some(&named_as)));
        // The designated key is not on the allowed list: the secret is non-compliant on it.
        let mut config: Config = common::config("tag,remediate", &[]);
        config.allowed_key_arns = Some([cmk("other")].into());
        let guard = Guard::new(config, fake);
        let records = guard
            .handle(&event("CreateSecret", &arn("app/db")), &ctx())
            .await
            .unwrap();
        let record = &records[0];
        assert_eq!(
            (record.verdict, record.reason),
            (Verdict::NonCompliant, Reason::KeyNotAllowed),
            "{named_as}"
        );
        let remediate = record
            .actions
            .iter()
            .find(|a| a.action == Action::Remediate)
            .unwrap();
        assert_eq!(
            remediate.outcome,
            Outcome::Failed,
            "{named_as}: {remediate:?}"
        );
        assert!(remediate.detail.contains("already on"), "{remediate:?}");
        assert_eq!(guard.ports().count("UpdateSecret"), 0, "{named_as}");
    }
}
