//! Receiving one request frame (a 4-byte big-endian size, then that many bytes) without
//! trusting the size.
//!
//! The size a client announces is only a promise. Memory is charged to the broker-wide
//! `queued.max.request.bytes` budget for what is held, and a frame's buffer grows as its bytes
//! arrive: it starts at [`FIRST_STEP`] and at most doubles each time it fills, so a client that
//! announces 100 MiB and sends two bytes holds 4 KiB, and one that has sent `n` bytes holds at
//! most `2n` (plus the first step). Doubling keeps copying linear in the frame's size.
//!
//! Between frames a connection holds no buffer at all: the size prefix is read into four bytes
//! inside the reader itself.

use std::sync::Arc;

use bytes::{BufMut, Bytes};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::connection::ConnError;

/// The first allocation for a frame's body (or the whole body when smaller).
pub const FIRST_STEP: usize = 4 * 1024;

/// A complete request frame, with the share of the memory budget it holds.
pub struct Frame {
    pub bytes: Bytes,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// What one read brought.
pub enum Progress {
    /// Some bytes of a frame arrived; more are needed.
    Partial,
    Frame(Frame),
    /// The client closed its side between frames.
    Closed,
}

/// The frame being received on one connection.
#[derive(Default)]
pub struct FrameReader {
    prefix: [u8; 4],
    prefix_len: usize,
    body: Option<Body>,
    /// When the first byte of the current frame arrived.
    started: Option<Instant>,
}

struct Body {
    size: usize,
    buf: Vec<u8>,
    /// Permits for `buf.capacity()` bytes.
    permit: Option<OwnedSemaphorePermit>,
}

impl FrameReader {
    /// When the frame in progress began to arrive (`None` between frames).
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// Bytes of the frame in progress received so far, and its announced size once known.
    pub fn progress(&self) -> (usize, Option<usize>) {
        match &self.body {
            Some(b) => (4 + b.buf.len(), Some(b.size)),
            None => (self.prefix_len, None),
        }
    }

