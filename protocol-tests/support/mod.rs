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
    launch: Launch,
    /// Lines the broker logged, collected in the background.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// How a broker is run beyond its configuration.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Variables added to its environment.
    pub env: Vec<(String, String)>,
    /// Its limit on open descriptors (soft and hard).
    pub nofile: Option<u64>,
}

impl Launch {
    /// Runs the broker with storage faults that the test arms by creating files in `dir`:
    /// `eio` fails every fsync, `enospc` every positioned write (see `faults.c`).
    pub fn with_faults(mut self, dir: &Path) -> Launch {
        self.env
            .push(("LD_PRELOAD".into(), faults_library().display().to_string()));
        self.env
            .push(("KLAMM_TEST_FAULTS".into(), dir.display().to_string()));
        self
    }
}

/// `faults.c` built as a shared library, once per test binary.
fn faults_library() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/support/faults.c");
            let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("klamm-faults-{}.so", std::process::id()));
            let status = Command::new("cc")
                .args(["-shared", "-fPIC", "-O1", "-o"])
                .arg(&out)
                .arg(&src)
                .arg("-ldl")
                .status()
                .expect("run cc (a C compiler is needed for the storage fault tests)");
            assert!(status.success(), "cc failed to build {}", src.display());
            out
        })
        .clone()
}

pub fn klamm_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_klamm"))
}

impl Klamm {
    /// Starts a broker on a free port with a fresh temporary data directory.
    pub fn start(extra: &[&str]) -> Klamm {
        Klamm::start_with_env(extra, &[])
    }

