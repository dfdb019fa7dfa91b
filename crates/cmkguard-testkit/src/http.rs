//! The harness's HTTP client, on hyper: blocking calls for moto's `/moto-api/*`, the SQS and
//! Security Hub reads, and poking the emulators by hand. It runs on the harness's own runtime
//! ([`runtime`]), which the proxy and the Runtime API emulator serve on too, so a test can call it
//! from a plain `#[test]` or from inside a `#[tokio::test]` alike.

use std::future::Future;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::HeaderMap;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long a request waits for the server unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Header (or trailer) fields in the order received, names in lower case.
pub type Headers = Vec<(String, String)>;

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header fields, then the trailers of a chunked body; look them up with
    /// [`Response::header`], which ignores case.
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
    }
}

/// `GET url`.
pub fn get(url: &str) -> io::Result<Response> {
    request("GET", url, &[], &[])
}

/// `POST url` with `body`.
pub fn post(url: &str, body: &[u8]) -> io::Result<Response> {
    request("POST", url, &[], body)
}

/// Sends one request to `url` (`http://host:port/path?query`) and reads the whole response,
/// waiting at most [`DEFAULT_TIMEOUT`] for it.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    request_with_timeout(method, url, headers, body, DEFAULT_TIMEOUT)
}

/// [`request`] with its own timeout for the whole exchange.
pub fn request_with_timeout(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    check_url(url)?;
    let mut builder = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| invalid(format!("bad request to `{url}`: {e}")))?;
    let url = url.to_owned();
    block_on(async move {
        let exchange = async {
            let response = client().request(request).await.map_err(io::Error::other)?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(io::Error::other)?;
            let headers = fields(&parts.headers, body.trailers());
            Ok(Response {
                status: parts.status.as_u16(),
                headers,
                body: body.to_bytes().to_vec(),
            })
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer from `{url}` within {timeout:?}"),
            )
        })?
    })
}

/// The runtime the harness's client and servers run on (two workers, started on first use).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testkit-http")
            .enable_all()
            .build()
            .expect("start the testkit's runtime")
    })
}

/// Runs `future` on the harness runtime and blocks this thread until it is done.
pub(crate) fn block_on<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = done.send(future.await);
    });
    result
        .recv()
        .expect("the testkit's runtime dropped a request")
}

/// One connection per request, as a test expects (and as the fault proxy forwards): a server that
/// went away is not hidden behind a pooled connection, and nothing is left open between tests.
pub(crate) fn client() -> &'static Client<HttpConnector, Full<Bytes>> {
    static CLIENT: OnceLock<Client<HttpConnector, Full<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http()
    })
}

/// Refuses what the client cannot reach, naming it: only `http://host:port/...`.
fn check_url(url: &str) -> io::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("only `http://` URLs are supported, not `{url}`")))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains(['?', '#']) {
        return Err(invalid(format!(
            "no `host:port` before the path in `{url}`"
        )));
    }
    Ok(())
}

/// A message's header fields, then its trailers, as (lower-case name, value) pairs in order.
pub(crate) fn fields(headers: &HeaderMap, trailers: Option<&HeaderMap>) -> Headers {
    headers
        .iter()
        .chain(trailers.into_iter().flatten())
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The first header named `name` (case-insensitive).
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The value of `name` in a form-encoded body (`application/x-www-form-urlencoded`, as query
/// protocols send), such as `Message` in a `Publish` body the fault proxy kept.
pub fn form_value(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.into_owned())
}

pub(crate) fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A server that sends `raw` as its answer to the first request, byte for byte.
    fn answering(raw: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).unwrap();
            stream.write_all(raw).unwrap();
        });
        format!("http://{addr}/x")
    }

    #[test]
    fn reads_chunked_body_and_trailers() {
        let url = answering(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\r\n\
              4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nX-Trailer: yes\r\n\r\n",
        );
        let response = get(&url).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "Wikipedia ");
        assert_eq!(response.header("x-trailer"), Some("yes"));
    }

    #[test]
    fn reads_content_length_body_and_headers_by_any_case() {
        let url = answering(
            b"HTTP/1.1 404 Not Found\r\nX-Amzn-RequestId: r1\r\ncontent-length: 3\r\n\r\nabc",
        );
        let response = get(&url).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.header("X-AMZN-REQUESTID"), Some("r1"));
        assert_eq!(response.body, b"abc");
    }

    #[test]
    fn a_body_cut_short_is_an_error() {
        let url = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc");
        assert!(get(&url).is_err());
    }

    #[test]
    fn a_silent_server_times_out_naming_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/slow", listener.local_addr().unwrap());
        let err =
            request_with_timeout("GET", &url, &[], &[], Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains(&url), "{err}");
        drop(listener);
    }

    #[test]
    fn forms_decode() {
        let body = b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx&S=a+b%";
        assert_eq!(form_value(body, "Action").as_deref(), Some("AssumeRole"));
        assert_eq!(
            form_value(body, "RoleArn").as_deref(),
            Some("arn:aws:iam::1:role/x")
        );
        assert_eq!(form_value(body, "S").as_deref(), Some("a b%"));
        assert_eq!(form_value(body, "T"), None);
    }

    #[test]
    fn refuses_urls_it_cannot_reach() {
        assert!(check_url("http://127.0.0.1:5/a/b?c=d").is_ok());
        assert!(check_url("http://127.0.0.1:5").is_ok());
        assert!(check_url("https://example.com/").is_err());
        assert!(check_url("http://").is_err());
        assert!(get("http://").is_err());
    }
}
