//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream`, and the message parsing that the
//! Runtime API emulator shares with it.
//!
//! Enough for moto's `/moto-api/*` calls and for poking the emulator by hand: one request per
//! connection, bodies framed by `Content-Length`, chunked encoding or the end of the connection.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a request waits for the server unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A head larger than this is refused rather than buffered without end.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Header (or trailer) fields in the order received, names as sent.
pub type Headers = Vec<(String, String)>;

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names as sent; look them up with [`Response::header`], which ignores case.
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
/// waiting at most [`DEFAULT_TIMEOUT`] for each read.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    request_with_timeout(method, url, headers, body, DEFAULT_TIMEOUT)
}

/// [`request`] with its own read/write timeout.
pub fn request_with_timeout(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let (authority, path) = split_url(url)?;
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    let mut has_content_length = false;
    for (name, value) in headers {
        has_content_length |= name.eq_ignore_ascii_case("content-length");
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !has_content_length && (!body.is_empty() || method != "GET") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    stream.write_all(&message)?;
    stream.flush()?;

    let mut reader = BufReader::new(stream);
    let (status_line, mut headers) =
        read_head(&mut reader)?.ok_or_else(|| invalid("connection closed before a response"))?;
    let status = parse_status(&status_line)?;
    let body = if method == "HEAD" || status < 200 || status == 204 || status == 304 {
        Vec::new()
    } else {
        read_body(&mut reader, &mut headers, true)?
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Splits `http://authority/path` into (`authority`, `/path`).
fn split_url(url: &str) -> io::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("only `http://` URLs are supported, not `{url}`")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains(['?', '#']) {
        return Err(invalid(format!(
            "no `host:port` before the path in `{url}`"
        )));
    }
    Ok((authority, path))
}

fn parse_status(line: &str) -> io::Result<u16> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code
            .parse()
            .map_err(|_| invalid(format!("bad status line `{line}`"))),
        _ => Err(invalid(format!("bad status line `{line}`"))),
    }
}

/// The first header named `name` (case-insensitive).
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(crate) fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Reads a start line and headers. `None` when the peer closed the connection before sending
/// anything (the normal end of a kept-alive connection).
pub(crate) fn read_head(reader: &mut impl BufRead) -> io::Result<Option<(String, Headers)>> {
    let mut total = 0;
    let mut start_line = String::new();
    // Tolerate empty lines before a request (RFC 9112 section 2.2).
    while start_line.trim().is_empty() {
        start_line.clear();
        let n = read_line(reader, &mut start_line, &mut total)?;
        if n == 0 {
            return Ok(None);
        }
    }
    let start_line = start_line.trim_end().to_owned();
    let headers = read_fields(reader, &mut total)?;
    Ok(Some((start_line, headers)))
}

/// Reads `name: value` lines up to an empty line (headers, or a chunked body's trailers).
fn read_fields(reader: &mut impl BufRead, total: &mut usize) -> io::Result<Headers> {
    let mut fields = Vec::new();
    loop {
        let mut line = String::new();
        if read_line(reader, &mut line, total)? == 0 {
            return Err(invalid("connection closed inside a message head"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Ok(fields);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line `{line}`")))?;
        fields.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

fn read_line(reader: &mut impl BufRead, line: &mut String, total: &mut usize) -> io::Result<usize> {
    let limit = (MAX_HEAD_BYTES - (*total).min(MAX_HEAD_BYTES)) as u64 + 1;
    let n = reader.by_ref().take(limit).read_line(line)?;
    *total += n;
    if *total > MAX_HEAD_BYTES {
        return Err(invalid("message head too large"));
    }
    Ok(n)
}

/// Reads a body framed as `headers` say; trailers of a chunked body are appended to `headers`.
/// Without framing, a response body runs to the end of the connection and a request has none.
pub(crate) fn read_body(
    reader: &mut impl BufRead,
    headers: &mut Headers,
    unframed_runs_to_eof: bool,
) -> io::Result<Vec<u8>> {
    let chunked = header(headers, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let (body, trailers) = read_chunked(reader)?;
        headers.extend(trailers);
        return Ok(body);
    }
    if let Some(length) = header(headers, "content-length") {
        let length: u64 = length
            .parse()
            .map_err(|_| invalid(format!("bad content-length `{length}`")))?;
        let mut body = Vec::new();
        reader.take(length).read_to_end(&mut body)?;
        if body.len() as u64 != length {
            return Err(invalid("connection closed inside a body"));
        }
        return Ok(body);
    }
    let mut body = Vec::new();
    if unframed_runs_to_eof {
        reader.read_to_end(&mut body)?;
    }
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<(Vec<u8>, Headers)> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        let mut ignored = 0;
        if read_line(reader, &mut size_line, &mut ignored)? == 0 {
            return Err(invalid("connection closed inside a chunked body"));
        }
        let size = size_line
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("bad chunk size `{}`", size_line.trim())))?;
        if size == 0 {
            let mut total = 0;
            let trailers = read_fields(reader, &mut total)?;
            return Ok((body, trailers));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(invalid("chunk not followed by CRLF"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chunked_body_and_trailers() {
        let raw = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nX-Trailer: yes\r\n\r\nrest";
        let mut reader = BufReader::new(&raw[..]);
        let mut headers = vec![("Transfer-Encoding".to_owned(), "chunked".to_owned())];
        let body = read_body(&mut reader, &mut headers, false).unwrap();
        assert_eq!(body, b"Wikipedia ");
        assert_eq!(header(&headers, "x-trailer"), Some("yes"));
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "rest", "the reader stops right after the message");
    }

    #[test]
    fn reads_head_and_content_length_body() {
        let raw = b"\r\nPOST /x HTTP/1.1\r\nHost: h\r\ncontent-length: 3\r\n\r\nabcGET";
        let mut reader = BufReader::new(&raw[..]);
        let (line, mut headers) = read_head(&mut reader).unwrap().unwrap();
        assert_eq!(line, "POST /x HTTP/1.1");
        assert_eq!(header(&headers, "Content-Length"), Some("3"));
        assert_eq!(read_body(&mut reader, &mut headers, true).unwrap(), b"abc");
    }

    #[test]
    fn head_is_none_at_clean_end_of_connection() {
        let mut reader = BufReader::new(&b""[..]);
        assert!(read_head(&mut reader).unwrap().is_none());
    }

    #[test]
    fn refuses_endless_head() {
        let raw = vec![b'a'; MAX_HEAD_BYTES + 10];
        let mut reader = BufReader::new(&raw[..]);
        assert!(read_head(&mut reader).is_err());
    }

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("http://127.0.0.1:5/a/b?c=d").unwrap(),
            ("127.0.0.1:5", "/a/b?c=d")
        );
        assert_eq!(
            split_url("http://127.0.0.1:5").unwrap(),
            ("127.0.0.1:5", "/")
        );
        assert!(split_url("https://example.com/").is_err());
        assert!(split_url("http://").is_err());
    }
}
