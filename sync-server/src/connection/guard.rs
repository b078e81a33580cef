//! The frame limit before authentication. tokio-tungstenite fixes its size limits when the
//! socket is accepted, so the small pre-authentication limit is enforced beneath it: the
//! guard reads the WebSocket frame headers as the bytes pass and fails the read that
//! carries the header of a frame (or message) larger than the limit, before any of its
//! payload is buffered. Once the client has authenticated, the guard is lifted and the
//! relay's `--max-message-bytes` (tungstenite's own limits) applies.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A frame or message over the pre-authentication limit.
#[derive(Debug, thiserror::Error)]
#[error(
    "a WebSocket message of {size} bytes before authentication; until the client has sent \
     hello and auth the limit is {limit} bytes (--max-preauth-frame-bytes): authenticate first"
)]
pub(crate) struct TooLargeBeforeAuth {
    /// The announced size.
    pub(crate) size: u64,
    /// The limit.
    pub(crate) limit: u64,
}

#[derive(Debug)]
enum State {
    /// Bytes of the HTTP head still to pass before the first frame.
    Head(usize),
    /// Reading frames.
    Frames {
        header: [u8; 14],
        have: usize,
        payload: u64,
        message: u64,
    },
    /// Authenticated: no more checks.
    Lifted,
}

/// `inner`, with frames over `limit` refused until [`FrameGuard::lift`].
#[derive(Debug)]
pub(crate) struct FrameGuard<S> {
    inner: S,
    state: State,
    limit: u64,
}

impl<S> FrameGuard<S> {
    /// Guards `inner`, whose first `head` bytes are the HTTP request head.
    pub(crate) fn new(inner: S, head: usize, limit: u64) -> Self {
        let state = if head == 0 {
            frames()
        } else {
            State::Head(head)
        };
        Self {
            inner,
            state,
            limit,
        }
    }

    /// Stops checking: the client has authenticated.
    pub(crate) fn lift(&mut self) {
        self.state = State::Lifted;
    }

    /// The underlying stream.
    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    fn check(&mut self, mut bytes: &[u8]) -> Result<(), TooLargeBeforeAuth> {
        let limit = self.limit;
        let too_large = |size| TooLargeBeforeAuth { size, limit };
        while !bytes.is_empty() {
            match &mut self.state {
                State::Lifted => return Ok(()),
                State::Head(rest) => {
                    let n = (*rest).min(bytes.len());
                    bytes = &bytes[n..];
                    *rest -= n;
                    if *rest == 0 {
                        self.state = frames();
                    }
                }
                State::Frames { payload, .. } if *payload > 0 => {
                    let n = usize::try_from(*payload)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    bytes = &bytes[n..];
                    *payload -= n as u64;
                }
                State::Frames {
                    header,
                    have,
                    payload,
                    message,
                } => {
                    header[*have] = bytes[0];
                    *have += 1;
                    bytes = &bytes[1..];
                    let Some((len, data, fin)) = parse(&header[..*have]) else {
                        continue;
                    };
                    *have = 0;
                    if len > limit {
                        return Err(too_large(len));
                    }
                    if data {
                        *message = message.saturating_add(len);
                        if *message > limit {
                            return Err(too_large(*message));
                        }
                        if fin {
                            *message = 0;
                        }
                    }
                    *payload = len;
                }
            }
        }
        Ok(())
    }
}

fn frames() -> State {
    State::Frames {
        header: [0; 14],
        have: 0,
        payload: 0,
        message: 0,
    }
}

/// A complete frame header: (payload length, is a data frame, FIN); None while incomplete.
fn parse(h: &[u8]) -> Option<(u64, bool, bool)> {
    let (&b0, &b1) = (h.first()?, h.get(1)?);
    let short = u64::from(b1 & 0x7f);
    let extended = match short {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    if h.len() < 2 + extended + mask {
        return None;
    }
    let len = match extended {
        0 => short,
        _ => h[2..2 + extended]
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b)),
    };
    let opcode = b0 & 0x0f;
    Some((len, opcode < 8, b0 & 0x80 != 0))
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = buf.filled().get(before..).unwrap_or_default();
                match this.check(fresh) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(e) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameGuard<S> {
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
}

#[cfg(test)]
mod tests {
    use super::FrameGuard;

    fn frame(len: usize, fin: bool, opcode: u8) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            0..=125 => f.push(0x80 | len as u8),
            126..=65535 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(0u8, len));
        f
    }

    #[test]
    fn small_frames_pass_byte_by_byte_and_a_large_header_fails() {
        let mut g = FrameGuard::new((), 3, 4096);
        let mut bytes = b"GET".to_vec();
        bytes.extend(frame(100, true, 2));
        bytes.extend(frame(4096, true, 2));
        bytes.extend(frame(0, true, 9));
        for b in &bytes {
            g.check(std::slice::from_ref(b)).expect("within the limit");
        }
        let err = g.check(&frame(16 << 20, true, 2)[..14]).unwrap_err();
        assert_eq!((err.size, err.limit), (16 << 20, 4096));
    }

    #[test]
    fn fragments_count_towards_their_message() {
        let mut g = FrameGuard::new((), 0, 4096);
        g.check(&frame(3000, false, 2)).expect("first fragment");
        g.check(&frame(100, true, 9)).expect("a ping in between");
        assert!(g.check(&frame(3000, true, 0)).is_err());
    }

    #[test]
    fn lifted_guard_lets_anything_through() {
        let mut g = FrameGuard::new((), 0, 10);
        g.lift();
        g.check(&frame(1000, true, 2)).expect("lifted");
    }
}