    /// Like `start`, with variables added to the broker's environment.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Klamm {
        Klamm::start_with(
            extra,
            Launch {
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                nofile: None,
            },
        )
    }

    /// Like `start`, run as `launch` says.
    pub fn start_with(extra: &[&str], launch: Launch) -> Klamm {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut k = Klamm::launch(&dir, 0, extra, launch);
        k._tmp = Some(tmp);
        k
    }

    /// Starts a broker on `dir`; port 0 picks a free one.
    pub fn start_in(dir: &Path, port: u16, extra: &[&str]) -> Klamm {
        Klamm::launch(dir, port, extra, Launch::default())
    }

    fn launch(dir: &Path, port: u16, extra: &[&str], launch: Launch) -> Klamm {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (child, addr) = spawn(dir, port, &extra, &launch, log.clone());
        Klamm {
            child: Some(child),
            addr,
            data_dir: dir.to_path_buf(),
            _tmp: None,
            extra,
            launch,
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
            &self.launch,
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
    launch: &Launch,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> (Child, SocketAddr) {
    let mut cmd = match launch.nofile {
        // prlimit sets the limit and execs the broker: the pid stays the broker's.
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}"))
                .arg("--")
                .arg(klamm_bin());
            c
        }
        None => Command::new(klamm_bin()),
    };
    cmd.arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--override")
        .arg(format!("log.dirs={}", dir.display()));
    for e in extra {
        cmd.arg("--override").arg(e);
    }
    cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
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

/// Decodes a response frame (header and body) for a request of type `R`.
fn decode_response<R: Request>(mut frame: Bytes, correlation: i32, version: i16) -> R::Response {
    let api = ApiKey::try_from(R::KEY).unwrap();
    let header = ResponseHeader::decode(&mut frame, api.response_header_version(version)).unwrap();
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
        let (correlation, body) = self.request_bytes(req, version);
        self.send_raw(&body);
        correlation
    }

    /// As `call`, but `None` when the broker closes the connection instead of answering.
    pub fn try_call<R: Request>(&mut self, req: &R, version: i16) -> Option<R::Response> {
        let (correlation, body) = self.request_bytes(req, version);
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        self.stream.write_all(&frame).ok()?;
        let frame = self.read_frame()?;
        Some(decode_response::<R>(frame, correlation, version))
    }

    /// A request frame's body (header and request) with the next correlation id.
    fn request_bytes<R: Request>(&mut self, req: &R, version: i16) -> (i32, BytesMut) {
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
        req.encode(&mut body, version)
            .unwrap_or_else(|e| panic!("encode API {} v{version} request: {e}", R::KEY));
        (correlation, body)
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
        let frame = self.read_frame().expect("response frame");
        decode_response::<R>(frame, correlation, version)
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

pub mod client;
pub mod diff;
pub mod fixtures;

/// Where an Apache Kafka distribution is (`KAFKA_HOME`, as laid out by `compat/kafka/dist.sh`),
/// for tests that compare Klamm with the real thing. Unset: with `CI=true` the test fails (a
/// required suite must not be skipped silently); otherwise it prints a loud SKIPPED line and the
/// caller returns.
pub fn kafka_home_or_skip(test: &str) -> Option<PathBuf> {
    match std::env::var_os("KAFKA_HOME").filter(|h| !h.is_empty()) {
        Some(home) => {
            let home = PathBuf::from(home);
            assert!(
                home.join("bin/kafka-server-start.sh").is_file(),
                "KAFKA_HOME={} has no bin/kafka-server-start.sh (run compat/kafka/dist.sh)",
                home.display()
            );
            Some(home)
        }
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: KAFKA_HOME is not set, and CI=true does not allow skipping")
        }
        None => {
            eprintln!();
            eprintln!(
                "*** SKIPPED {test}: KAFKA_HOME is not set (compat/kafka/dist.sh prints one) ***"
            );
            eprintln!();
            None
        }
    }
}

/// A port nobody listens on right now (the OS picks it; a race with other processes is possible
/// but unlikely).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// One Apache Kafka node in KRaft mode (broker and controller in one process) on free ports with
/// a temporary data directory. Dropping it kills the JVM.
pub struct ApacheKafka {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl ApacheKafka {
    /// Formats a fresh log directory and starts `bin/kafka-server-start.sh` of `home`, with the
    /// distribution's `config/server.properties` plus `overrides` (`key=value`; later wins).
    /// Returns once the broker logs that it started.
    pub fn start(home: &Path, overrides: &[&str]) -> ApacheKafka {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, cport) = (free_port(), free_port());
        let mine = [
            format!("listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}"),
            format!("advertised.listeners=PLAINTEXT://127.0.0.1:{port}"),
            format!("controller.quorum.voters=1@127.0.0.1:{cport}"),
            format!("log.dirs={}", dir.path().join("data").display()),
        ];
        let mut props: Vec<String> = Vec::new();
        let stock = std::fs::read_to_string(home.join("config/server.properties"))
            .expect("KAFKA_HOME/config/server.properties");
        let keys: Vec<&str> = mine
            .iter()
            .map(String::as_str)
            .chain(overrides.iter().copied())
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
            .collect();
        for line in stock.lines() {
            let key = line.split_once('=').map(|(k, _)| k.trim());
            if !key.is_some_and(|k| keys.contains(&k)) {
                props.push(line.to_string());
            }
        }
        props.extend(mine);
        props.extend(overrides.iter().map(|s| s.to_string()));
        let config = dir.path().join("server.properties");
        std::fs::write(&config, props.join("\n") + "\n").expect("write server.properties");

        let logs = dir.path().join("logs");
        let run = |script: &str| {
            let mut cmd = Command::new(home.join("bin").join(script));
            cmd.env("LOG_DIR", &logs)
                .env("KAFKA_HEAP_OPTS", "-Xmx512M -Xms256M");
            cmd
        };
        let format = run("kafka-storage.sh")
            .args([
                "format",
                "--ignore-formatted",
                "-t",
                &kraft_cluster_id(),
                "-c",
            ])
            .arg(&config)
            .output()
            .expect("run kafka-storage.sh");
        assert!(
            format.status.success(),
            "kafka-storage.sh format failed:\n{}{}",
            String::from_utf8_lossy(&format.stdout),
            String::from_utf8_lossy(&format.stderr)
        );
        let out_path = dir.path().join("out.log");
        let out = std::fs::File::create(&out_path).expect("create out.log");
        let err = out.try_clone().expect("clone out.log");
        let child = run("kafka-server-start.sh")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn kafka-server-start.sh");
        let mut kafka = ApacheKafka {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let log = std::fs::read_to_string(&out_path).unwrap_or_default();
            if log.contains("Kafka Server started") {
                return kafka;
            }
            let exited = kafka
                .child
                .as_mut()
                .is_some_and(|c| !matches!(c.try_wait(), Ok(None)));
            if exited || std::time::Instant::now() > deadline {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "Apache Kafka did not start ({}); last lines of its output:\n{}",
                    if exited { "it exited" } else { "timed out" },
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The broker's console output (its log).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("out.log")
    }

    /// SIGTERM, then SIGKILL when the JVM has not gone after a few seconds.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill(c.id(), "TERM");
            for _ in 0..50 {
                if !matches!(c.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ApacheKafka {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The log goes with the temporary directory: show its end while it is there.
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- last lines of Apache Kafka's log ---");
            for line in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{line}");
            }
        }
        self.stop();
    }
}

/// A KRaft cluster id as `kafka-storage.sh random-uuid` prints it: 16 random bytes in URL-safe
/// base64 without padding (made here to save starting a JVM for it).
fn kraft_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
