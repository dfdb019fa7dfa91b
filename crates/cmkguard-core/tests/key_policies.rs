//! The key policy table: every `testdata/key-policies/**/*.json` is reviewed (exactly its
//! `words`), its probes are asked of the review's own evaluator (`keypolicy::is_allowed`), and of
//! an independent IAM implementation, `iam-rs`. Where `iam-rs` cannot say (it does not model an
//! account principal standing for the account's roles, nor the review's refusal to resolve policy
//! variables), a probe says so in `oracle` ("skip: why"); where it is wrong, `oracle_disagrees`
//! says which answer is right and why, and the test checks that the disagreement is still there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a test: panic where it fails, print the summary

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cmkguard_core::keypolicy::{self, Access, Grant, Request};
use serde_json::Value;

fn table_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/key-policies")
}

/// Every `*.json` under `dir`, recursively, sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(json_files(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    out
}

struct Case {
    name: String,
    key_arn: String,
    /// The policy document as text: a JSON object is written out, a string is taken as is (a
    /// case of a document that is not JSON).
    policy: String,
    grants: Vec<Grant>,
    words: Vec<String>,
    probes: Vec<Probe>,
}

struct Probe {
    request: Request,
    allowed: Access,
    oracle: Oracle,
}

enum Oracle {
    Agrees,
    /// Why is checked when the table is read: `"skip: <why iam-rs cannot say>"`.
    Skip,
    Disagrees(String),
}

fn text(v: &Value, field: &str, case: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{case}: `{field}` is not a string"))
        .to_owned()
}

