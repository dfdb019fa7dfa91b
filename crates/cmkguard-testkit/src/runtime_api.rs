//! A small emulator of the Lambda Runtime API
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>) for running a Lambda binary
//! locally: it hands out the given events and records what the function answers.
//!
//! cargo-lambda's emulator (`cargo lambda watch`, used by `just watch` and by
//! `crates/cmkguard-lambda/tests/cargo_lambda.rs`) runs the function from source. The tests need
//! what it cannot do: a chosen deadline (`Lambda-Runtime-Deadline-Ms`), a prebuilt binary started
//! in milliseconds with the environment a test gives it, a queue of events handed out in order and
//! pushed while the function runs, every result recorded with its headers and time (init errors
//! included, answered or held open), and the moment init ended (the first `next`).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::Notify;

use crate::http::{Headers, header};
use crate::serve::{Answer, Received, Reply, Server, respond};

/// The function ARN handed out unless [`RuntimeApi::with_function_arn`] says otherwise.
pub const DEFAULT_FUNCTION_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:cmkguard-lambda";

/// The function timeout used for `Lambda-Runtime-Deadline-Ms` unless
/// [`RuntimeApi::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function reported for one invocation (or for its initialization).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST /runtime/invocation/{id}/response`.
    Response(Value),
    /// `POST /runtime/invocation/{id}/error`.
    Error(Value),
    /// `POST /runtime/init/error`.
    InitError(Value),
}

impl Outcome {
    /// The posted body: JSON when it parses, else a JSON string of the raw text, `null` if empty.
    pub fn body(&self) -> &Value {
        match self {
            Outcome::Response(body) | Outcome::Error(body) | Outcome::InitError(body) => body,
        }
    }
}

/// One recorded result.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The request id in the URL (empty for an init error).
    pub request_id: String,
    /// The event handed out under that id; `None` for an init error or an id never handed out
    /// (or already answered).
    pub event: Option<Value>,
    pub outcome: Outcome,
    /// The request headers, e.g. `Lambda-Runtime-Function-Error-Type` (and trailers of a chunked
    /// body); use [`Invocation::header`].
    pub headers: Headers,
    /// When it was recorded.
    pub at: Instant,
}

impl Invocation {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// `Lambda-Runtime-Function-Error-Type`, set on errors.
    pub fn error_type(&self) -> Option<&str> {
        self.header("Lambda-Runtime-Function-Error-Type")
    }
}

/// A Lambda Runtime API on a free loopback port.
///
/// `GET .../invocation/next` hands out the events in order, then holds the request open until the
/// emulator is dropped (as Lambda does between invocations). Dropping it closes every connection,
/// so a function binary still polling sees its Runtime API go away.
#[derive(Debug)]
pub struct RuntimeApi {
    shared: Arc<Shared>,
    server: Server,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes [`RuntimeApi::wait_for`] when a result is recorded.
    recorded: Condvar,
    /// Wakes a waiting `next` when an event is queued.
    queued: Notify,
}

#[derive(Debug)]
struct State {
    events: VecDeque<Value>,
    handed_out: HashMap<String, Value>,
    invocations: Vec<Invocation>,
    started_at: Instant,
    first_next_at: Option<Instant>,
    next_requests: usize,
    timeout: Duration,
    function_arn: String,
    /// Record an init error but never answer it (as `cargo lambda watch` does for a restarted
    /// function), holding the connection until the emulator is dropped.
    silent_init_error: bool,
}

