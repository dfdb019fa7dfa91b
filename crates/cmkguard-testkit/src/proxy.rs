//! A fault-injecting HTTP proxy in front of moto: the SDK talks to it (through
//! `AWS_ENDPOINT_URL`), it forwards to moto, and on the calls a [`Rule`] picks it answers with a
//! fault instead: throttling in the service's own error format, a 500 or 503, a delay beyond the
//! client's timeout, or a reset connection. It counts every request per operation.
//!
//! The operation is read from `X-Amz-Target` (JSON protocols: Secrets Manager, KMS) or from
//! `Action=` in the form body (query protocols: SNS, STS); the service from the same header or
//! from the credential scope of the `Authorization` header. The bodies of the operations a test
//! names are kept, to read back what the guard sent (see [`FaultProxy::keep_bodies`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};

use crate::bucket::TokenBucket;
use crate::http::{DEFAULT_TIMEOUT, Headers, client, form_value, header};
use crate::serve::{Answer, Connection, Hangup, Received, Reply, Server, respond};

/// What the proxy answers instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 with `ThrottlingException`, as JSON (`__type`) or query-protocol XML.
    Throttle,
    /// That HTTP status (500, 503, ...) with an `InternalFailure`/`ServiceUnavailable` body.
    Status(u16),
    /// Holds the request this long, then forwards it (so a write may land after the client gave up,
    /// as it can in AWS).
    Delay(Duration),
    /// Reads the request, then resets the connection (TCP RST) without an answer.
    Reset,
    /// HTTP 200 with this body, in the service's protocol, without forwarding: a call that AWS
    /// accepts now and carries out later (`RotateSecret` runs the rotation function
    /// asynchronously, while moto rotates at once).
    Accept(String),
}

/// Which of the calls a rule matches it hits, counting from 1 per rule.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    Always,
    /// Only the n-th call.
    Nth(usize),
    /// The first n calls.
    First(usize),
    /// About this fraction of calls, from a seeded generator (the same seed, the same calls).
    Fraction {
        fraction: f64,
        seed: u64,
    },
}

/// A fault for one operation (`DescribeSecret`, or `kms:DescribeKey` to name the service too).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub operation: String,
    pub fault: Fault,
    pub when: When,
    /// Only requests whose body holds this text (e.g. `alias/` for `DescribeKey` on an alias).
    pub body_contains: Option<String>,
}

impl Rule {
    pub fn new(operation: &str, fault: Fault, when: When) -> Self {
        Rule {
            operation: operation.to_owned(),
            fault,
            when,
            body_contains: None,
        }
    }

    /// Limits the rule to requests whose body holds `text`.
    pub fn with_body(mut self, text: &str) -> Self {
        self.body_contains = Some(text.to_owned());
        self
    }

