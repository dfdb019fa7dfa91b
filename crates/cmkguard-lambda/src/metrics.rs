//! CloudWatch Embedded Metric Format: metrics from log lines, without a single extra AWS call.
//! One line per account and region an invocation touched: decisions by verdict, actions by
//! outcome, handling time. The lines carry no `verdict` field (only audit records do).

use std::collections::BTreeMap;
use std::time::Duration;

use cmkguard_core::Record;
use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "cmkguard";
pub const HANDLING_TIME: &str = "handling_time";

/// The EMF lines for one invocation's records.
pub fn emf_lines(
    records: &[Record],
    handling: Duration,
    timestamp_ms: u64,
    request_id: &str,
) -> Vec<String> {
    let mut metrics = Metrics::default();
    records.iter().for_each(|r| metrics.add(r));
    metrics.lines(handling, timestamp_ms, request_id)
}

/// One invocation's counts, per account and region, added up as records are made (a sweep's
/// records are not kept for them).
#[derive(Debug, Default)]
pub struct Metrics {
    groups: BTreeMap<(String, String), BTreeMap<String, u64>>,
}

impl Metrics {
    pub fn add(&mut self, record: &Record) {
        let key = (
            record.account.clone().unwrap_or_else(|| "unknown".into()),
            record.region.clone().unwrap_or_else(|| "unknown".into()),
        );
        let counts = self.groups.entry(key).or_default();
        *counts
            .entry(format!("decisions.{}", record.verdict.as_str()))
            .or_default() += 1;
        for action in &record.actions {
            let outcome = action.outcome.as_str();
            *counts
                .entry(format!("actions.{}.{outcome}", action.action.as_str()))
                .or_default() += 1;
        }
    }

    pub fn lines(self, handling: Duration, timestamp_ms: u64, request_id: &str) -> Vec<String> {
        self.groups
            .into_iter()
            .map(|((account, region), counts)| {
                let mut metrics: Vec<Value> = counts
                    .keys()
                    .map(|name| json!({"Name": name, "Unit": "Count"}))
                    .collect();
                metrics.push(json!({"Name": HANDLING_TIME, "Unit": "Milliseconds"}));
                let mut line = Map::new();
                line.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": NAMESPACE,
                            // Per account and region, and one aggregate for alarms.
                            "Dimensions": [["account", "region"], []],
                            "Metrics": metrics,
                        }],
                    }),
                );
                line.insert("account".into(), account.into());
                line.insert("region".into(), region.into());
                line.insert("request_id".into(), request_id.into());
                for (name, count) in counts {
                    line.insert(name, count.into());
                }
                line.insert(
                    HANDLING_TIME.into(),
                    json!((handling.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0),
                );
                Value::Object(line).to_string()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use cmkguard_core::config::Action;
    use cmkguard_core::{ActionRecord, Outcome, Verdict};

    use super::*;

    fn record(account: &str, verdict: Verdict, actions: Vec<ActionRecord>) -> Record {
        let meta = cmkguard_core::event::EventMeta {
            account: Some(account.into()),
            region: Some("us-east-1".into()),
            ..Default::default()
        };
        let reason = cmkguard_core::Reason::CustomerManagedKey;
        let mut record = Record::new(&meta, None, verdict, reason, None, false);
        record.actions = actions;
        record
    }

    #[test]
    fn counts_decisions_and_actions_per_account_and_region() {
        let records = [
            record(
                "111122223333",
                Verdict::NonCompliant,
                vec![ActionRecord::new(Action::Tag, Outcome::Done, "")],
            ),
            record(
                "111122223333",
                Verdict::NonCompliant,
                vec![ActionRecord::new(Action::Tag, Outcome::Skipped, "")],
            ),
            record("111122223333", Verdict::Compliant, vec![]),
            record("444455556666", Verdict::Exempt, vec![]),
        ];
        let lines = emf_lines(
            &records,
            Duration::from_micros(12_345),
            1_700_000_000_000,
            "req-1",
        );
        assert_eq!(lines.len(), 2);
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["account"], "111122223333");
        assert_eq!(first["decisions.non_compliant"], 2);
        assert_eq!(first["decisions.compliant"], 1);
        assert_eq!(first["actions.tag.done"], 1);
        assert_eq!(first["actions.tag.skipped"], 1);
        assert_eq!(first["handling_time"], 12.345);
        assert!(
            first.get("verdict").is_none(),
            "EMF lines are not audit records"
        );
        let declared: Vec<&str> = first["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in declared {
            assert!(first.get(name).is_some(), "metric `{name}` has no value");
        }
        let second: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["decisions.exempt"], 1);
    }
}