impl RuntimeApi {
    /// Starts serving `events`, in order, on `127.0.0.1:<free port>`.
    pub fn start(events: Vec<Value>) -> RuntimeApi {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                events: events.into(),
                handed_out: HashMap::new(),
                invocations: Vec::new(),
                started_at: Instant::now(),
                first_next_at: None,
                next_requests: 0,
                timeout: DEFAULT_TIMEOUT,
                function_arn: DEFAULT_FUNCTION_ARN.to_owned(),
                silent_init_error: false,
            }),
            recorded: Condvar::new(),
            queued: Notify::new(),
        });
        let handler_shared = Arc::clone(&shared);
        let server = Server::start(move |request, _| route(Arc::clone(&handler_shared), request));
        RuntimeApi { shared, server }
    }

    /// Deadlines handed out are `now + timeout` (the function's configured timeout).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.shared.lock().timeout = timeout;
        self
    }

    /// The `Lambda-Runtime-Invoked-Function-Arn` handed out.
    pub fn with_function_arn(self, arn: impl Into<String>) -> Self {
        self.shared.lock().function_arn = arn.into();
        self
    }

    /// Records `POST /runtime/init/error` but never answers it.
    pub fn never_answering_init_error(self) -> Self {
        self.shared.lock().silent_init_error = true;
        self
    }

    /// Queues one more event (wakes a waiting `next`).
    pub fn push_event(&self, event: Value) {
        self.shared.lock().events.push_back(event);
        self.shared.queued.notify_waiters();
    }

    /// `127.0.0.1:PORT`, the value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> String {
        self.server.addr().to_string()
    }

    /// Environment that the `lambda_runtime` crate requires of a function process, pointing it
    /// at this emulator (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`, ...).
    pub fn env(&self) -> Vec<(String, String)> {
        let arn = self.shared.lock().function_arn.clone();
        let name = arn.rsplit(':').next().unwrap_or("function").to_owned();
        vec![
            ("AWS_LAMBDA_RUNTIME_API".to_owned(), self.addr()),
            ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(),
                "128".to_owned(),
            ),
            (
                "AWS_LAMBDA_FUNCTION_VERSION".to_owned(),
                "$LATEST".to_owned(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME".to_owned(),
                format!("/aws/lambda/{name}"),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME".to_owned(),
                "cmkguard-testkit".to_owned(),
            ),
        ]
    }

    /// Blocks until at least `n` results (responses, errors, init errors) are recorded or
    /// `timeout` passes; returns all recorded so far either way, in order.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Invocation> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.invocations.len() < n {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .shared
                .recorded
                .wait_timeout(state, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        state.invocations.clone()
    }

    /// Everything recorded so far.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.shared.lock().invocations.clone()
    }

    /// When the emulator started listening.
    pub fn started_at(&self) -> Instant {
        self.shared.lock().started_at
    }

    /// When the first `GET .../invocation/next` arrived: the end of the function's init phase.
    pub fn first_next_at(&self) -> Option<Instant> {
        self.shared.lock().first_next_at
    }

    /// How many `next` requests arrived (including one still waiting).
    pub fn next_requests(&self) -> usize {
        self.shared.lock().next_requests
    }

    /// Events not handed out yet.
    pub fn pending_events(&self) -> usize {
        self.shared.lock().events.len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking connection thread must not hide what was recorded.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn route(shared: Arc<Shared>, request: Received) -> Answer {
    let Some(rest) = request.path().strip_prefix(PREFIX) else {
        return Ok(not_found(request.path()));
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let accepted = || json_reply(202, &serde_json::json!({"status": "OK"}));
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["invocation", "next"]) => Ok(next_invocation(&shared).await),
        ("POST", ["invocation", id, "response"]) => {
            record(&shared, id, &request, Outcome::Response);
            Ok(accepted())
        }
        ("POST", ["invocation", id, "error"]) => {
            record(&shared, id, &request, Outcome::Error);
            Ok(accepted())
        }
        ("POST", ["init", "error"]) => {
            record(&shared, "", &request, Outcome::InitError);
            if shared.lock().silent_init_error {
                // Held until the emulator is dropped, which closes the connection unanswered.
                return std::future::pending::<Answer>().await;
            }
            Ok(accepted())
        }
        _ => Ok(not_found(request.path())),
    }
}

fn json_reply(status: u16, body: &Value) -> Reply {
    respond(
        status,
        &[("Content-Type", "application/json")],
        body.to_string(),
    )
}

fn not_found(path: &str) -> Reply {
    json_reply(
        404,
        &serde_json::json!({"errorType": "NotFound", "errorMessage": format!("no route for `{path}`")}),
    )
}

/// Waits for an event (held while there is none; the emulator's drop ends the wait) and hands it
/// out with Lambda's headers.
async fn next_invocation(shared: &Shared) -> Reply {
    {
        let mut state = shared.lock();
        state.next_requests += 1;
        if state.first_next_at.is_none() {
            state.first_next_at = Some(Instant::now());
        }
    }
    loop {
        // Registered before looking, so an event queued in between still wakes this wait.
        let queued = shared.queued.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        {
            let mut state = shared.lock();
            if let Some(event) = state.events.pop_front() {
                return hand_out(&mut state, event);
            }
        }
        queued.await;
    }
}