    fn matches(&self, op: &Operation, body: &[u8]) -> bool {
        op.is(&self.operation)
            && self
                .body_contains
                .as_ref()
                .is_none_or(|text| String::from_utf8_lossy(body).contains(text.as_str()))
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub service: String,
    pub operation: String,
    /// The fault answered, if any.
    pub fault: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Operation {
    service: String,
    name: String,
}

impl Operation {
    /// Named `operation` (`Publish`, or `sns:Publish` to name the service too).
    fn is(&self, operation: &str) -> bool {
        self.name == operation || format!("{}:{}", self.service, self.name) == operation
    }
}

/// AWS's request quotas, scaled: [`FaultProxy::rate_limit`] enforces them as token buckets, one
/// per group of operations that share a quota. A request that finds its bucket empty is throttled
/// (`ThrottlingException`), as AWS does.
#[derive(Debug, Clone)]
pub struct RateLimits {
    scale: f64,
}

/// AWS's published quotas per account and region (requests per second, burst), by operation
/// group (`shared/MOTO.md`); `BatchImportFindings` bursts to 30.
type Quota = (
    &'static str,
    &'static str,
    &'static [&'static str],
    f64,
    f64,
);
const AWS_QUOTAS: [Quota; 6] = [
    (
        "secretsmanager-writes",
        "secretsmanager",
        &[
            "UpdateSecret",
            "CreateSecret",
            "PutSecretValue",
            "DeleteSecret",
            "RestoreSecret",
            "ReplicateSecretToRegions",
            "RemoveRegionsFromReplication",
            "StopReplicationToReplica",
            "RotateSecret",
            "CancelRotateSecret",
            "UpdateSecretVersionStage",
        ],
        50.0,
        50.0,
    ),
    (
        "secretsmanager-tags",
        "secretsmanager",
        &["TagResource", "UntagResource"],
        50.0,
        50.0,
    ),
    (
        "secretsmanager-list",
        "secretsmanager",
        &["ListSecrets"],
        100.0,
        100.0,
    ),
    (
        "secretsmanager-describe",
        "secretsmanager",
        &["DescribeSecret"],
        10_000.0,
        10_000.0,
    ),
    ("kms-describe", "kms", &["DescribeKey"], 2_000.0, 2_000.0),
    (
        "securityhub-import",
        "securityhub",
        &["BatchImportFindings"],
        10.0,
        30.0,
    ),
];

impl RateLimits {
    /// AWS's published quotas times `scale` (moto answers only ~150 requests/s: a fifth, `0.2`,
    /// makes throttling visible).
    pub fn aws(scale: f64) -> RateLimits {
        RateLimits { scale }
    }

    /// The group of an operation and its rate (requests per second), if it has a quota here.
    pub fn group_of(&self, service: &str, operation: &str) -> Option<(&'static str, f64)> {
        let (name, _, _, rate, _) = AWS_QUOTAS[quota_index(service, operation)?];
        Some((name, rate * self.scale))
    }

