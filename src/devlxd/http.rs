//! HTTP/1.1 framing for the guest API: request heads parsed by `httparse`, bodies framed
//! by `Content-Length` or chunked coding (`httparse::parse_chunk_size`), responses
//! serialised with an exact `Content-Length`.

use httparse::Status;

/// Most header lines a request may have.
const MAX_HEADERS: usize = 64;

/// A complete request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// Keep the connection open after answering.
    pub keep_alive: bool,
    /// HTTP/1.0 client that asked for keep-alive (must be told it got it).
    pub http10_keep_alive: bool,
    pub body: Vec<u8>,
}

/// What the bytes received so far amount to.
#[derive(Debug)]
pub enum Parsed {
    /// More bytes needed; `expect_continue` when the head is complete and asks for
    /// `100 Continue` before the client sends the body.
    Partial { expect_continue: bool },
    /// A request and how many bytes of the buffer it used.
    Complete(Request, usize),
    /// A request that can't be served: answer with this status and close.
    Error(u16),
}

/// Parses one request from the front of `buf`; nothing may make it use more than `max`
/// bytes (head and body together).
pub fn parse(buf: &[u8], max: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) => {
            if buf.len() > max {
                return Parsed::Error(431);
            }
            return Parsed::Partial {
                expect_continue: false,
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Error(431),
        Err(_) => return Parsed::Error(400),
    };
    if head_len > max {
        return Parsed::Error(431);
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Error(400);
    };

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            if h.name.eq_ignore_ascii_case("content-length")
                || h.name.eq_ignore_ascii_case("transfer-encoding")
            {
                return Parsed::Error(400);
            }
            continue;
        };
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Parsed::Error(400);
            }
            let Ok(n) = value.parse::<usize>() else {
                return Parsed::Error(413);
            };
            if content_length.is_some_and(|m| m != n) {
                return Parsed::Error(400);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only chunked is understood, and it must come last (RFC 9112 §6.3).
            let last = value.rsplit(',').next().unwrap_or("").trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Parsed::Error(400);
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                conn_close |= token.eq_ignore_ascii_case("close");
                conn_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue |= value.eq_ignore_ascii_case("100-continue");
        }
    }
    if chunked && content_length.is_some() {
        return Parsed::Error(400);
    }
    let http11 = version == 1;
    let keep_alive = if http11 {
        !conn_close
    } else {
        conn_keep_alive && !conn_close
    };

    let (body, used) = if chunked {
        match dechunk(buf, head_len, max) {
            Ok(Some(done)) => done,
            Ok(None) => return Parsed::Partial { expect_continue },
            Err(status) => return Parsed::Error(status),
        }
    } else {
        let len = content_length.unwrap_or(0);
        if len > max - head_len {
            return Parsed::Error(413);
        }
        if buf.len() - head_len < len {
            return Parsed::Partial { expect_continue };
        }
        (buf[head_len..head_len + len].to_vec(), head_len + len)
    };
    Parsed::Complete(
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            keep_alive,
            http10_keep_alive: !http11 && keep_alive,
            body,
        },
        used,
    )
}

/// Decodes a chunked body starting at `buf[start..]`: `Ok(None)` while incomplete.
fn dechunk(buf: &[u8], start: usize, max: usize) -> Result<Option<(Vec<u8>, usize)>, u16> {
    let mut body = Vec::new();
    let mut pos = start;
    loop {
        let (skip, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(Status::Complete(x)) => x,
            Ok(Status::Partial) => {
                return if buf.len() > max { Err(413) } else { Ok(None) };
            }
            Err(_) => return Err(400),
        };
        pos += skip;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).map_err(|_| 413u16)?;
        if size > max.saturating_sub(pos) {
            return Err(413);
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(400);
        }
        pos += size + 2;
    }
    // Trailer section, then the empty line.
    let rest = &buf[pos..];
    if rest.starts_with(b"\r\n") {
        return Ok(Some((body, pos + 2)));
    }
    let mut trailers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(rest, &mut trailers) {
        Ok(Status::Complete((n, _))) => Ok(Some((body, pos + n))),
        Ok(Status::Partial) => {
            if buf.len() > max {
                Err(431)
            } else {
                Ok(None)
            }
        }
        Err(_) => Err(400),
    }
}