fn hand_out(state: &mut State, event: Value) -> Reply {
    let request_id = random_uuid();
    let deadline_ms = SystemTime::now()
        .checked_add(state.timeout)
        .and_then(|d| d.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let reply = respond(
        200,
        &[
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", &request_id),
            ("Lambda-Runtime-Deadline-Ms", &deadline_ms.to_string()),
            ("Lambda-Runtime-Invoked-Function-Arn", &state.function_arn),
            ("Lambda-Runtime-Trace-Id", &trace_id()),
        ],
        event.to_string(),
    );
    state.handed_out.insert(request_id, event);
    reply
}

fn record(shared: &Shared, request_id: &str, request: &Received, outcome: fn(Value) -> Outcome) {
    let body = if request.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&request.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&request.body).into_owned()))
    };
    let mut state = shared.lock();
    let event = state.handed_out.remove(request_id);
    state.invocations.push(Invocation {
        request_id: request_id.to_owned(),
        event,
        outcome: outcome(body),
        headers: request.headers.clone(),
        at: Instant::now(),
    });
    drop(state);
    shared.recorded.notify_all();
}

fn random_u64() -> u64 {
    // Each `RandomState` is seeded afresh: good enough for ids that need only be unique.
    RandomState::new().hash_one(Instant::now())
}

/// A random version-4 UUID, as Lambda's request ids are.
fn random_uuid() -> String {
    let bits = u128::from(random_u64()) << 64 | u128::from(random_u64());
    uuid::Builder::from_random_bytes(bits.to_be_bytes())
        .into_uuid()
        .to_string()
}

/// An X-Ray trace header like Lambda's: `Root=1-<epoch hex>-<96 random bits>;Parent=...;Sampled=0`.
fn trace_id() -> String {
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let (a, b) = (random_u64(), random_u64());
    format!(
        "Root=1-{epoch:08x}-{:08x}{:016x};Parent={b:016x};Sampled=0",
        a >> 32,
        random_u64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_shaped_and_distinct() {
        let a = random_uuid();
        let b = random_uuid();
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn trace_ids_look_like_xray_headers() {
        let t = trace_id();
        assert!(t.starts_with("Root=1-") && t.ends_with(";Sampled=0"), "{t}");
    }

    /// As `lambda_runtime` does: one kept-alive connection, a chunked response body.
    #[test]
    fn serves_several_requests_on_one_connection_with_chunked_bodies() {
        use http_body_util::{BodyExt, Empty, StreamBody};
        use hyper::body::{Bytes, Frame};
        use hyper_util::rt::TokioIo;

        let api = RuntimeApi::start(vec![
            serde_json::json!({"a": 1}),
            serde_json::json!({"b": 2}),
        ]);
        let addr = api.addr();
        let (id, statuses, bodies) = crate::http::block_on(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) = hyper::client::conn::http1::handshake::<
                _,
                http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>,
            >(TokioIo::new(stream))
            .await
            .unwrap();
            tokio::spawn(connection);
            let next = || {
                hyper::Request::get("/2018-06-01/runtime/invocation/next")
                    .body(Empty::new().boxed())
                    .unwrap()
            };
            let mut statuses = Vec::new();
            let mut bodies = Vec::new();

            let first = sender.send_request(next()).await.unwrap();
            let id = first.headers()["lambda-runtime-aws-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            statuses.push(first.status().as_u16());
            bodies.push(first.into_body().collect().await.unwrap().to_bytes());

            // No length known up front: hyper sends it chunked.
            let chunks = ["{\"o", "k\":7}"]
                .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c))));
            let chunked = StreamBody::new(futures_util::stream::iter(chunks)).boxed();
            let posted =
                hyper::Request::post(format!("/2018-06-01/runtime/invocation/{id}/response"))
                    .body(chunked)
                    .unwrap();
            let posted = sender.send_request(posted).await.unwrap();
            statuses.push(posted.status().as_u16());
            sender.ready().await.unwrap();

            let second = sender.send_request(next()).await.unwrap();
            statuses.push(second.status().as_u16());
            bodies.push(second.into_body().collect().await.unwrap().to_bytes());
            (id, statuses, bodies)
        });
        assert_eq!(statuses, [200, 202, 200]);
        assert_eq!(bodies, [&br#"{"a":1}"#[..], &br#"{"b":2}"#[..]]);

        let got = api.wait_for(1, Duration::from_secs(10));
        assert_eq!(got[0].request_id, id);
        assert_eq!(
            got[0].outcome,
            Outcome::Response(serde_json::json!({"ok": 7}))
        );
        assert_eq!(got[0].header("transfer-encoding"), Some("chunked"));
    }
}
