//! What an idle connection costs the broker: 10,000 connections that never send a byte must
//! cost at most 8 KiB of resident memory each (buffers are allocated when a request arrives,
//! not when a client connects). A test of a bound, not of timing: it waits for the broker to
//! have accepted every connection, then reads its VmRSS.
//!
//! Its own binary, so that 10,000 sockets share the process with nothing else.

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::protocol::StrBytes;
use support::{Conn, Klamm};

const CONNECTIONS: usize = 10_000;
const MAX_BYTES_PER_CONNECTION: u64 = 8 * 1024;

/// Raises this process's soft descriptor limit to its hard limit (the broker, started after,
/// inherits it), up to 65,536, and returns the limit. std has no setrlimit, hence libc.
fn raise_fd_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        // An unlimited hard limit is still capped by the kernel's nr_open.
        lim.rlim_cur = lim.rlim_cur.max(lim.rlim_max.min(65536));
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

fn api_versions() -> ApiVersionsRequest {
    // v3 needs a client name and version, or Kafka (and Klamm) answer INVALID_REQUEST.
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("klamm-tests"))
        .with_client_software_version(StrBytes::from_static_str("1"))
}

#[test]
fn idle_connections_cost_at_most_8_kib_each() {
    let limit = raise_fd_limit();
    // Each side needs one descriptor per connection, plus some for everything else.
    let n = CONNECTIONS.min(limit.saturating_sub(256) as usize);
    assert!(
        n >= 1000,
        "RLIMIT_NOFILE is {limit} at most: too low to measure (raise the hard limit, e.g. ulimit -Hn 20000)"
    );
    if n < CONNECTIONS {
        eprintln!();
        eprintln!("*** idle_memory: {n} connections, not {CONNECTIONS}: RLIMIT_NOFILE is {limit} at most ***");
        eprintln!();
    }
    let k = Klamm::start(&[&format!("max.connections={}", CONNECTIONS + 100)]);
    // One served connection first, so one-time allocations (the runtime's, the handlers')
    // are in the baseline.
    let mut control = Conn::connect(k.addr);
    assert_eq!(control.call(&api_versions(), 3).error_code, 0);
    std::thread::sleep(Duration::from_millis(500));
    let fds_before = k.open_fds();
    let rss_before = k.rss_kib();

    let mut idle = Vec::with_capacity(n);
    for i in 0..n {
        match TcpStream::connect(k.addr) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    // Connecting completes in the kernel's backlog; wait until the broker has accepted all.
    let deadline = Instant::now() + Duration::from_secs(120);
    while k.open_fds() < fds_before + n {
        assert!(
            Instant::now() < deadline,
            "the broker accepted {} of {n} connections",
            k.open_fds().saturating_sub(fds_before)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = k.rss_kib();
    let per_connection = (rss_after.saturating_sub(rss_before) * 1024) / n as u64;
    eprintln!(
        "{n} idle connections: VmRSS {rss_before} KiB -> {rss_after} KiB, {per_connection} bytes each"
    );
    assert!(
        per_connection <= MAX_BYTES_PER_CONNECTION,
        "{per_connection} bytes per idle connection (bound {MAX_BYTES_PER_CONNECTION})"
    );
    // And the broker still serves.
    assert_eq!(control.call(&api_versions(), 3).error_code, 0);
    drop(idle);
}
