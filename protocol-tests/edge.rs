//! The network edge under clients that misbehave: frames announced and never sent, requests
//! trickled a byte at a time, idle connections, too many connections from one address,
//! connection storms, a client that never reads its responses, and fetches larger than the
//! broker allows. Each test runs the real binary and checks that the broker keeps serving
//! everyone else within its limits.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::protocol::StrBytes;
use support::client::{batch, create_topic, fetch_request, produce, request_frame};
use support::{Conn, Klamm};

fn api_versions() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("klamm-tests"))
        .with_client_software_version(StrBytes::from_static_str("1"))
}

/// Answers ApiVersions (a served connection), or `false` when the broker closed it.
fn served(conn: &mut Conn) -> bool {
    conn.try_call(&api_versions(), 3)
        .is_some_and(|r| r.error_code == 0)
}

/// Waits a little for a line to reach the broker's collected log.
fn logged(k: &Klamm, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if k.log_contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Waits up to `within` for the broker to close `stream`; returns how long it took.
fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 64 * 1024];
    while start.elapsed() < within {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// A connection that announces a frame of `size` bytes, sends `first` of them, then one more
/// every `every` until stopped (or until the broker closes it).
fn trickle(
    addr: std::net::SocketAddr,
    size: i32,
    first: usize,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(&size.to_be_bytes()).unwrap();
    s.write_all(&vec![0u8; first]).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(every);
            if s.write_all(&[0]).is_err() {
                return;
            }
        }
    })
}

/// Six connections announce the largest legal frame (100 MiB) and trickle its bytes. Before,
/// their announced sizes were charged to `queued.max.request.bytes` up front and a seventh
/// client could not even get ApiVersions answered; now only bytes that arrived are charged.
#[test]
fn trickled_frames_do_not_starve_other_clients() {
    let k = Klamm::start(&[]);
    let rss_before = k.rss_kib();
    let stop = Arc::new(AtomicBool::new(false));
    let tricklers: Vec<_> = (0..6)
        .map(|_| {
            trickle(
                k.addr,
                100 * 1024 * 1024,
                2,
                Duration::from_millis(100),
                stop.clone(),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    let start = Instant::now();
    let mut conn = Conn::connect(k.addr);
    conn.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(served(&mut conn), "ApiVersions while six frames trickle");
    create_topic(&mut conn, "starve", 1);
    for i in 0..20 {
        let value = format!("value {i}");
        let (code, _) = produce(&mut conn, "starve", 0, batch(&[value.as_bytes()]));
        assert_eq!(code, 0, "produce {i}");
    }
    let fetched = conn.call(&fetch_request("starve", &[(0, 0)], 1 << 20, 1 << 20), 12);
    let p = &fetched.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 20));
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the seventh client took {took:?}"
    );
    // Nothing was allocated for the 600 MiB announced.
    let grown = k.rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "broker grew by {grown} KiB");
    stop.store(true, Ordering::Relaxed);
    for t in tricklers {
        let _ = t.join();
    }
}

/// A request must arrive within `request.timeout.ms` of its first byte; trickling bytes does
/// not extend it. Other connections are unaffected.
#[test]
fn a_request_that_stops_arriving_is_dropped() {
    let k = Klamm::start(&["request.timeout.ms=1000"]);
    let mut good = Conn::connect(k.addr);
    let mut slow = TcpStream::connect(k.addr).unwrap();
    slow.write_all(&1000i32.to_be_bytes()).unwrap();
    slow.write_all(&[0, 18, 0, 3, 0, 0, 0, 1]).unwrap();
    let mut writer = slow.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let trickler = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if writer.write_all(&[0]).is_err() {
                return;
            }
        }
    });
    let took = closed_within(&mut slow, Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let _ = trickler.join();
    let took = took.expect("the trickling connection was not closed");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    assert!(served(&mut good));
    assert!(logged(&k, "request.timeout.ms"), "the reason is logged");
}