    /// Waits for bytes and reads what is there, up to the end of the current frame.
    ///
    /// Cancel-safe: every await comes before anything is read, so dropping the future between
    /// polls loses nothing (a budget share acquired but not yet used is simply given back).
    pub async fn read(
        &mut self,
        stream: &TcpStream,
        max_size: usize,
        memory: Option<&Arc<Semaphore>>,
    ) -> Result<Progress, ConnError> {
        if let Some(body) = &mut self.body {
            body.make_room(memory).await?;
        }
        loop {
            stream.readable().await?;
            let read = match &mut self.body {
                None => stream.try_read(&mut self.prefix[self.prefix_len..]),
                Some(body) => {
                    let want = body.size - body.buf.len();
                    let mut limited = (&mut body.buf).limit(want);
                    stream.try_read_buf(&mut limited)
                }
            };
            let n = match read {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                if self.started.is_none() {
                    return Ok(Progress::Closed);
                }
                return Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.started.get_or_insert_with(Instant::now);
            return self.advance(n, max_size);
        }
    }

    fn advance(&mut self, n: usize, max_size: usize) -> Result<Progress, ConnError> {
        match &mut self.body {
            None => {
                self.prefix_len += n;
                if self.prefix_len < 4 {
                    return Ok(Progress::Partial);
                }
                let size = i32::from_be_bytes(self.prefix);
                if size < 0 {
                    return Err(ConnError::NegativeSize(size));
                }
                let size = size as usize;
                if size > max_size {
                    return Err(ConnError::TooLarge {
                        size,
                        max: max_size,
                    });
                }
                self.body = Some(Body {
                    size,
                    buf: Vec::new(),
                    permit: None,
                });
                if size == 0 {
                    return Ok(self.finish());
                }
                Ok(Progress::Partial)
            }
            Some(body) => {
                if body.buf.len() < body.size {
                    return Ok(Progress::Partial);
                }
                Ok(self.finish())
            }
        }
    }

    fn finish(&mut self) -> Progress {
        let body = self.body.take();
        *self = FrameReader::default();
        match body {
            Some(b) => Progress::Frame(Frame {
                bytes: Bytes::from(b.buf),
                permit: b.permit,
            }),
            None => Progress::Partial,
        }
    }
}

impl Body {
    /// Ensures room for at least one more byte: the buffer grows to twice what it holds (at
    /// least [`FIRST_STEP`], at most the frame's size), after the budget has granted the growth.
    async fn make_room(&mut self, memory: Option<&Arc<Semaphore>>) -> Result<(), ConnError> {
        if self.buf.len() < self.buf.capacity() {
            return Ok(());
        }
        let target = (2 * self.buf.len()).max(FIRST_STEP).min(self.size);
        let grow = target - self.buf.capacity();
        if let Some(memory) = memory {
            // `grow` is at most the frame's size, which was checked against
            // socket.request.max.bytes (an i32), so it fits.
            let more = memory
                .clone()
                .acquire_many_owned(u32::try_from(grow).unwrap_or(u32::MAX))
                .await
                .map_err(|_| ConnError::Closing)?;
            match &mut self.permit {
                Some(p) => p.merge(more),
                None => self.permit = Some(more),
            }
        }
        self.buf.reserve_exact(target - self.buf.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (client, server)
    }

    /// Reads until a frame, the end, or (with `stop_after`) that many bytes of the frame.
    async fn pump(
        r: &mut FrameReader,
        s: &TcpStream,
        mem: &Arc<Semaphore>,
        stop_after: Option<usize>,
    ) -> Result<Progress, ConnError> {
        loop {
            let p = r.read(s, 1 << 20, Some(mem)).await?;
            match p {
                Progress::Partial if stop_after.is_some_and(|n| r.progress().0 >= n) => {
                    return Ok(Progress::Partial)
                }
                Progress::Partial => continue,
                other => return Ok(other),
            }
        }
    }

    #[tokio::test]
    async fn an_announced_size_is_not_charged_until_it_arrives() {
        let (mut client, server) = pair().await;
        let mem = Arc::new(Semaphore::new(1 << 20));
        let mut r = FrameReader::default();
        client
            .write_all(&(1_000_000i32).to_be_bytes())
            .await
            .unwrap();
        client.write_all(&[1, 2]).await.unwrap();
        pump(&mut r, &server, &mem, Some(6)).await.unwrap();
        assert_eq!(r.progress(), (6, Some(1_000_000)));
        assert_eq!(mem.available_permits(), (1 << 20) - FIRST_STEP);
        // 100 KB later the buffer holds at most twice that.
        client.write_all(&vec![7u8; 100_000]).await.unwrap();
        pump(&mut r, &server, &mem, Some(100_006)).await.unwrap();
        let held = (1 << 20) - mem.available_permits();
        assert!(
            (100_002..=2 * 100_002 + FIRST_STEP).contains(&held),
            "{held}"
        );
        // The rest arrives; the frame holds exactly its size, and gives it back when dropped.
        client
            .write_all(&vec![9u8; 1_000_000 - 100_002])
            .await
            .unwrap();
        let Progress::Frame(f) = pump(&mut r, &server, &mem, None).await.unwrap() else {
            panic!("no frame");
        };
        assert_eq!(f.bytes.len(), 1_000_000);
        assert_eq!(&f.bytes[..3], &[1, 2, 7]);
        assert_eq!(f.bytes[999_999], 9);
        assert_eq!(mem.available_permits(), (1 << 20) - 1_000_000);
        drop(f);
        assert_eq!(mem.available_permits(), 1 << 20);
        assert_eq!(r.progress(), (0, None));
        assert!(r.started().is_none());
    }

    #[tokio::test]
    async fn frames_back_to_back_then_a_clean_close() {
        let (mut client, server) = pair().await;
        let mem = Arc::new(Semaphore::new(1 << 20));
        let mut r = FrameReader::default();
        let mut wire = Vec::new();
        for body in [&b"abc"[..], b"", b"hello"] {
            wire.extend_from_slice(&(body.len() as i32).to_be_bytes());
            wire.extend_from_slice(body);
        }
        client.write_all(&wire).await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        loop {
            match pump(&mut r, &server, &mem, None).await.unwrap() {
                Progress::Frame(f) => got.push(f.bytes),
                Progress::Closed => break,
                Progress::Partial => unreachable!(),
            }
        }
        assert_eq!(got, vec![&b"abc"[..], b"", b"hello"]);
    }

    #[tokio::test]
    async fn bad_sizes_and_a_cut_frame_are_errors() {
        for (wire, want) in [
            (vec![0xff, 0xff, 0xff, 0xff], "negative"),
            ((2_000_000i32).to_be_bytes().to_vec(), "exceeds"),
            (vec![0, 0, 0, 9, 1, 2], "end of file"),
        ] {
            let (mut client, server) = pair().await;
            let mem = Arc::new(Semaphore::new(1 << 20));
            let mut r = FrameReader::default();
            client.write_all(&wire).await.unwrap();
            client.shutdown().await.unwrap();
            let err = match pump(&mut r, &server, &mem, None).await {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{want}: no error"),
            };
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
