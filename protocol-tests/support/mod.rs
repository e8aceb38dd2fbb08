//! Test support: run the real `klamm` binary on a free port with a temporary data directory,
//! and talk the Kafka protocol to it over a plain socket.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

/// A `klamm` process. Dropping it kills the process; the data directory lives as long as the
/// value (or its `TempDir`) does.
pub struct Klamm {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    extra: Vec<String>,
    /// Lines the broker logged, collected in the background.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn klamm_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_klamm"))
}

impl Klamm {
    /// Starts a broker on a free port with a fresh temporary data directory.
    pub fn start(extra: &[&str]) -> Klamm {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut k = Klamm::start_in(&dir, 0, extra);
        k._tmp = Some(tmp);
        k
    }

    /// Starts a broker on `dir`; port 0 picks a free one.
    pub fn start_in(dir: &Path, port: u16, extra: &[&str]) -> Klamm {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (child, addr) = spawn(dir, port, &extra, log.clone());
        Klamm {
            child: Some(child),
            addr,
            data_dir: dir.to_path_buf(),
            _tmp: None,
            extra,
            log,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill(c.id(), "TERM");
            let _ = c.wait();
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same data directory and port.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    pub fn start_again(&mut self) {
        let (child, addr) = spawn(
            &self.data_dir,
            self.addr.port(),
            &self.extra,
            self.log.clone(),
        );
        self.child = Some(child);
        self.addr = addr;
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log
            .lock()
            .map(|l| l.iter().any(|line| line.contains(needle)))
            .unwrap_or(false)
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Klamm {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

fn spawn(
    dir: &Path,
    port: u16,
    extra: &[String],
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> (Child, SocketAddr) {
    let mut cmd = Command::new(klamm_bin());
    cmd.arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--override")
        .arg(format!("log.dirs={}", dir.display()));
    for e in extra {
        cmd.arg("--override").arg(e);
    }
    cmd.env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // A restarted broker may briefly find its port in TIME_WAIT use; retry a few times.
    for attempt in 0..20 {
        let mut child = cmd.spawn().expect("spawn klamm");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("ready to accept connections") {
                    if let Some(addr) = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("address="))
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                    {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                }
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => return (child, addr),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                if attempt == 19 {
                    let lines = log.lock().map(|l| l.join("\n")).unwrap_or_default();
                    panic!("klamm did not become ready; log:\n{lines}");
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
    unreachable!()
}

/// A minimal blocking Kafka protocol client for tests.
pub struct Conn {
    pub stream: TcpStream,
    next_correlation: i32,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn {
            stream,
            next_correlation: 1,
        }
    }

    /// Sends `req` at `version` and returns the decoded response.
    pub fn call<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        let correlation = self.send(req, version);
        self.receive::<R>(correlation, version)
    }

    pub fn send<R: Request>(&mut self, req: &R, version: i16) -> i32 {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("klamm-tests")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        self.send_raw(&body);
        correlation
    }

    pub fn send_raw(&mut self, body: &[u8]) {
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(body);
        self.stream.write_all(&frame).expect("write");
    }

    /// Reads one response frame (None on EOF).
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut buf).ok()?;
        Some(Bytes::from(buf))
    }

    pub fn receive<R: Request>(&mut self, correlation: i32, version: i16) -> R::Response {
        let mut frame = self.read_frame().expect("response frame");
        let api = ApiKey::try_from(R::KEY).unwrap();
        let header =
            ResponseHeader::decode(&mut frame, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation, "responses out of order");
        let resp = R::Response::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("decode {api:?} v{version}: {e}"));
        assert_eq!(
            frame.remaining(),
            0,
            "{api:?} v{version}: trailing bytes in response"
        );
        resp
    }

    /// True when the broker has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}
