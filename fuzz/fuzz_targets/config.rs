//! Configuration reading: `NAME=value` lines as the environment; a bad value is an error that
//! names a variable the guard reads, never a panic.
#![no_main]

use cmkguard_core::Config;
use cmkguard_core::config::VARIABLES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let vars: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match Config::from_lookup(lookup) {
        Ok(config) => {
            if config.acts(cmkguard_core::Action::Notify) {
                assert!(config.sns_topic_arn.is_some());
            }
            assert!(config.key_alias.starts_with("alias/"));
        }
        Err(e) => {
            assert!(VARIABLES.contains(&e.variable), "{e}");
            assert!(e.to_string().contains(e.variable), "{e}");
        }
    }
});
