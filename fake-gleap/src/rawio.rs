//! Lets raw `<` and `>` through to the query parser.
//!
//! Gleap documents its range operators raw in the URL (`updatedAt>=X`), and
//! its server (Node) accepts them. hyper does not: the `http` crate rejects
//! a request target with a raw `<` or `>` (400 before any handler runs). So
//! every connection is read through [`RawTargets`], which rewrites a raw `<`
//! or `>` in a request line into a private marker (an overlong UTF-8 escape,
//! `%C0%BC` / `%C0%BE`, which no conforming client sends), and the handler
//! turns the markers back into raw characters ([`restore`]) before parsing.
//! The query parser thus still tells `updatedAt>=` from `updatedAt%3E=`.
//!
//! Only request lines are touched: header blocks and `Content-Length`
//! bodies pass through unchanged; after a chunked body the rest of the
//! connection passes through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const LT: &[u8] = b"%C0%BC";
const GT: &[u8] = b"%C0%BE";

/// Turns the markers of a request target back into raw `<` / `>`.
pub(crate) fn restore(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains("%C0%B") {
        s.replace("%C0%BC", "<").replace("%C0%BE", ">").into()
    } else {
        s.into()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before or in a request line; `started` once past leading CRLFs.
    Line { started: bool },
    /// In the header block of a request.
    Headers { content_length: u64, chunked: bool },
    /// In a `Content-Length` body: bytes left.
    Body(u64),
    /// Give up rewriting for this connection (chunked body, bad header).
    Through,
}

/// A connection whose request lines get raw `<` / `>` escaped (see the
/// module docs); writes pass straight through.
pub(crate) struct RawTargets<S> {
    inner: S,
    state: State,
    /// The current header line (capped), to find the body's length.
    line: Vec<u8>,
    /// Rewritten bytes not yet handed out, and how many were.
    out: Vec<u8>,
    pos: usize,
}

impl<S> RawTargets<S> {
    pub fn new(inner: S) -> Self {
        RawTargets {
            inner,
            state: State::Line { started: false },
            line: Vec::new(),
            out: Vec::new(),
            pos: 0,
        }
    }

    fn header_line_done(&mut self) {
        let line = std::mem::take(&mut self.line);
        let State::Headers {
            content_length,
            chunked,
        } = self.state
        else {
            return;
        };
        let l = line.strip_suffix(b"\r").unwrap_or(&line);
        if l.is_empty() {
            self.state = if chunked {
                State::Through
            } else if content_length > 0 {
                State::Body(content_length)
            } else {
                State::Line { started: false }
            };
            return;
        }
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            return;
        };
        let name = l[..colon].to_ascii_lowercase();
        let value = String::from_utf8_lossy(&l[colon + 1..]).trim().to_string();
        if name == b"content-length" {
            match value.parse::<u64>() {
                Ok(n) => {
                    self.state = State::Headers {
                        content_length: n,
                        chunked,
                    }
                }
                Err(_) => self.state = State::Through,
            }
        } else if name == b"transfer-encoding" {
            self.state = State::Headers {
                content_length,
                chunked: chunked || value.to_ascii_lowercase().contains("chunked"),
            };
        }
    }

    fn rewrite(&mut self, input: &[u8]) {
        for &b in input {
            match self.state {
                State::Through => self.out.push(b),
                State::Body(n) => {
                    self.out.push(b);
                    self.state = if n <= 1 {
                        State::Line { started: false }
                    } else {
                        State::Body(n - 1)
                    };
                }
                State::Line { started } => match b {
                    b'\r' | b'\n' if !started => self.out.push(b),
                    b'\n' => {
                        self.out.push(b);
                        self.line.clear();
                        self.state = State::Headers {
                            content_length: 0,
                            chunked: false,
                        };
                    }
                    b'<' => self.out.extend_from_slice(LT),
                    b'>' => self.out.extend_from_slice(GT),
                    _ => {
                        self.out.push(b);
                        self.state = State::Line { started: true };
                    }
                },
                State::Headers { .. } => {
                    self.out.push(b);
                    if b == b'\n' {
                        self.header_line_done();
                    } else if self.line.len() < 8192 {
                        self.line.push(b);
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RawTargets<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos == this.out.len() {
            this.out.clear();
            this.pos = 0;
            let mut tmp = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut tmp);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            if rb.filled().is_empty() {
                return Poll::Ready(Ok(())); // EOF
            }
            let filled = rb.filled().to_vec();
            this.rewrite(&filled);
        }
        let n = (this.out.len() - this.pos).min(buf.remaining());
        buf.put_slice(&this.out[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RawTargets<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A TCP listener whose connections are [`RawTargets`], for `axum::serve`.
pub(crate) struct RawListener(pub tokio::net::TcpListener);

impl axum::serve::Listener for RawListener {
    type Io = RawTargets<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (s, a) = axum::serve::Listener::accept(&mut self.0).await;
        (RawTargets::new(s), a)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(chunks: &[&[u8]]) -> Vec<u8> {
        let mut r = RawTargets::new(());
        for c in chunks {
            r.rewrite(c);
        }
        r.out
    }

    #[test]
    fn only_request_lines_are_rewritten() {
        let req = b"GET /v3/x?a>=1&b<2 HTTP/1.1\r\nX: <y>\r\n\r\n";
        assert_eq!(
            rw(&[req]),
            b"GET /v3/x?a%C0%BE=1&b%C0%BC2 HTTP/1.1\r\nX: <y>\r\n\r\n".to_vec()
        );
        // Split anywhere, a body with its length, then the next request.
        let two =
            b"\r\nPOST /p?x>1 HTTP/1.1\r\ncontent-length: 3\r\n\r\n<>>GET /q?y<1 HTTP/1.1\r\n\r\n";
        let want = b"\r\nPOST /p?x%C0%BE1 HTTP/1.1\r\ncontent-length: 3\r\n\r\n<>>GET /q?y%C0%BC1 HTTP/1.1\r\n\r\n".to_vec();
        for cut in 0..two.len() {
            assert_eq!(rw(&[&two[..cut], &two[cut..]]), want, "cut at {cut}");
        }
        // After a chunked body, nothing is touched any more.
        let ch = b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n>\r\n0\r\n\r\nGET /q?a>1 HTTP/1.1\r\n\r\n";
        assert_eq!(rw(&[ch]), ch.to_vec());
        assert_eq!(restore("a%C0%BE=1&b%C0%BC2&c%3E3"), "a>=1&b<2&c%3E3");
    }
}
