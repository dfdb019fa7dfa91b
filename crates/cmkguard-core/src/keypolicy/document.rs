//! A key policy document, as `GetKeyPolicy` returns it, read into statements. Anything that is
//! not a policy is an error (the review's `key-policy-unreadable`), never a statement skipped.

use serde_json::{Map, Value};

use super::condition::Condition;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Allow,
    Deny,
}

/// What kind of principal a `Principal` entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PrincipalKind {
    /// `"Principal": "*"`: everyone.
    Anyone,
    /// `{"AWS": ...}`: an account, a user, a role (or `*`).
    Aws,
    /// `{"Service": ...}`: an AWS service principal.
    Service,
    /// `Federated` or `CanonicalUser`: never meaningful in a key policy.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PrincipalEntry {
    pub(super) kind: PrincipalKind,
    pub(super) id: String,
}

/// A list of patterns, or its negation (`NotAction`, `NotPrincipal`, `NotResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed<T> {
    pub(super) not: bool,
    pub(super) items: Vec<T>,
}

#[derive(Debug, Clone)]
pub(super) struct Statement {
    /// 1-based, for "statement #N" when there is no `Sid`.
    pub(super) position: usize,
    pub(super) sid: Option<String>,
    pub(super) effect: Effect,
    pub(super) principals: Listed<PrincipalEntry>,
    pub(super) actions: Listed<String>,
    pub(super) resources: Listed<String>,
    pub(super) conditions: Vec<Condition>,
}

impl Statement {
    /// How a person finds the statement: its `Sid` in backticks, else its position.
    pub(super) fn label(&self) -> String {
        match &self.sid {
            Some(sid) if !sid.is_empty() => format!("`{}`", super::quote(sid)),
            _ => format!("statement #{}", self.position),
        }
    }
}

/// Reads a policy document; the error says what is wrong, for a person.
pub(super) fn parse(text: &str) -> Result<Vec<Statement>, String> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("the key policy is not JSON ({e})"))?;
    let statements = match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return Err("the key policy has no `Statement` list".into()),
    };
    statements
        .into_iter()
        .enumerate()
        .map(|(i, st)| statement(i + 1, st).map_err(|why| format!("statement #{}: {why}", i + 1)))
        .collect()
}

fn statement(position: usize, value: &Value) -> Result<Statement, String> {
    let obj = value.as_object().ok_or("not an object")?;
    let effect = match obj.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err("`Effect` is neither `Allow` nor `Deny`".into()),
    };
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("`Sid` is not a string".into()),
    };
    let (not, v) = either(obj, "Principal", "NotPrincipal")?;
    let principals = Listed {
        not,
        items: principal_entries(v)?,
    };
    let (not, v) = either(obj, "Action", "NotAction")?;
    let actions = Listed {
        not,
        items: strings(v, "Action")?,
    };
    let (not, v) = either(obj, "Resource", "NotResource")?;
    let resources = Listed {
        not,
        items: strings(v, "Resource")?,
    };
    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(block)) => conditions(block)?,
        Some(_) => return Err("`Condition` is not an object".into()),
    };
    Ok(Statement {
        position,
        sid,
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

/// The one of `name` and `NotName` a statement holds (exactly one).
fn either<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    not: &str,
) -> Result<(bool, &'a Value), String> {
    match (obj.get(name), obj.get(not)) {
        (Some(v), None) => Ok((false, v)),
        (None, Some(v)) => Ok((true, v)),
        _ => Err(format!("needs exactly one of `{name}` and `{not}`")),
    }
}

/// A string or a list of strings.
fn strings(value: &Value, what: &str) -> Result<Vec<String>, String> {
    let list = match value {
        Value::String(s) => return Ok(vec![s.clone()]),
        Value::Array(list) => list,
        _ => return Err(format!("`{what}` is not a string or a list of strings")),
    };
    list.iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| format!("`{what}` is not a string or a list of strings"))
}

fn principal_entries(value: &Value) -> Result<Vec<PrincipalEntry>, String> {
    let map = match value {
        Value::String(s) if s == "*" => {
            return Ok(vec![PrincipalEntry {
                kind: PrincipalKind::Anyone,
                id: "*".into(),
            }]);
        }
        Value::Object(map) => map,
        _ => return Err("`Principal` is neither `*` nor an object".into()),
    };
    let mut out = Vec::new();
    for (kind, ids) in map {
        let kind = match kind.as_str() {
            "AWS" => PrincipalKind::Aws,
            "Service" => PrincipalKind::Service,
            "Federated" | "CanonicalUser" => PrincipalKind::Other,
            other => return Err(format!("unknown principal type `{}`", super::quote(other))),
        };
        for id in strings(ids, "Principal")? {
            out.push(PrincipalEntry { kind, id });
        }
    }
    Ok(out)
}

fn conditions(block: &Map<String, Value>) -> Result<Vec<Condition>, String> {
    let mut out = Vec::new();
    for (operator, keys) in block {
        let keys = keys
            .as_object()
            .ok_or_else(|| format!("condition `{}` is not an object", super::quote(operator)))?;
        for (key, values) in keys {
            let values = match values {
                Value::Array(list) => list.iter().map(scalar).collect::<Option<Vec<_>>>(),
                one => scalar(one).map(|v| vec![v]),
            }
            .ok_or_else(|| {
                format!(
                    "condition key `{}` has a value that is not a string",
                    super::quote(key)
                )
            })?;
            out.push(Condition::new(operator, key, values));
        }
    }
    Ok(out)
}

/// A condition value as text: IAM compares `true` and `"true"` alike.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shapes_aws_allows() {
        let st = parse(
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt",
                "Resource": "*", "Condition": {"Bool": {"kms:GrantIsForAWSResource": true}}}}"#,
        )
        .unwrap();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].principals.items[0].kind, PrincipalKind::Anyone);
        assert_eq!(st[0].actions.items, ["kms:Decrypt"]);
        assert_eq!(st[0].label(), "statement #1");
        let st = parse(
            r#"{"Statement": [{"Sid": "x", "Effect": "Deny", "NotPrincipal": {"AWS": ["1", "2"]},
                "NotAction": ["kms:Put*"], "Resource": "*"}]}"#,
        )
        .unwrap();
        assert!(st[0].principals.not && st[0].actions.not);
        assert_eq!(st[0].principals.items.len(), 2);
        assert_eq!(st[0].label(), "`x`");
    }

    #[test]
    fn refuses_what_is_not_a_policy() {
        for bad in [
            "not json",
            "[]",
            r#"{"Statement": [{"Effect": "allow", "Principal": "*", "Action": "*", "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "NotAction": "x", "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Principal": {"Robot": "x"}, "Action": "*", "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": [], "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"k": {}}}}]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