    /// A full bucket per group, in the order of [`AWS_QUOTAS`].
    fn buckets(&self) -> Vec<TokenBucket> {
        AWS_QUOTAS
            .iter()
            .map(|(_, _, _, rate, burst)| TokenBucket::new(rate * self.scale, burst * self.scale))
            .collect()
    }
}

/// Where the quota of an operation is in [`AWS_QUOTAS`], if it has one.
fn quota_index(service: &str, operation: &str) -> Option<usize> {
    AWS_QUOTAS
        .iter()
        .position(|(_, s, operations, _, _)| *s == service && operations.contains(&operation))
}

#[derive(Debug, Default)]
struct State {
    /// Each rule with its generator state and how many calls it matched so far.
    rules: Vec<(Rule, u64, usize)>,
    /// The buckets of the quotas enforced after the rules (see [`RateLimits`]); none until set.
    buckets: Vec<TokenBucket>,
    /// Requests the quotas throttled.
    throttled: usize,
    counts: BTreeMap<String, usize>,
    seen: Vec<Seen>,
    /// The operations whose request bodies are kept, and the bodies kept, in order.
    keep_bodies: Vec<String>,
    bodies: Vec<(Operation, Vec<u8>)>,
    /// Requests read and not yet answered (a delayed one, say).
    in_flight: usize,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The proxy, on `127.0.0.1:<free port>`; dropping it closes every connection, a delayed request
/// included.
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    server: Server,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`http://127.0.0.1:PORT`, moto's endpoint).
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_owned();
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::default(),
        });
        let handler_shared = Arc::clone(&shared);
        let server = Server::start(move |request, connection| {
            answer(Arc::clone(&handler_shared), request, connection)
        });
        FaultProxy { shared, server }
    }

    /// `http://127.0.0.1:PORT`: the value for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `base` (say `moto.env()`) with `AWS_ENDPOINT_URL` pointing at the proxy.
    pub fn env(&self, base: Vec<(String, String)>) -> Vec<(String, String)> {
        base.into_iter()
            .map(|(k, v)| {
                if k == "AWS_ENDPOINT_URL" {
                    (k, self.endpoint())
                } else {
                    (k, v)
                }
            })
            .collect()
    }

    /// Adds a rule; the first matching rule that hits a call decides it.
    pub fn inject(&self, rule: Rule) {
        let seed = match rule.when {
            // xorshift never leaves 0: mix the seed first.
            When::Fraction { seed, .. } => seed.wrapping_add(0x9E37_79B9_7F4A_7C15).max(1),
            _ => 0,
        };
        self.shared.lock().rules.push((rule, seed, 0));
    }

    /// Enforces `limits` from now on (see [`RateLimits::aws`]).
    pub fn rate_limit(&self, limits: RateLimits) {
        self.shared.lock().buckets = limits.buckets();
    }

    /// Requests the rate limits throttled so far.
    pub fn throttled(&self) -> usize {
        self.shared.lock().throttled
    }

    /// Removes every rule (counts stay).
    pub fn heal(&self) {
        self.shared.lock().rules.clear();
    }

    /// Forgets the counts, the requests seen and the bodies kept.
    pub fn reset_counts(&self) {
        let mut state = self.shared.lock();
        state.counts.clear();
        state.seen.clear();
        state.bodies.clear();
    }

    /// Keeps the request bodies of `operation` (`Publish`, or `sns:Publish`) from now on, faults
    /// included, for [`Self::bodies`].
    pub fn keep_bodies(&self, operation: &str) {
        self.shared.lock().keep_bodies.push(operation.to_owned());
    }

    /// The request bodies kept for `operation` (see [`Self::keep_bodies`]), in order.
    pub fn bodies(&self, operation: &str) -> Vec<Vec<u8>> {
        self.shared
            .lock()
            .bodies
            .iter()
            .filter(|(op, _)| op.is(operation))
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// Requests seen for `operation` (`UpdateSecret`, or `kms:DescribeKey`), faults included.
    pub fn count(&self, operation: &str) -> usize {
        let state = self.shared.lock();
        state
            .seen
            .iter()
            .filter(|s| {
                s.operation == operation || format!("{}:{}", s.service, s.operation) == operation
            })
            .count()
    }

    /// Requests seen per `service:Operation`.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.shared.lock().counts.clone()
    }

    /// Every request seen, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().seen.clone()
    }

    /// Waits until no request is in flight (a delayed write has landed), at most `timeout`.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if self.shared.lock().in_flight == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Writes seen (`TagResource`, `UntagResource`, `UpdateSecret`, `Publish`), faults included.
    pub fn writes(&self) -> usize {
        ["TagResource", "UntagResource", "UpdateSecret", "Publish"]
            .iter()
            .map(|op| self.count(op))
            .sum()
    }
}

/// Answers one request: forwarded, or the fault picked for it.
async fn answer(shared: Arc<Shared>, request: Received, connection: Connection) -> Answer {
    let op = operation(request.path(), &request.headers, &request.body);
    let fault = decide(&shared, &op, &request.body);
    let _in_flight = InFlight::new(&shared);
    match fault {
        Some(Fault::Throttle) => Ok(error_response(&op, 400)),
        Some(Fault::Status(status)) => Ok(error_response(&op, status)),
        Some(Fault::Accept(body)) => Ok(accepted_response(&op, body)),
        Some(Fault::Reset) => {
            connection.reset();
            Err(Hangup)
        }
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            forward(&shared, request).await
        }
        None => forward(&shared, request).await,
    }
}

/// Counts a request as read and not yet answered, for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.lock().in_flight += 1;
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
    }
}