/// `connections.max.idle.ms`: a connection with no traffic is closed, whether it never sent a
/// byte or went quiet after a request; one that keeps talking stays open.
#[test]
fn idle_connections_are_closed() {
    let k = Klamm::start(&["connections.max.idle.ms=1000"]);
    let mut silent = TcpStream::connect(k.addr).unwrap();
    let mut quiet = Conn::connect(k.addr);
    assert!(served(&mut quiet));
    let mut busy = Conn::connect(k.addr);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert!(served(&mut busy), "a busy connection was closed");
        std::thread::sleep(Duration::from_millis(250));
    }
    for (what, stream) in [("silent", &mut silent), ("quiet", &mut quiet.stream)] {
        assert!(
            closed_within(stream, Duration::from_secs(2)).is_some(),
            "{what} connection still open after 3 s idle"
        );
    }
    assert!(served(&mut busy));
}

/// `max.connections.per.ip`: connections over the limit are closed as they are accepted, with
/// the reason logged; a slot freed by a closed connection is reused.
#[test]
fn per_ip_limit_refuses_extra_connections() {
    let k = Klamm::start(&["max.connections.per.ip=2"]);
    let mut a = Conn::connect(k.addr);
    let mut b = Conn::connect(k.addr);
    assert!(served(&mut a) && served(&mut b));
    let mut c = Conn::connect(k.addr);
    assert!(
        !served(&mut c),
        "a third connection from 127.0.0.1 was served"
    );
    assert!(logged(&k, "refusing connection"), "the refusal is logged");
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = Conn::connect(k.addr);
        if served(&mut again) {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was not reused");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served(&mut b));
}

/// `max.connections.per.ip.overrides` (Kafka's `host:count,...`, names resolved) raises or
/// lowers the limit for the addresses it names.
#[test]
fn per_ip_overrides_replace_the_default() {
    let k = Klamm::start(&[
        "max.connections.per.ip=1",
        "max.connections.per.ip.overrides=localhost:3,10.255.255.1:0",
    ]);
    let mut held: Vec<Conn> = (0..3).map(|_| Conn::connect(k.addr)).collect();
    for (i, c) in held.iter_mut().enumerate() {
        assert!(served(c), "connection {i} within the override of 3");
    }
    let mut fourth = Conn::connect(k.addr);
    assert!(!served(&mut fourth), "a fourth connection was served");
    drop(k);

    let k = Klamm::start(&[
        "max.connections.per.ip=100",
        "max.connections.per.ip.overrides=127.0.0.1:1",
    ]);
    let mut first = Conn::connect(k.addr);
    assert!(served(&mut first));
    let mut second = Conn::connect(k.addr);
    assert!(!served(&mut second), "the override of 1 did not apply");
}

/// `max.connection.creation.rate` delays accepting rather than refusing: fifteen connections
/// at 5 per second are all served, and take at least the two seconds the rate implies after
/// the first second's burst.
#[test]
fn connection_creation_rate_delays_accepts() {
    let k = Klamm::start(&["max.connection.creation.rate=5"]);
    // Let the bucket fill from start-up.
    std::thread::sleep(Duration::from_millis(1100));
    let start = Instant::now();
    let mut conns = Vec::new();
    for i in 0..15 {
        let mut c = Conn::connect(k.addr);
        assert!(served(&mut c), "connection {i} refused");
        conns.push(c);
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "15 connections took {took:?}"
    );
}

/// A client that sends fetches and never reads the responses: the broker stops reading its
/// requests once a response's worth is waiting, so its memory stays bounded (before, each
/// connection could queue eight responses plus the one being written), everyone else is
/// served, and with no progress the connection ends at `connections.max.idle.ms`.
#[test]
fn a_client_that_never_reads_holds_bounded_memory() {
    let k = Klamm::start(&["connections.max.idle.ms=4000"]);
    let mut conn = Conn::connect(k.addr);
    create_topic(&mut conn, "unread", 1);
    let value = vec![7u8; 1_000_000];
    for i in 0..8 {
        let (code, _) = produce(&mut conn, "unread", 0, batch(&[&value]));
        assert_eq!(code, 0, "produce {i}");
    }
    // One fetch answers with the whole log: about 8 MB.
    let fetch = fetch_request("unread", &[(0, 0)], 64 << 20, 64 << 20);
    let first = conn.call(&fetch, 12);
    let response_bytes = first.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, |r| r.len());
    assert!(response_bytes > 7_000_000, "{response_bytes}");
    let rss_before = k.rss_kib();
    let fds_before = k.open_fds();

    // 500 fetches, about 4 GB of responses, sent without reading a byte.
    let mut deaf = TcpStream::connect(k.addr).unwrap();
    for correlation in 0..500 {
        deaf.write_all(&request_frame(&fetch, 12, correlation))
            .expect("the requests fit in the socket buffers");
    }
    std::thread::sleep(Duration::from_secs(2));
    let grown = k.rss_kib().saturating_sub(rss_before);
    eprintln!("a deaf client with {response_bytes}-byte responses grew the broker by {grown} KiB");
    assert!(
        grown < 32 * 1024,
        "broker grew by {grown} KiB for a client that never reads"
    );

    // Everyone else is served meanwhile.
    let start = Instant::now();
    let (code, _) = produce(&mut conn, "unread", 0, batch(&[b"still here"]));
    assert_eq!(code, 0);
    assert!(served(&mut conn));
    assert!(start.elapsed() < Duration::from_secs(2));

    // No progress in either direction: closed at connections.max.idle.ms.
    let deadline = Instant::now() + Duration::from_secs(10);
    while k.open_fds() > fds_before {
        assert!(
            Instant::now() < deadline,
            "the deaf connection is still open"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(deaf);
}

/// `fetch.max.bytes` caps every fetch response whatever the client asks for, and the first
/// batch still goes whole when it alone is larger (KIP-74).
#[test]
fn fetch_max_bytes_caps_each_response() {
    let k = Klamm::start(&["fetch.max.bytes=1024"]);
    let mut conn = Conn::connect(k.addr);
    create_topic(&mut conn, "capped", 2);
    let value = vec![1u8; 200];
    for p in 0..2 {
        for _ in 0..10 {
            assert_eq!(produce(&mut conn, "capped", p, batch(&[&value])).0, 0);
        }
    }
    let records = |resp: &kafka_protocol::messages::FetchResponse| -> Vec<usize> {
        resp.responses[0]
            .partitions
            .iter()
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .collect()
    };
    // The client allows 10 MiB; the broker sends at most 1024 bytes across both partitions.
    let resp = conn.call(
        &fetch_request("capped", &[(0, 0), (1, 0)], 10 << 20, 10 << 20),
        12,
    );
    let sizes = records(&resp);
    let total: usize = sizes.iter().sum();
    assert!(sizes[0] > 0, "{sizes:?}");
    assert!(total <= 1024, "{sizes:?}");
    // A client limit below the broker's still applies.
    let resp = conn.call(
        &fetch_request("capped", &[(0, 0), (1, 0)], 600, 10 << 20),
        12,
    );
    assert!(records(&resp).iter().sum::<usize>() <= 600);

    // One batch larger than fetch.max.bytes comes back whole.
    let big = vec![2u8; 5000];
    let (code, offset) = produce(&mut conn, "capped", 1, batch(&[&big]));
    assert_eq!(code, 0);
    let resp = conn.call(
        &fetch_request("capped", &[(1, offset)], 10 << 20, 10 << 20),
        12,
    );
    let mut bytes = resp.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let batches =
        kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).expect("whole batches");
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].records[0].value.as_deref(), Some(&big[..]));
}