fn load(path: &Path) -> Case {
    let name = path
        .strip_prefix(table_dir())
        .unwrap()
        .display()
        .to_string();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        v["about"].is_string() || name.starts_with("templates"),
        "{name}: says what it is about"
    );
    let key_arn = text(&v, "key_arn", &name);
    let policy = match &v["policy"] {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap(),
    };
    let grants = v["grants"]
        .as_array()
        .map(|gs| {
            gs.iter()
                .map(|g| Grant {
                    id: text(g, "GrantId", &name),
                    grantee_principal: g["GranteePrincipal"].as_str().map(str::to_owned),
                    operations: g["Operations"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|o| o.as_str().unwrap().to_owned())
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let words = v["words"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: `words` is a list"))
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect();
    // Rendered templates (`templates/`) may hold no probes.
    let probes = v["probes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| probe(p, &key_arn, &name))
        .collect();
    Case {
        name,
        key_arn,
        policy,
        grants,
        words,
        probes,
    }
}

fn probe(p: &Value, key_arn: &str, case: &str) -> Probe {
    let context = p["context"]
        .as_object()
        .map(|c| {
            c.iter()
                .map(|(k, v)| {
                    let values = match v {
                        Value::Array(list) => list
                            .iter()
                            .map(|x| x.as_str().unwrap().to_owned())
                            .collect(),
                        one => vec![one.as_str().unwrap().to_owned()],
                    };
                    (k.clone(), values)
                })
                .collect()
        })
        .unwrap_or_default();
    let allowed = match &p["allowed"] {
        Value::Bool(true) => Access::Allowed,
        Value::Bool(false) => Access::NotAllowed,
        Value::String(s) if s == "unknown" => Access::Unknown,
        other => panic!("{case}: `allowed` is true, false or \"unknown\", not {other}"),
    };
    let oracle = match (p["oracle"].as_str(), p["oracle_disagrees"].as_str()) {
        (Some(skip), None) => {
            assert!(
                skip.starts_with("skip: "),
                "{case}: `oracle` is \"skip: why\""
            );
            Oracle::Skip
        }
        (None, Some(why)) => Oracle::Disagrees(why.to_owned()),
        (None, None) => Oracle::Agrees,
        _ => panic!("{case}: a probe has `oracle` or `oracle_disagrees`, not both"),
    };
    assert!(
        !(allowed == Access::Unknown && matches!(oracle, Oracle::Agrees)),
        "{case}: the oracle answers yes or no; an unknown probe needs `oracle`"
    );
    Probe {
        request: Request {
            principal: text(p, "principal", case),
            action: text(p, "action", case),
            resource: key_arn.to_owned(),
            context,
        },
        allowed,
        oracle,
    }
}

fn cases() -> Vec<Case> {
    json_files(&table_dir()).iter().map(|p| load(p)).collect()
}

#[test]
fn the_table_is_big_enough_and_read_recursively() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    // The templates' rendered policies (cloudformation/tests/test_rendered_key_policies.py)
    // carry no probes: they are here to give no finding.
    let files = json_files(&table_dir());
    let rendered = files
        .iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "templates"))
        .count();
    assert!(rendered >= 4, "{rendered} rendered template policies");
    let probed = cases.iter().filter(|c| !c.probes.is_empty()).count();
    assert_eq!(
        probed,
        cases.len() - rendered,
        "every hand-written case has a probe"
    );
}

#[test]
fn every_case_gets_exactly_its_words() {
    let mut wrong = Vec::new();
    for case in cases() {
        let review = keypolicy::review(&case.key_arn, &case.policy, &case.grants);
        let got: Vec<String> = review
            .words()
            .iter()
            .map(|w| w.as_str().to_owned())
            .collect();
        if got != case.words {
            wrong.push(format!(
                "{}: want {:?}, got {:?}\n  {:#?}",
                case.name, case.words, got, review.findings
            ));
        }
        for f in &review.findings {
            assert!(
                !f.detail.is_empty() && f.detail.len() <= 600,
                "{}: detail {:?}",
                case.name,
                f.detail
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn probes_agree_with_the_evaluator() {
    let mut wrong = Vec::new();
    for case in cases() {
        for p in &case.probes {
            let got = keypolicy::is_allowed(&case.policy, &p.request);
            if got != p.allowed {
                wrong.push(format!(
                    "{}: {} {} {:?}: want {:?}, got {got:?}",
                    case.name, p.request.principal, p.request.action, p.request.context, p.allowed
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The oracle's answer: allowed or not (`Deny` and `NotApplicable` alike), or why it could not say.
fn oracle(policy: &str, r: &Request) -> Result<bool, String> {
    use iam_rs::{
        Arn, Context, ContextValue, Decision, IAMPolicy, IAMRequest, Principal, PrincipalId,
    };
    let policy = IAMPolicy::from_json(policy).map_err(|e| format!("policy: {e}"))?;
    let principal =
        if r.principal.starts_with("arn:") || r.principal.bytes().all(|b| b.is_ascii_digit()) {
            Principal::Aws(PrincipalId::String(r.principal.clone()))
        } else {
            Principal::Service(PrincipalId::String(r.principal.clone()))
        };
    let data: HashMap<String, ContextValue> = r
        .context
        .iter()
        .map(|(k, v)| {
            let value = match v.as_slice() {
                [one] if one == "true" || one == "false" => ContextValue::Boolean(one == "true"),
                [one] => ContextValue::String(one.clone()),
                many => ContextValue::StringList(many.to_vec()),
            };
            (k.clone(), value)
        })
        .collect();
    let resource = Arn::parse(&r.resource).map_err(|e| format!("resource: {e}"))?;
    let request = IAMRequest::new_with_context(
        principal,
        r.action.clone(),
        resource,
        Context::with_data(data),
    );
    match iam_rs::evaluate_policy(&policy, &request).map_err(|e| format!("evaluation: {e}"))? {
        Decision::Allow => Ok(true),
        Decision::Deny | Decision::NotApplicable => Ok(false),
    }
}

#[test]
fn an_independent_implementation_agrees_with_the_probes() {
    let (mut policies, mut probes, mut agreed, mut skipped, mut disagreed) = (0, 0, 0, 0, 0);
    let mut policies_agreed = 0;
    let mut wrong = Vec::new();
    let cases = cases();
    for case in &cases {
        policies += 1;
        let mut any_agreed = false;
        for p in &case.probes {
            probes += 1;
            let want = p.allowed == Access::Allowed;
            let at = format!(
                "{}: {} {}",
                case.name, p.request.principal, p.request.action
            );
            match (&p.oracle, oracle(&case.policy, &p.request)) {
                (Oracle::Skip, _) => skipped += 1,
                (Oracle::Agrees, Ok(got)) if got == want => {
                    agreed += 1;
                    any_agreed = true;
                }
                (Oracle::Agrees, got) => {
                    wrong.push(format!("{at}: iam-rs says {got:?}, the probe {want}"))
                }
                (Oracle::Disagrees(_), Ok(got)) if got != want => disagreed += 1,
                (Oracle::Disagrees(why), got) => wrong.push(format!(
                    "{at}: iam-rs now says {got:?}, no longer disagreeing ({why})"
                )),
            }
        }
        policies_agreed += usize::from(any_agreed);
    }
    println!(
        "key policies: {policies} policies, {probes} probes, oracle agreed {agreed}, skipped {skipped}, disagreed {disagreed}; {policies_agreed} policies with an agreeing probe"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        policies_agreed >= 25,
        "only {policies_agreed} policies have a probe iam-rs agrees with"
    );
}

/// CONTRACT, "Key policy review": "the project's own keys pass the review with no finding".
#[test]
fn the_project_keys_pass() {
    for case in cases()
        .iter()
        .filter(|c| c.name.starts_with("project-key-yaml.") || c.name.starts_with("project-guard"))
    {
        let review = keypolicy::review(&case.key_arn, &case.policy, &case.grants);
        assert!(review.is_clean(), "{}: {:?}", case.name, review.findings);
    }
}
