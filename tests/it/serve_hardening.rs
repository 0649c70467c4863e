//! `synup serve` on a shared machine (SPEC 5): hostile requests are refused
//! cheaply, stalled clients cannot starve others, secrets are generated
//! securely and stored privately, URLs come from configuration.
//!
//! Requests are written by hand on raw sockets: the point is what a client
//! that no library would produce does to the server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Fixture, run, synup};

const TOKEN: &str = "hardening-token-77";

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(f: &Fixture, extra: &[&str]) -> Server {
    let log = std::fs::File::create(f.join("serve.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_synup"))
        .args(["serve", "--addr", "127.0.0.1:0", "--token", TOKEN, "--data"])
        .arg(f.join("data"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();
    Server { child, addr }
}

/// Sends `request` on a new connection; returns the whole response text.
fn raw(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: &str, path: &str) -> String {
    raw(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nSynapse-Access-Token: Token {TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn post(addr: &str, path: &str, host: &str, body: &str) -> String {
    raw(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nSynapse-Access-Token: Token {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn status(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("")
}

#[test]
fn hostile_numbers_are_refused_and_the_server_keeps_answering() {
    let f = Fixture::new();
    let s = start(&f, &["--max-file-size", "1048576"]);
    // A presign for a file of 2^64-1 bytes: refused at once, nothing grows.
    let r = post(
        &s.addr,
        "/data_files/presigned_upload/upload/",
        &s.addr,
        r#"{"files":[{"filename":"a.bin","size":18446744073709551615}]}"#,
    );
    assert_eq!(status(&r), "400", "{r}");
    assert!(r.contains("--max-file-size"), "{r}");
    // A page number whose offset overflows: DRF's 404, no panic.
    for page in ["18446744073709551615", "0", "-1", "x", "99"] {
        let r = get(&s.addr, &format!("/data_units/?page={page}&page_size=1000"));
        assert_eq!(status(&r), "404", "page={page}: {r}");
        assert!(r.contains("Invalid page."), "{r}");
    }
    // Bodies are bounded per route.
    let big = format!(r#"{{"checksums":["{}"]}}"#, "a".repeat(5 << 20));
    let r = post(&s.addr, "/data_files/verify_checksums/", &s.addr, &big);
    assert_eq!(status(&r), "413", "{}", &r[..r.len().min(300)]);
    let many: Vec<String> = (0..10_001).map(|i| format!("\"{i:040x}\"")).collect();
    let r = post(
        &s.addr,
        "/data_files/verify_checksums/",
        &s.addr,
        &format!(r#"{{"checksums":[{}]}}"#, many.join(",")),
    );
    assert_eq!(status(&r), "400", "{r}");
    let r = get(&s.addr, "/data_collections/");
    assert_eq!(status(&r), "200", "{r}");
}

#[test]
fn presigned_urls_come_from_the_public_url_not_the_host_header() {
    let f = Fixture::new();
    let s = start(&f, &["--public-url", "https://synapse.example.org/"]);
    let r = post(
        &s.addr,
        "/data_files/presigned_upload/upload/",
        "evil.example",
        r#"{"files":[{"filename":"a.bin","size":3}]}"#,
    );
    assert_eq!(status(&r), "200", "{r}");
    assert!(
        r.contains("\"presigned_url\":\"https://synapse.example.org/_storage/uploads/"),
        "{r}"
    );
    assert!(!r.contains("evil.example"), "{r}");
}

#[test]
fn stalled_clients_are_dropped_and_cannot_starve_others() {
    let f = Fixture::new();
    let s = start(
        &f,
        &[
            "--max-connections",
            "8",
            "--header-timeout",
            "1",
            "--idle-timeout",
            "1",
        ],
    );
    // Many more half-sent requests than the server serves at once.
    let stalled: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut c = TcpStream::connect(&s.addr).unwrap();
            c.write_all(b"GET /data_collections/ HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            c
        })
        .collect();
    let started = Instant::now();
    let r = get(&s.addr, "/data_collections/");
    assert_eq!(status(&r), "200", "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a client waited {:?}",
        started.elapsed()
    );
    // Each stalled connection was closed by the server.
    for mut c in stalled {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf)
            .expect("closed by the server, not left waiting");
    }
    // A body that stops arriving is abandoned too.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(
        format!("POST /data_files/verify_checksums/ HTTP/1.1\r\nHost: x\r\nSynapse-Access-Token: Token {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"checks").as_bytes(),
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "held {:?}",
        t.elapsed()
    );
}

#[test]
fn an_empty_token_is_refused_and_secrets_are_private() {
    let f = Fixture::new();
    let out = run(synup()
        .args(["serve", "--addr", "127.0.0.1:0", "--token", "", "--data"])
        .arg(f.join("d")));
    assert_eq!(out.code, 1, "{}", out.both());
    assert!(
        out.stderr.contains("access token is empty"),
        "{}",
        out.stderr
    );
    let out = run(synup()
        .args(["serve", "--addr", "127.0.0.1:0", "--token", "  ", "--data"])
        .arg(f.join("d")));
    assert_eq!(out.code, 1, "{}", out.both());

    let s = start(&f, &[]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&f.join("data/signing.key")), 0o600);
    assert_eq!(mode(&f.join("data")), 0o700);
    let r = get(&s.addr, "/data_collections/");
    assert_eq!(status(&r), "200");
    drop(s);
    // The request log names method, path, status and time, never the token.
    let log = std::fs::read_to_string(f.join("serve.log")).unwrap();
    assert!(log.contains("GET /data_collections/ 200 "), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
}

#[test]
fn an_upload_never_confirmed_is_deleted() {
    let f = Fixture::new();
    let s = start(&f, &["--upload-ttl", "2"]);
    let r = post(
        &s.addr,
        "/data_files/presigned_upload/upload/",
        &s.addr,
        r#"{"files":[{"filename":"a.bin","size":3}]}"#,
    );
    let body = &r[r.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    let url = json["files"][0]["presigned_url"].as_str().unwrap();
    let path = url.split_once(&s.addr).unwrap().1;
    let put = raw(
        &s.addr,
        &format!(
            "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        ),
    );
    assert_eq!(status(&put), "200", "{put}");
    let uploads = f.join("data/uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&uploads).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "the abandoned upload stayed");
        std::thread::sleep(Duration::from_millis(200));
    }
}
