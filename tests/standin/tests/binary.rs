//! The `kopano-standin` command: readiness lines, serving, and a clean exit on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

#[test]
fn binary_serves_until_sigterm() {
    let socket = socket_path("binary");
    let pid_file = socket.with_extension("pid");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kopano-standin"))
        .args(["--listen", "127.0.0.1:0", "--unix"])
        .arg(&socket)
        .args(["--user", "alice:Secr3t&<pass>:x", "--pid-file"])
        .arg(&pid_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting kopano-standin failed");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let tcp_line = lines.next().unwrap().unwrap();
    let unix_line = lines.next().unwrap().unwrap();
    assert_eq!(unix_line, format!("listening on file://{}", socket.display()));

    let url = tcp_line.strip_prefix("listening on http://").expect(&tcp_line);
    let addr = url.trim_end_matches("/kopano").parse().unwrap();
    let reply = post_tcp(addr, &logon("alice", "Secr3t&amp;&lt;pass&gt;:x", 1));
    assert_eq!(reply.er(), 0);
    assert!(pid_file.exists());

    // SAFETY: kill has no memory preconditions; the pid is our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(log.contains(r#"authenticate ok: from="127.0.0.1" user="alice" method="User supplied password""#), "{log}");
    assert!(!log.contains("Secr3t"), "password in the log: {log}");
    assert!(!socket.exists());
    assert!(!pid_file.exists());
}

#[test]
fn binary_rejects_unknown_fault() {
    let output = Command::new(env!("CARGO_BIN_EXE_kopano-standin"))
        .args(["--fault", "explode"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown fault \"explode\""));
}

/// Starts the command with `args` and returns it with the TCP address it printed.
fn start(args: &[&str]) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kopano-standin"))
        .args(args)
        .arg("--quiet")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting kopano-standin failed");
    let line = BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let url = line.strip_prefix("listening on http://").expect(&line);
    let addr = url.split('/').next().unwrap().parse().unwrap();
    (child, addr)
}

fn stop(mut child: std::process::Child) {
    // SAFETY: kill has no memory preconditions; the pid is our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn binary_sets_user_features() {
    let (child, addr) = start(&["--user", "bob:plain", "--enable-feature", "bob:imap", "--disable-feature", "bob:mobile"]);
    let mut stream = tcp(addr);
    let session = exchange(&mut stream, "/", &logon("bob", "plain", 1)).session_id();
    let text = exchange(&mut stream, "/", &get_user(session)).text();
    assert!(text.contains("<item>imap</item><item>outlook</item><item>webapp</item>"), "{text}");
    assert!(text.contains("<item>mobile</item><item>pop3</item>"), "{text}");
    stop(child);
}

#[test]
fn binary_shortens_gromox_delay() {
    let (child, addr) = start(&["--mapihttp", "--user", "alice@example.test:pw", "--failure-delay-ms", "50"]);
    let mut stream = tcp(addr);
    let request = "POST /mapi/emsmdb/?MailboxId=alice@example.test HTTP/1.1\r\nHost: x\r\n\
                   Authorization: Basic YWxpY2VAZXhhbXBsZS50ZXN0Ondyb25n\r\nX-RequestType: PING\r\n\
                   X-RequestId: {1}:1\r\nX-ClientInfo: {2}:1\r\nContent-Length: 0\r\n\r\n";
    let start = std::time::Instant::now();
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    assert_eq!(read_reply(&mut stream).unwrap().status, 401);
    assert!(start.elapsed() < std::time::Duration::from_millis(900), "took {:?}", start.elapsed());
    stop(child);
}