/// Counts the call and picks the fault for it, if any.
fn decide(shared: &Shared, op: &Operation, body: &[u8]) -> Option<Fault> {
    let mut state = shared.lock();
    let key = format!("{}:{}", op.service, op.name);
    *state.counts.entry(key).or_default() += 1;
    if state.keep_bodies.iter().any(|kept| op.is(kept)) {
        state.bodies.push((op.clone(), body.to_vec()));
    }
    let mut fault = None;
    for (rule, rng, matched) in state.rules.iter_mut() {
        if !rule.matches(op, body) {
            continue;
        }
        *matched += 1;
        let n = *matched;
        let hit = match rule.when {
            When::Always => true,
            When::Nth(k) => n == k,
            When::First(k) => n <= k,
            When::Fraction { fraction, .. } => {
                // xorshift64*: reproducible per seed.
                *rng ^= *rng >> 12;
                *rng ^= *rng << 25;
                *rng ^= *rng >> 27;
                let x = rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
                ((x >> 11) as f64 / (1u64 << 53) as f64) < fraction
            }
        };
        if hit {
            fault = Some(rule.fault.clone());
            break;
        }
    }
    if fault.is_none()
        && let Some(bucket) = quota_index(&op.service, &op.name).and_then(|i| state.buckets.get(i))
        && !bucket.admit()
    {
        fault = Some(Fault::Throttle);
        state.throttled += 1;
    }
    state.seen.push(Seen {
        service: op.service.clone(),
        operation: op.name.clone(),
        fault: fault.as_ref().map(|f| format!("{f:?}")),
    });
    fault
}

/// The service and operation of a request.
fn operation(path: &str, headers: &Headers, body: &[u8]) -> Operation {
    if let Some(target) = header(headers, "x-amz-target") {
        let (prefix, name) = target.split_once('.').unwrap_or(("", target));
        let service = match prefix {
            "TrentService" => "kms".to_owned(),
            p if p.starts_with("secretsmanager") => "secretsmanager".to_owned(),
            p => p.to_ascii_lowercase(),
        };
        return Operation {
            service,
            name: name.to_owned(),
        };
    }
    let service = header(headers, "authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split([',', ' ']).next())
        .and_then(|scope| scope.split('/').nth(3))
        .unwrap_or("unknown")
        .to_owned();
    // REST protocols (Security Hub) name the operation by its path.
    let rest = match (service.as_str(), path) {
        ("securityhub", "/findings/import") => Some("BatchImportFindings"),
        ("securityhub", "/findings") => Some("GetFindings"),
        _ => None,
    };
    let name = rest
        .map(str::to_owned)
        .or_else(|| form_value(body, "Action"))
        .unwrap_or_else(|| "unknown".to_owned());
    Operation { service, name }
}

fn is_json(op: &Operation) -> bool {
    matches!(
        op.service.as_str(),
        "secretsmanager" | "kms" | "securityhub"
    )
}

/// An error answer as the service's protocol shapes it: `awsJson1_1` (with `x-amzn-ErrorType`) or
/// `awsQuery` XML. 400 is throttling; another status, a server error.
fn error_response(op: &Operation, status: u16) -> Reply {
    let (code, message, kind) = match status {
        400 => ("ThrottlingException", "Rate exceeded", "Sender"),
        503 => (
            "ServiceUnavailable",
            "injected by the fault proxy",
            "Receiver",
        ),
        _ => ("InternalFailure", "injected by the fault proxy", "Receiver"),
    };
    let request_id = ("x-amzn-RequestId", "fault-proxy");
    if is_json(op) {
        let body = serde_json::json!({"__type": code, "message": message}).to_string();
        respond(
            status,
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                request_id,
                ("x-amzn-ErrorType", code),
            ],
            body,
        )
    } else {
        let body = format!(
            "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
        );
        respond(status, &[("Content-Type", "text/xml"), request_id], body)
    }
}

/// A success answer made by the proxy (see [`Fault::Accept`]).
fn accepted_response(op: &Operation, body: String) -> Reply {
    let content_type = if is_json(op) {
        "application/x-amz-json-1.1"
    } else {
        "text/xml"
    };
    respond(
        200,
        &[
            ("Content-Type", content_type),
            ("x-amzn-RequestId", "fault-proxy"),
        ],
        body,
    )
}

