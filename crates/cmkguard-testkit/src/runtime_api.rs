//! A small emulator of the Lambda Runtime API
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>) for running a Lambda binary
//! locally: it hands out the given events and records what the function answers.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufReader, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::http::{Headers, header, read_body, read_head};

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

/// A Lambda Runtime API on a free loopback port, serving each connection on its own thread.
///
/// `GET .../invocation/next` hands out the events in order, then holds the request open until the
/// emulator is dropped (as Lambda does between invocations). Dropping it closes every connection,
/// so a function binary still polling sees its Runtime API go away.
#[derive(Debug)]
pub struct RuntimeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
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
    shutting_down: bool,
    connections: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl RuntimeApi {
    /// Starts serving `events`, in order, on `127.0.0.1:<free port>`.
    pub fn start(events: Vec<Value>) -> RuntimeApi {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the Runtime API listener");
        let addr = listener.local_addr().expect("Runtime API listener address");
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
                shutting_down: false,
                connections: HashMap::new(),
                threads: Vec::new(),
            }),
            changed: Condvar::new(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("runtime-api-accept".to_owned())
                .spawn(move || accept_loop(&listener, &shared))
                .expect("spawn the Runtime API acceptor")
        };
        RuntimeApi {
            shared,
            addr,
            acceptor: Some(acceptor),
        }
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
        self.shared.changed.notify_all();
    }

    /// `127.0.0.1:PORT`, the value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
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
                .changed
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

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        let threads = {
            let mut state = self.shared.lock();
            state.shutting_down = true;
            for stream in state.connections.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut state.threads)
        };
        self.shared.changed.notify_all();
        // Wake the acceptor from `accept` so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // Connections accepted after the first take (the wake-up one, say) are shut by now too.
        let late = std::mem::take(&mut self.shared.lock().threads);
        for thread in threads.into_iter().chain(late) {
            let _ = thread.join();
        }
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

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let mut state = shared.lock();
        if state.shutting_down {
            return;
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        next_id += 1;
        let id = next_id;
        state.connections.insert(id, clone);
        let shared_for_thread = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("runtime-api-conn-{id}"))
            .spawn(move || {
                let _ = serve_connection(stream, &shared_for_thread);
                shared_for_thread.lock().connections.remove(&id);
            });
        match spawned {
            Ok(handle) => state.threads.push(handle),
            Err(_) => {
                state.connections.remove(&id);
            }
        }
    }
}

/// Serves requests on one kept-alive connection until the client closes it or asks to.
fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some((request_line, mut headers)) = read_head(&mut reader)? {
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let version = parts.next().unwrap_or_default().to_owned();
        let body = read_body(&mut reader, &mut headers, false)?;
        let close = version == "HTTP/1.0"
            || header(&headers, "connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let path = target.split('?').next().unwrap_or_default();

        let reply = route(shared, &method, path, headers, &body);
        let Some(reply) = reply else {
            // Shutting down while a `next` waited: close without an answer.
            return Ok(());
        };
        write_reply(&mut writer, &reply, close)?;
        if close {
            return Ok(());
        }
    }
    Ok(())
}

struct Reply {
    status: u16,
    reason: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, reason: &'static str, body: &Value) -> Reply {
        Reply {
            status,
            reason,
            headers: vec![("Content-Type", "application/json".to_owned())],
            body: body.to_string().into_bytes(),
        }
    }
}

fn route(
    shared: &Shared,
    method: &str,
    path: &str,
    headers: Headers,
    body: &[u8],
) -> Option<Reply> {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Some(not_found(path));
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let accepted = || Reply::json(202, "Accepted", &serde_json::json!({"status": "OK"}));
    match (method, segments.as_slice()) {
        ("GET", ["invocation", "next"]) => next_invocation(shared),
        ("POST", ["invocation", id, "response"]) => {
            record(shared, id, headers, body, Outcome::Response);
            Some(accepted())
        }
        ("POST", ["invocation", id, "error"]) => {
            record(shared, id, headers, body, Outcome::Error);
            Some(accepted())
        }
        ("POST", ["init", "error"]) => {
            record(shared, "", headers, body, Outcome::InitError);
            if shared.lock().silent_init_error {
                hold_until_shutdown(shared);
                return None;
            }
            Some(accepted())
        }
        _ => Some(not_found(path)),
    }
}

