//! A small blocking HTTP/1.1 client for the lab: the sidecar's local API
//! over a Unix socket or loopback TCP, and `ternd`'s server API. Requests
//! reuse one keep-alive connection; event streams (SSE) get their own.
//! Enough of HTTP for our own servers: `content-length` and chunked
//! bodies, no redirects, no TLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Where an HTTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// TCP.
    Tcp(SocketAddr),
}

impl Endpoint {
    /// Parses `unix:PATH` or `http://ADDR` (as `tern sidecar` prints them).
    pub fn parse(s: &str) -> Option<Endpoint> {
        if let Some(p) = s.strip_prefix("unix:") {
            return Some(Endpoint::Unix(p.into()));
        }
        s.strip_prefix("http://")
            .and_then(|a| a.trim_end_matches('/').parse().ok())
            .map(Endpoint::Tcp)
    }

    fn connect(&self, timeout: Duration) -> std::io::Result<Conn> {
        Ok(match self {
            Endpoint::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_read_timeout(Some(timeout))?;
                Conn::Unix(s)
            }
            Endpoint::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, timeout)?;
                s.set_read_timeout(Some(timeout))?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
        })
    }
}

enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Read for Conn {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(b),
            Conn::Tcp(s) => s.read(b),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(b),
            Conn::Tcp(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

impl Conn {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_read_timeout(t),
            Conn::Tcp(s) => s.set_read_timeout(t),
        }
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before an answer",
        ));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, headers));
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
}

fn read_body(r: &mut impl BufRead, headers: &[(String, String)]) -> std::io::Result<Vec<u8>> {
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let n: usize = get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; n];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// A client of one endpoint.
pub struct HttpClient {
    endpoint: Endpoint,
    bearer: Option<String>,
    timeout: Duration,
    conn: Option<BufReader<Conn>>,
}

impl HttpClient {
    /// A client sending `Authorization: Bearer` when given a token.
    pub fn new(endpoint: Endpoint, bearer: Option<String>) -> HttpClient {
        HttpClient {
            endpoint,
            bearer,
            timeout: Duration::from_secs(30),
            conn: None,
        }
    }

    /// How long a request may take.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn head(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n");
        if let Some(t) = &self.bearer {
            req.push_str(&format!("authorization: Bearer {t}\r\n"));
        }
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        if let Some(b) = body {
            out.extend_from_slice(b);
        }
        out
    }

    /// One request on the keep-alive connection (reconnecting once if the
    /// server had closed it).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<Response> {
        let raw = self.head(method, path, body, &[]);
        for attempt in 0..2 {
            if self.conn.is_none() {
                self.conn = Some(BufReader::new(self.endpoint.connect(self.timeout)?));
            }
            let conn = self.conn.as_mut().expect("just set");
            let sent = conn.get_mut().write_all(&raw);
            let answer = sent.and_then(|_| {
                let (status, headers) = read_head(conn)?;
                let body = read_body(conn, &headers)?;
                Ok(Response {
                    status,
                    headers,
                    body,
                })
            });
            match answer {
                Ok(r) => return Ok(r),
                Err(e) if attempt == 0 && e.kind() != std::io::ErrorKind::WouldBlock => {
                    self.conn = None;
                }
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// `GET path`.
    pub fn get(&mut self, path: &str) -> std::io::Result<Response> {
        self.request("GET", path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&mut self, path: &str, body: &serde_json::Value) -> std::io::Result<Response> {
        let b = serde_json::to_vec(body).map_err(|e| bad(e.to_string()))?;
        self.request("POST", path, Some(&b))
    }

    /// Opens an event stream (`GET path`, `Accept: text/event-stream`) on
    /// its own connection.
    pub fn events(&self, path: &str, last_event_id: Option<u64>) -> std::io::Result<EventStream> {
        let mut conn = self.endpoint.connect(self.timeout)?;
        let id = last_event_id.map(|i| i.to_string());
        let mut extra = vec![("accept", "text/event-stream")];
        if let Some(i) = &id {
            extra.push(("last-event-id", i.as_str()));
        }
        conn.write_all(&self.head("GET", path, None, &extra))?;
        let mut r = BufReader::new(conn);
        let (status, headers) = read_head(&mut r)?;
        if status != 200 {
            let body = read_body(&mut r, &headers).unwrap_or_default();
            return Err(bad(format!(
                "event stream answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        Ok(EventStream {
            r,
            chunked,
            chunk_left: 0,
            pending: String::new(),
        })
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`.
    pub id: Option<String>,
    /// `event:`.
    pub event: Option<String>,
    /// `data:` lines joined by newlines.
    pub data: String,
}

/// An open SSE stream. Dropping it closes the connection (an app crash).
pub struct EventStream {
    r: BufReader<Conn>,
    chunked: bool,
    chunk_left: usize,
    pending: String,
}

impl EventStream {
    /// Reads one line of the event stream, unwrapping chunked encoding.
    fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = self.pending.find('\n') {
                let line: String = self.pending.drain(..=i).collect();
                return Ok(line.trim_end_matches(['\r', '\n']).to_string());
            }
            if !self.chunked {
                let mut l = String::new();
                if self.r.read_line(&mut l)? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                self.pending.push_str(&l);
                continue;
            }
            if self.chunk_left == 0 {
                let mut size = String::new();
                if self.r.read_line(&mut size)? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                if size.trim().is_empty() {
                    continue; // the CRLF closing the previous chunk
                }
                self.chunk_left = usize::from_str_radix(size.trim(), 16)
                    .map_err(|_| bad(format!("bad chunk size {size:?}")))?;
                if self.chunk_left == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            let mut buf = vec![0; self.chunk_left];
            self.r.read_exact(&mut buf)?;
            self.chunk_left = 0;
            self.pending.push_str(&String::from_utf8_lossy(&buf));
        }
    }

    /// The next event (comments and keep-alives skipped), waiting at most
    /// `timeout`.
    pub fn next(&mut self, timeout: Duration) -> std::io::Result<SseEvent> {
        self.r.get_ref().set_read_timeout(Some(timeout))?;
        let mut ev = SseEvent::default();
        let mut any = false;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                if any {
                    return Ok(ev);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (k, v) = line.split_once(':').unwrap_or((&line, ""));
            let v = v.strip_prefix(' ').unwrap_or(v).to_string();
            any = true;
            match k {
                "id" => ev.id = Some(v),
                "event" => ev.event = Some(v),
                "data" => {
                    if !ev.data.is_empty() {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(&v);
                }
                _ => {}
            }
        }
    }
}