/// Sends the request on to moto and relays its answer; moto not answering (within
/// [`DEFAULT_TIMEOUT`]) hangs up on the client.
async fn forward(shared: &Shared, request: Received) -> Answer {
    let mut upstream = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(format!("http://{}{}", shared.upstream, request.target));
    for (name, value) in &request.headers {
        // Framing is the client's to set for this hop.
        if !["connection", "content-length", "transfer-encoding"].contains(&name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = upstream.body(Full::new(request.body)).map_err(|_| Hangup)?;
    let exchange = async {
        let response = client().request(upstream).await.map_err(|_| Hangup)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|_| Hangup)?.to_bytes();
        Ok::<_, Hangup>((parts, body))
    };
    let (mut parts, body) = tokio::time::timeout(DEFAULT_TIMEOUT, exchange)
        .await
        .map_err(|_| Hangup)??;
    for name in ["connection", "content-length", "transfer-encoding"] {
        parts.headers.remove(name);
    }
    Ok(hyper::Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_the_operation_of_json_and_query_requests() {
        let op = operation(
            "/",
            &headers(&[("X-Amz-Target", "secretsmanager.UpdateSecret")]),
            b"{}",
        );
        assert_eq!(
            (op.service.as_str(), op.name.as_str()),
            ("secretsmanager", "UpdateSecret")
        );
        let op = operation(
            "/",
            &headers(&[("x-amz-target", "TrentService.DescribeKey")]),
            b"{}",
        );
        assert_eq!(
            (op.service.as_str(), op.name.as_str()),
            ("kms", "DescribeKey")
        );
        let auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=x";
        let op = operation(
            "/",
            &headers(&[("Authorization", auth)]),
            b"Action=Publish&Version=2010-03-31&TopicArn=x",
        );
        assert_eq!((op.service.as_str(), op.name.as_str()), ("sns", "Publish"));
        let auth = auth.replace("/sns/", "/securityhub/");
        let op = operation(
            "/findings/import",
            &headers(&[("Authorization", auth.as_str())]),
            b"{\"Findings\":[]}",
        );
        assert_eq!(
            (op.service.as_str(), op.name.as_str()),
            ("securityhub", "BatchImportFindings")
        );
    }

    #[test]
    fn keeps_the_bodies_of_the_operations_named() {
        let proxy = FaultProxy::start("http://127.0.0.1:9");
        proxy.keep_bodies("sns:Publish");
        let publish = Operation {
            service: "sns".into(),
            name: "Publish".into(),
        };
        let describe = Operation {
            service: "kms".into(),
            name: "DescribeKey".into(),
        };
        decide(&proxy.shared, &publish, b"Action=Publish&Message=one");
        decide(&proxy.shared, &describe, b"{}");
        decide(&proxy.shared, &publish, b"Action=Publish&Message=two");
        assert_eq!(
            proxy.bodies("Publish"),
            [
                b"Action=Publish&Message=one".to_vec(),
                b"Action=Publish&Message=two".to_vec()
            ]
        );
        assert!(proxy.bodies("DescribeKey").is_empty());
        assert_eq!(
            form_value(b"Action=Publish&Message=%7B%22a%22%3A+1%7D", "Message").as_deref(),
            Some("{\"a\": 1}")
        );
        proxy.reset_counts();
        assert!(proxy.bodies("Publish").is_empty());
    }

    #[test]
    fn rules_pick_calls_by_number_and_fraction() {
        let shared = Shared {
            upstream: String::new(),
            state: Mutex::default(),
        };
        let op = Operation {
            service: "kms".into(),
            name: "DescribeKey".into(),
        };
        shared.lock().rules.push((
            Rule::new("kms:DescribeKey", Fault::Throttle, When::Nth(2)),
            0,
            0,
        ));
        let hits: Vec<bool> = (0..3)
            .map(|_| decide(&shared, &op, b"").is_some())
            .collect();
        assert_eq!(hits, [false, true, false]);

        let shared = Shared {
            upstream: String::new(),
            state: Mutex::default(),
        };
        shared.lock().rules.push((
            Rule::new(
                "DescribeKey",
                Fault::Status(503),
                When::Fraction {
                    fraction: 0.5,
                    seed: 7,
                },
            ),
            7u64.wrapping_add(0x9E37_79B9_7F4A_7C15),
            0,
        ));
        let hits = (0..1000)
            .filter(|_| decide(&shared, &op, b"").is_some())
            .count();
        assert!((400..600).contains(&hits), "{hits}");
    }
}