fn hold_until_shutdown(shared: &Shared) {
    let mut state = shared.lock();
    while !state.shutting_down {
        state = shared
            .changed
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

fn not_found(path: &str) -> Reply {
    Reply::json(
        404,
        "Not Found",
        &serde_json::json!({"errorType": "NotFound", "errorMessage": format!("no route for `{path}`")}),
    )
}

/// Waits for an event (or shutdown, then `None`) and hands it out with Lambda's headers.
fn next_invocation(shared: &Shared) -> Option<Reply> {
    let mut state = shared.lock();
    state.next_requests += 1;
    if state.first_next_at.is_none() {
        state.first_next_at = Some(Instant::now());
    }
    let event = loop {
        if state.shutting_down {
            return None;
        }
        if let Some(event) = state.events.pop_front() {
            break event;
        }
        state = shared
            .changed
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    };
    let request_id = random_uuid();
    let deadline_ms = SystemTime::now()
        .checked_add(state.timeout)
        .and_then(|d| d.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let reply = Reply {
        status: 200,
        reason: "OK",
        headers: vec![
            ("Content-Type", "application/json".to_owned()),
            ("Lambda-Runtime-Aws-Request-Id", request_id.clone()),
            ("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string()),
            (
                "Lambda-Runtime-Invoked-Function-Arn",
                state.function_arn.clone(),
            ),
            ("Lambda-Runtime-Trace-Id", trace_id()),
        ],
        body: event.to_string().into_bytes(),
    };
    state.handed_out.insert(request_id, event);
    Some(reply)
}

fn record(
    shared: &Shared,
    request_id: &str,
    headers: Headers,
    body: &[u8],
    outcome: fn(Value) -> Outcome,
) {
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
    };
    let mut state = shared.lock();
    let event = state.handed_out.remove(request_id);
    state.invocations.push(Invocation {
        request_id: request_id.to_owned(),
        event,
        outcome: outcome(body),
        headers,
        at: Instant::now(),
    });
    drop(state);
    shared.changed.notify_all();
}

fn write_reply(writer: &mut TcpStream, reply: &Reply, close: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reply.reason);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(&reply.body);
    writer.write_all(&message)?;
    writer.flush()
}

fn random_u64() -> u64 {
    // Each `RandomState` is seeded afresh: good enough for ids that need only be unique.
    RandomState::new().hash_one(Instant::now())
}

/// A random version-4 UUID, as Lambda's request ids are.
fn random_uuid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
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

    #[test]
    fn serves_several_requests_on_one_connection_with_chunked_bodies() {
        let api = RuntimeApi::start(vec![
            serde_json::json!({"a": 1}),
            serde_json::json!({"b": 2}),
        ]);
        let stream = TcpStream::connect(api.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut read_response = || {
            let (status, mut headers) = read_head(&mut reader).unwrap().unwrap();
            let body = read_body(&mut reader, &mut headers, false).unwrap();
            (status, headers, body)
        };

        writer
            .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let (status, headers, body) = read_response();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, br#"{"a":1}"#);
        let id = header(&headers, "lambda-runtime-aws-request-id")
            .unwrap()
            .to_owned();

        let chunked = format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nhost: x\r\n\
             transfer-encoding: chunked\r\n\r\n3\r\n{{\"o\r\n5\r\nk\":7}}\r\n0\r\n\r\n\
             GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n"
        );
        writer.write_all(chunked.as_bytes()).unwrap();
        let (status, _, _) = read_response();
        assert_eq!(status, "HTTP/1.1 202 Accepted");
        let (status, _, body) = read_response();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, br#"{"b":2}"#);

        let got = api.wait_for(1, Duration::from_secs(10));
        assert_eq!(got[0].request_id, id);
        assert_eq!(
            got[0].outcome,
            Outcome::Response(serde_json::json!({"ok": 7}))
        );
    }
}
