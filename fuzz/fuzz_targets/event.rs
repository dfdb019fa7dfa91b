//! Event reading, then the whole guard over an in-memory AWS: any bytes give an error or records,
//! never a panic, and what they give is well formed.
#![no_main]

use std::sync::OnceLock;

use cmkguard_core::event::{self, Input};
use cmkguard_core::fake::FakeAws;
use cmkguard_core::fake::cases::{OWN_ACCOUNT, ctx};
use cmkguard_core::{Config, Guard, Scope, SecretFacts};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let input = match event::read_bytes(data) {
        Ok(input) => input,
        Err(e) => {
            assert!(e.to_string().starts_with("unreadable event"), "{e}");
            return;
        }
    };
    if let Input::ApiCall(call) = &input {
        assert!(call.secret_id.len() <= 2048);
        assert!(!call.secret_id.chars().any(char::is_control));
        assert!(cmkguard_core::arn::is_account_id(&call.account));
        assert!(cmkguard_core::arn::is_region(&call.region));
    }
    let value: serde_json::Value = serde_json::from_slice(data).expect("read it once already");
    // One secret the inputs can name (`x`), so the guard gets past `DescribeSecret` too.
    let fake = FakeAws::new();
    let scope = Scope::new(OWN_ACCOUNT, "us-east-1");
    fake.put_secret(
        &scope,
        SecretFacts {
            arn: format!("arn:aws:secretsmanager:us-east-1:{OWN_ACCOUNT}:secret:x-AbCdEf"),
            name: "x".into(),
            ..SecretFacts::default()
        },
    );
    let guard = Guard::new(Config::default(), fake);
    let records = runtime()
        .block_on(guard.handle(&value, &ctx()))
        .expect("the fake never fails transiently");
    assert!(!records.is_empty());
    for record in records {
        let line = record.to_json_line();
        assert!(!line.contains('\n'));
        let back: serde_json::Value = serde_json::from_str(&line).expect("a record is JSON");
        assert!(back.get("verdict").is_some());
        assert!(record.detail.as_ref().is_none_or(|d| d.len() < 4096), "{line}");
    }
});