/// An answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// `X-Content-Type-Options: nosniff` (Go's `http.Error` sets it on error bodies).
    pub nosniff: bool,
    pub body: Vec<u8>,
}

pub const JSON: &str = "application/json";
pub const RAW: &str = "application/octet-stream";
pub const TEXT: &str = "text/plain; charset=utf-8";

impl Response {
    /// A JSON body as LXD writes it (`json.Encoder`: one line, then a newline).
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Response {
        let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        body.push(b'\n');
        Response {
            status: 200,
            content_type: JSON,
            nosniff: false,
            body,
        }
    }

    /// A raw body, unchanged.
    pub fn raw(body: impl Into<Vec<u8>>) -> Response {
        Response {
            status: 200,
            content_type: RAW,
            nosniff: false,
            body: body.into(),
        }
    }

    /// An error as Go's `http.Error` writes it: plain text, then a newline.
    pub fn error(status: u16, message: &str) -> Response {
        let mut body = message.as_bytes().to_vec();
        body.push(b'\n');
        Response {
            status,
            content_type: TEXT,
            nosniff: true,
            body,
        }
    }

    /// An error whose message is the status text (`api.NewGenericStatusError`).
    pub fn status(status: u16) -> Response {
        Response::error(status, reason(status))
    }

    /// The bytes on the wire. `head_only` for a HEAD request (no body, same headers);
    /// `close` adds `Connection: close`, `keep_alive_10` `Connection: keep-alive`.
    pub fn serialize(&self, head_only: bool, close: bool, keep_alive_10: bool) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::with_capacity(160 + self.body.len());
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type
        );
        if self.nosniff {
            out.extend_from_slice(b"X-Content-Type-Options: nosniff\r\n");
        }
        let _ = write!(out, "Content-Length: {}\r\n", self.body.len());
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if keep_alive_10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The head LXD sends before an events stream (its body then runs until the connection
/// closes, one JSON event per line).
pub const EVENTS_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\
Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n\r\n";

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Reason phrases (Go's `http.StatusText` for the codes used here).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (Request, usize) {
        match parse(buf, 65536) {
            Parsed::Complete(r, n) => (r, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simple_get_and_pipelining() {
        let buf = b"GET /1.0 HTTP/1.1\r\nHost: lxd\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let (r, n) = complete(buf);
        assert_eq!((r.method.as_str(), r.target.as_str()), ("GET", "/1.0"));
        assert!(r.keep_alive);
        let (r2, _) = complete(&buf[n..]);
        assert_eq!(r2.target, "/");
    }

    #[test]
    fn content_length_and_chunked_bodies() {
        let (r, _) = complete(b"PATCH /1.0 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(r.body, b"hello");
        assert!(matches!(
            parse(
                b"PATCH /1.0 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel",
                65536
            ),
            Parsed::Partial { .. }
        ));
        let (r, n) = complete(
            b"PATCH /1.0 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nX",
        );
        assert_eq!(r.body, b"abcde");
        assert_eq!(n, 71);
    }

    #[test]
    fn versions_and_connection_header() {
        let (r, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!r.keep_alive);
        let (r, _) = complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(r.keep_alive && r.http10_keep_alive);
        let (r, _) = complete(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(!r.keep_alive);
    }

    #[test]
    fn limits_and_errors() {
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", 65536),
            Parsed::Error(413)
        ));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(70000, b'a');
        assert!(matches!(parse(&big, 65536), Parsed::Error(431)));
        assert!(matches!(
            parse(b"GET\x01 / HTTP/1.1\r\n\r\n", 65536),
            Parsed::Error(400)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 65536),
            Parsed::Error(400)
        ));
        assert!(matches!(
            parse(
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                65536
            ),
            Parsed::Error(400)
        ));
    }

    #[test]
    fn expect_continue_is_reported_while_the_body_is_missing() {
        assert!(matches!(
            parse(
                b"PATCH /1.0 HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
                65536
            ),
            Parsed::Partial {
                expect_continue: true
            }
        ));
    }

    #[test]
    fn serialization() {
        let r = Response::error(404, "not found");
        assert_eq!(
            r.serialize(false, true, false),
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
X-Content-Type-Options: nosniff\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n"
        );
        let head = Response::raw("abc").serialize(true, false, false);
        assert!(head.ends_with(b"Content-Length: 3\r\n\r\n"));
    }
}
