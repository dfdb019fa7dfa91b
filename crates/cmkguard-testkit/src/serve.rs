//! The harness's HTTP servers (the fault proxy, the Runtime API emulator) on hyper: an accept
//! loop on the harness runtime, a task per connection, each request read whole and handed to a
//! handler, and every connection closed when the server is dropped.
//!
//! Hand-made here, because hyper has no way to do it: a handler can end its connection with a TCP
//! reset instead of an answer ([`Connection::reset`]), as a network failure mid-request does.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::http::{Headers, fields, runtime};

/// A request, read whole.
#[derive(Debug)]
pub(crate) struct Received {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header fields, then the trailers of a chunked body.
    pub headers: Headers,
    pub body: Bytes,
}

impl Received {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// A response, its body whole.
pub(crate) type Reply = hyper::Response<Full<Bytes>>;

/// What a handler answers: a response, or [`Hangup`] to close the connection without one.
pub(crate) type Answer = Result<Reply, Hangup>;

/// Closes the connection without an answer.
#[derive(Debug)]
pub(crate) struct Hangup;

impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the handler hung up")
    }
}

impl std::error::Error for Hangup {}

/// The connection a request came on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connection {
    reset: Arc<AtomicBool>,
}

impl Connection {
    /// Makes the connection's close a TCP reset (RST) instead of a FIN; pair it with [`Hangup`].
    pub fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
    }
}

/// A server on `127.0.0.1:<free port>`; dropping it stops accepting and closes every connection.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Server {
    /// Serves every request with `handler`, each connection on a task of its own.
    pub fn start<H, F>(handler: H) -> Server
    where
        H: Fn(Received, Connection) -> F + Send + Sync + 'static,
        F: Future<Output = Answer> + Send + 'static,
    {
        let listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let handler = Arc::new(handler);
        let accept = runtime().spawn(async move {
            let listener = TcpListener::from_std(listener).expect("register the listener");
            // Dropped with this task (when the server is): that aborts every connection's task.
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of descriptors, say: wait rather than spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let connection = Connection::default();
                let io = TokioIo::new(Socket {
                    stream,
                    reset: Arc::clone(&connection.reset),
                });
                let handler = Arc::clone(&handler);
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let handler = Arc::clone(&handler);
                        let connection = connection.clone();
                        async move { handler(read(request).await?, connection).await }
                    });
                    let _ = http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Server { addr, accept }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn read(request: hyper::Request<Incoming>) -> Result<Received, Hangup> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| Hangup)?;
    let headers = fields(&parts.headers, body.trailers());
    Ok(Received {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers,
        body: body.to_bytes(),
    })
}

/// A TCP stream that closes with a reset when its connection asked for one.
struct Socket {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            // Linger 0: close sends RST instead of FIN.
            let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A response with `status`, `headers` and `body`.
pub(crate) fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut response = hyper::Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response
        .body(Full::new(body.into()))
        .expect("a status and headers that make a response")
}
