//! The pam_mapi-check binary against the stand-in server over TCP, a Unix
//! socket and TLS with a test CA: step lines, exit statuses, and that the
//! password never appears in its output.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::scratch_dir;
use kopano_standin::{Config, Fault, Server};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

const PASSWORD: &str = "Check-Pa55word-7f3a";

/// The exit statuses that `pam_mapi-check --help` documents.
const EXIT_TABLE: &[(u8, &str)] = &[
    (0, "every step passed"),
    (2, "usage"),
    (3, "configuration"),
    (4, "DNS"),
    (5, "connect"),
    (6, "TLS"),
    (7, "server answer"),
    (8, "authentication: PAM_AUTH_ERR"),
    (9, "authentication: PAM_PERM_DENIED"),
    (10, "authentication: PAM_AUTHINFO_UNAVAIL or PAM_IGNORE"),
    (11, "authentication: any other PAM result"),
];

/// A scratch directory with an empty, root-owned configuration file, so that no
/// test reads /etc/security/pam_mapi.conf or the shared state file.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = scratch_dir("check");
        let scratch = Scratch { dir };
        scratch.write_config("");
        scratch
    }

    fn config(&self) -> PathBuf {
        self.dir.join("pam_mapi.conf")
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
        std::fs::set_permissions(self.config(), std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// `config=` and `state_file=` arguments that point into this directory.
    fn args(&self) -> Vec<String> {
        vec![
            format!("config={}", self.config().display()),
            format!("state_file={}", self.dir.join("servers.state").display()),
        ]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The result of one run of the tool.
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn has_line(&self, fragment: &str) -> bool {
        self.stdout.lines().any(|line| line.contains(fragment))
    }

    fn describe(&self) -> String {
        format!("exit status {}\n--- stdout\n{}--- stderr\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Runs pam_mapi-check with `args`, writing `stdin` (if any) to its standard input.
fn check(args: &[String], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pam_mapi-check"))
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let output: Output = child.wait_with_output().unwrap();
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn args_with(scratch: &Scratch, extra: &[String]) -> Vec<String> {
    let mut args = scratch.args();
    args.extend_from_slice(extra);
    args
}

fn soap_server() -> Server {
    Server::start(Config::soap().user("alice", PASSWORD)).unwrap()
}

/// Returns a loopback port that nothing listens on.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A test CA and a certificate for localhost and 127.0.0.1 (or other names).
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Pki { ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn leaf(&self, names: &[&str], expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the CA certificate as a root-owned cafile, mode 0644.
    fn write_cafile(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.ca.pem()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }
}

fn tls_server(pki: &Pki, names: &[&str], expired: bool) -> Server {
    let (cert, key) = pki.leaf(names, expired);
    Server::start(Config::soap().user("alice", PASSWORD).tls(cert.as_bytes(), key.as_bytes())).unwrap()
}

#[test]
fn good_server_passes_every_step() {
    let server = soap_server();
    let scratch = Scratch::new();
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url())]), None);
    let port = server.tcp_addr().unwrap().port();
    assert_eq!(run.status, 0, "{}", run.describe());
    assert!(run.has_line(&format!("connect 127.0.0.1:{port}: ok")), "{}", run.describe());
    assert!(run.has_line("server: ok, HTTP 200"), "{}", run.describe());
    assert!(run.has_line("summary: every step passed"), "{}", run.describe());
}

#[test]
fn server_version_is_shown() {
    let server = soap_server();
    let scratch = Scratch::new();
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url())]), None);
    assert!(run.has_line("version: 0,11,0,2 (Kopano 11.0.2)"), "{}", run.describe());
}

#[test]
fn version_probe_sends_impossible_user_without_uid_auth() {
    let server = soap_server();
    let scratch = Scratch::new();
    check(&args_with(&scratch, &[format!("socket={}", server.url())]), None);
    let logons = server.logons();
    assert_eq!(logons.len(), 1);
    assert!(logons[0].username.contains('\u{fffd}'), "probe user {:?}", logons[0].username);
    assert_eq!(logons[0].flags, 0x3, "NO_UID_AUTH | NO_REGISTER_SESSION");
    assert_eq!(server.registered_sessions(), 0);
}

#[test]
fn settings_show_their_origin() {
    let server = soap_server();
    let scratch = Scratch::new();
    scratch.write_config("timeout = 7\n");
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url())]), None);
    assert!(run.has_line(&format!("timeout = 7 s [{}]", scratch.config().display())), "{}", run.describe());
    assert!(run.has_line(&format!("socket = {} [argument]", server.url())), "{}", run.describe());
    assert!(run.has_line("connect_timeout = 3 s [default]"), "{}", run.describe());
}

#[test]
fn dead_server_exits_with_connect_status() {
    let scratch = Scratch::new();
    let port = dead_port();
    let run = check(&args_with(&scratch, &[format!("socket=http://127.0.0.1:{port}/kopano")]), None);
    assert_eq!(run.status, 5, "{}", run.describe());
    assert!(run.has_line(&format!("connect 127.0.0.1:{port}: FAILED")), "{}", run.describe());
}

#[test]
fn unix_socket_server_passes() {
    let scratch = Scratch::new();
    let path = scratch.dir.join("server.sock");
    let server = Server::start(Config::soap().tcp(None).unix(&path).user("alice", PASSWORD)).unwrap();
    let run = check(&args_with(&scratch, &[format!("socket={}", server.unix_url().unwrap())]), None);
    assert_eq!(run.status, 0, "{}", run.describe());
    assert!(run.has_line(&format!("connect {}: ok", path.display())), "{}", run.describe());
    assert!(run.has_line("version: 0,11,0,2"), "{}", run.describe());
}

#[test]
fn missing_unix_socket_exits_with_connect_status() {
    let scratch = Scratch::new();
    let path = scratch.dir.join("absent.sock");
    let run = check(&args_with(&scratch, &[format!("socket=file://{}", path.display())]), None);
    assert_eq!(run.status, 5, "{}", run.describe());
    assert!(run.has_line(&format!("connect {}: FAILED", path.display())), "{}", run.describe());
}

#[test]
fn stalled_server_exits_with_server_status_within_timeout() {
    let server = soap_server();
    server.set_fault(Fault::Stall);
    let scratch = Scratch::new();
    let started = Instant::now();
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url()), "timeout=1".into()]), None);
    let elapsed = started.elapsed();
    assert_eq!(run.status, 7, "{}", run.describe());
    assert!(run.has_line("server: FAILED, no reply: timed out"), "{}", run.describe());
    assert!(elapsed < Duration::from_secs(3), "timeout=1 took {elapsed:?}");
}

#[test]
fn garbage_reply_exits_with_server_status() {
    let server = soap_server();
    server.set_fault(Fault::Garbage);
    let scratch = Scratch::new();
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url()), "timeout=2".into()]), None);
    assert_eq!(run.status, 7, "{}", run.describe());
    assert!(run.has_line("server: FAILED"), "{}", run.describe());
}

#[test]
fn right_password_prints_success() {
    let server = soap_server();
    let scratch = Scratch::new();
    let args = args_with(&scratch, &[format!("socket={}", server.url()), "--user".into(), "alice".into()]);
    let run = check(&args, Some(&format!("{PASSWORD}\n")));
    assert_eq!(run.status, 0, "{}", run.describe());
    assert!(run.has_line("result: PAM_SUCCESS"), "{}", run.describe());
}

#[test]
fn wrong_password_prints_auth_err() {
    let server = soap_server();
    let scratch = Scratch::new();
    let args = args_with(&scratch, &[format!("socket={}", server.url()), "--user".into(), "alice".into()]);
    let run = check(&args, Some("Wrong-Pa55word-e91c\n"));
    assert_eq!(run.status, 8, "{}", run.describe());
    assert!(run.has_line("result: PAM_AUTH_ERR"), "{}", run.describe());
    assert!(run.stderr.contains("authentication failure"), "{}", run.describe());
}

#[test]
fn dead_server_with_user_prints_authinfo_unavail() {
    let scratch = Scratch::new();
    let port = dead_port();
    let args = args_with(&scratch, &[format!("socket=http://127.0.0.1:{port}/kopano"), "--user".into(), "alice".into()]);
    let run = check(&args, Some(&format!("{PASSWORD}\n")));
    assert_eq!(run.status, 5, "the connect step fails first: {}", run.describe());
    assert!(run.has_line("result: PAM_AUTHINFO_UNAVAIL"), "{}", run.describe());
}

#[test]
fn password_never_appears_in_output() {
    let server = soap_server();
    let scratch = Scratch::new();
    let wrong = "Wrong-Pa55word-e91c";
    for (password, flags) in [(PASSWORD, vec![]), (wrong, vec![]), (PASSWORD, vec!["debug".to_string()]), (wrong, vec!["debug".to_string()])] {
        let mut extra = vec![format!("socket={}", server.url()), "--user".into(), "alice".into()];
        extra.extend(flags.clone());
        let run = check(&args_with(&scratch, &extra), Some(&format!("{password}\n")));
        assert!(!run.stdout.contains(password), "password in stdout with {flags:?}: {}", run.describe());
        assert!(!run.stderr.contains(password), "password in stderr with {flags:?}: {}", run.describe());
    }
}

#[test]
fn bad_module_argument_exits_with_configuration_status() {
    let scratch = Scratch::new();
    let run = check(&args_with(&scratch, &["sockett=http://127.0.0.1:1/".into()]), None);
    assert_eq!(run.status, 3, "{}", run.describe());
    assert!(run.has_line("settings: FAILED"), "{}", run.describe());
    assert!(run.stdout.contains("sockett"), "{}", run.describe());
}

#[test]
fn unknown_option_exits_with_usage_status() {
    let run = check(&["--frobnicate".to_string()], None);
    assert_eq!(run.status, 2, "{}", run.describe());
    assert!(run.stderr.contains("--frobnicate"), "{}", run.describe());
}

#[test]
fn user_option_without_name_exits_with_usage_status() {
    let run = check(&["--user".to_string()], None);
    assert_eq!(run.status, 2, "{}", run.describe());
}

#[test]
fn missing_named_config_exits_with_configuration_status() {
    let scratch = Scratch::new();
    let run = check(&[format!("config={}", scratch.dir.join("absent.conf").display())], None);
    assert_eq!(run.status, 3, "{}", run.describe());
}

#[test]
fn config_writable_by_others_is_rejected() {
    let server = soap_server();
    let scratch = Scratch::new();
    std::fs::set_permissions(scratch.config(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url())]), None);
    assert_eq!(run.status, 3, "{}", run.describe());
    assert!(run.has_line("writable by group or others (mode 0666)"), "{}", run.describe());
}

#[test]
fn config_owned_by_other_user_is_rejected() {
    let server = soap_server();
    let scratch = Scratch::new();
    std::os::unix::fs::chown(scratch.config(), Some(65534), None).expect("chown needs root; run the tests as root");
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url())]), None);
    assert_eq!(run.status, 3, "{}", run.describe());
    assert!(run.has_line("owned by uid 65534, not root"), "{}", run.describe());
}

#[test]
fn cafile_writable_by_others_is_rejected() {
    let pki = Pki::new("pam_mapi check CA");
    let server = tls_server(&pki, &["localhost", "127.0.0.1"], false);
    let scratch = Scratch::new();
    let cafile = pki.write_cafile(&scratch.dir);
    std::fs::set_permissions(&cafile, std::fs::Permissions::from_mode(0o646)).unwrap();
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url()), format!("cafile={}", cafile.display())]), None);
    assert_eq!(run.status, 3, "{}", run.describe());
    assert!(run.has_line(&format!("cafile {}: FAILED", cafile.display())), "{}", run.describe());
}

#[test]
fn tls_details_are_shown() {
    let pki = Pki::new("pam_mapi check CA");
    let server = tls_server(&pki, &["localhost", "127.0.0.1"], false);
    let scratch = Scratch::new();
    let cafile = pki.write_cafile(&scratch.dir);
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url()), format!("cafile={}", cafile.display())]), None);
    assert_eq!(run.status, 0, "{}", run.describe());
    assert!(run.has_line("tls: ok, TLS 1.3"), "{}", run.describe());
    assert!(run.has_line("certificate subject: CN=localhost"), "{}", run.describe());
    assert!(run.has_line("certificate issuer: CN=pam_mapi check CA"), "{}", run.describe());
    assert!(run.has_line("certificate names: DNS:localhost, IP:127.0.0.1"), "{}", run.describe());
    assert!(run.has_line("certificate validity:"), "{}", run.describe());
    assert!(run.has_line("version: 0,11,0,2"), "{}", run.describe());
}

#[test]
fn tls_with_right_password_prints_success() {
    let pki = Pki::new("pam_mapi check CA");
    let server = tls_server(&pki, &["localhost", "127.0.0.1"], false);
    let scratch = Scratch::new();
    let cafile = pki.write_cafile(&scratch.dir);
    let extra = [format!("socket={}", server.url()), format!("cafile={}", cafile.display()), "--user".into(), "alice".into()];
    let run = check(&args_with(&scratch, &extra), Some(&format!("{PASSWORD}\n")));
    assert_eq!(run.status, 0, "{}", run.describe());
    assert!(run.has_line("result: PAM_SUCCESS"), "{}", run.describe());
}

#[test]
fn tls_unknown_ca_exits_with_tls_status() {
    let trusted = Pki::new("pam_mapi trusted CA");
    let other = Pki::new("pam_mapi other CA");
    let server = tls_server(&other, &["localhost", "127.0.0.1"], false);
    let scratch = Scratch::new();
    let cafile = trusted.write_cafile(&scratch.dir);
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url()), format!("cafile={}", cafile.display())]), None);
    assert_eq!(run.status, 6, "{}", run.describe());
    assert!(run.has_line("tls: FAILED"), "{}", run.describe());
    assert!(run.has_line("set cafile= to the CA that issued"), "{}", run.describe());
    assert!(run.has_line("certificate issuer: CN=pam_mapi other CA"), "{}", run.describe());
}

#[test]
fn tls_expired_certificate_exits_with_tls_status() {
    let pki = Pki::new("pam_mapi check CA");
    let server = tls_server(&pki, &["localhost", "127.0.0.1"], true);
    let scratch = Scratch::new();
    let cafile = pki.write_cafile(&scratch.dir);
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url()), format!("cafile={}", cafile.display())]), None);
    assert_eq!(run.status, 6, "{}", run.describe());
    assert!(run.has_line("has expired"), "{}", run.describe());
}

#[test]
fn tls_wrong_host_name_exits_with_tls_status() {
    let pki = Pki::new("pam_mapi check CA");
    let server = tls_server(&pki, &["wrong.example.test"], false);
    let scratch = Scratch::new();
    let cafile = pki.write_cafile(&scratch.dir);
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url()), format!("cafile={}", cafile.display())]), None);
    assert_eq!(run.status, 6, "{}", run.describe());
    assert!(run.has_line("does not name 127.0.0.1"), "{}", run.describe());
    assert!(run.has_line("certificate names: DNS:wrong.example.test"), "{}", run.describe());
}

#[test]
fn mapihttp_ping_shows_status_and_headers() {
    let server = Server::start(Config::mapihttp().user("alice@example.test", PASSWORD)).unwrap();
    let scratch = Scratch::new();
    let extra = [format!("socket={}", server.url()), "protocol=mapihttp".into()];
    let run = check(&args_with(&scratch, &extra), None);
    assert_eq!(run.status, 0, "{}", run.describe());
    assert!(run.has_line("server: ok, HTTP 401"), "{}", run.describe());
    assert!(run.stdout.to_ascii_lowercase().contains("www-authenticate: basic realm"), "{}", run.describe());
    assert_eq!(server.request_count("PING"), 1);
}

#[test]
fn help_documents_exit_statuses() {
    let run = check(&["--help".to_string()], None);
    assert_eq!(run.status, 0, "{}", run.describe());
    for (status, meaning) in EXIT_TABLE {
        let documented = run.stdout.lines().any(|line| {
            let line = line.trim_start();
            line.starts_with(&format!("{status} ")) && line.contains(meaning)
        });
        assert!(documented, "--help does not document exit status {status} ({meaning}):\n{}", run.stdout);
    }
}

#[test]
fn service_option_reaches_server() {
    let server = soap_server();
    let scratch = Scratch::new();
    let extra = [format!("socket={}", server.url()), "--user".into(), "alice".into(), "--service".into(), "smtp".into()];
    let run = check(&args_with(&scratch, &extra), Some(&format!("{PASSWORD}\n")));
    assert_eq!(run.status, 0, "{}", run.describe());
    let logon = server.logons().into_iter().find(|l| l.username == "alice").expect("no logon for alice");
    let misc = logon.client_app_misc.unwrap_or_default();
    assert!(misc.contains("service=smtp"), "szClientAppMisc {misc:?}");
}

#[test]
fn host_name_is_resolved_and_listed() {
    let server = soap_server();
    let scratch = Scratch::new();
    let port = server.tcp_addr().unwrap().port();
    let run = check(&args_with(&scratch, &[format!("socket=http://localhost:{port}/kopano")]), None);
    assert_eq!(run.status, 0, "{}", run.describe());
    assert!(run.has_line("dns localhost: ok, "), "{}", run.describe());
    assert!(run.has_line(&format!("connect 127.0.0.1:{port}: ok")), "{}", run.describe());
}

#[test]
fn unresolvable_host_exits_with_dns_status() {
    // A private mount namespace gives the tool a resolv.conf whose only name
    // server is the loopback address, where nothing listens, so the lookup
    // fails at once and sends nothing off the machine.
    let scratch = Scratch::new();
    let resolv = scratch.dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n").unwrap();
    let mut args = vec![
        "-m".to_string(),
        "sh".into(),
        "-c".into(),
        "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"".into(),
        resolv.display().to_string(),
        env!("CARGO_BIN_EXE_pam_mapi-check").into(),
    ];
    args.extend(args_with(&scratch, &["socket=http://kopano.pam-mapi-test.invalid:236/kopano".into()]));
    let output = Command::new("unshare").args(&args).stdin(Stdio::null()).output().expect("unshare from util-linux is needed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("dns kopano.pam-mapi-test.invalid: FAILED"), "stdout:\n{stdout}");
}

#[test]
fn failover_success_still_reports_dead_server() {
    let server = soap_server();
    let scratch = Scratch::new();
    let port = dead_port();
    let extra = [
        format!("socket=http://127.0.0.1:{port}/kopano"),
        format!("socket={}", server.url()),
        "--user".into(),
        "alice".into(),
    ];
    let run = check(&args_with(&scratch, &extra), Some(&format!("{PASSWORD}\n")));
    assert_eq!(run.status, 5, "{}", run.describe());
    assert!(run.has_line("result: PAM_SUCCESS"), "{}", run.describe());
    assert!(run.has_line("server 2 of 2"), "{}", run.describe());
}

#[test]
fn redirect_exits_with_server_status() {
    let server = soap_server();
    server.set_fault(Fault::Redirect(302, "http://192.0.2.9/kopano".into()));
    let scratch = Scratch::new();
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url())]), None);
    assert_eq!(run.status, 7, "{}", run.describe());
    assert!(run.has_line("HTTP 302 redirect to http://192.0.2.9/kopano"), "{}", run.describe());
}

#[test]
fn reply_without_version_passes() {
    let canned = common::Canned::start(vec![common::soap_reply(
        "<ns:logonResponse><er>2147483657</er><ulSessionId>0</ulSessionId><ulCapabilities>0</ulCapabilities></ns:logonResponse>",
    )]);
    let scratch = Scratch::new();
    let run = check(&args_with(&scratch, &[format!("socket={}", canned.url())]), None);
    assert_eq!(run.status, 0, "{}", run.describe());
    assert!(run.has_line("version: not sent"), "{}", run.describe());
}

#[test]
fn probe_accepted_exits_with_server_status() {
    let canned = common::Canned::start(vec![common::soap_reply(
        "<ns:logonResponse><er>0</er><ulSessionId>0</ulSessionId><lpszVersion>0,11,0,2</lpszVersion><ulCapabilities>39592</ulCapabilities></ns:logonResponse>",
    )]);
    let scratch = Scratch::new();
    let run = check(&args_with(&scratch, &[format!("socket={}", canned.url())]), None);
    assert_eq!(run.status, 7, "{}", run.describe());
    assert!(run.has_line("does not check passwords"), "{}", run.describe());
}

#[test]
fn client_rejection_exits_with_server_status() {
    let canned = common::Canned::start(vec![common::soap_reply(
        "<ns:logonResponse><er>2147483681</er><ulSessionId>0</ulSessionId><lpszVersion>0,11,0,2</lpszVersion><ulCapabilities>0</ulCapabilities></ns:logonResponse>",
    )]);
    let scratch = Scratch::new();
    let run = check(&args_with(&scratch, &[format!("socket={}", canned.url())]), None);
    assert_eq!(run.status, 7, "{}", run.describe());
    assert!(run.has_line("rejects this client"), "{}", run.describe());
}

#[test]
fn tls_handshake_stall_exits_with_tls_status_within_timeout() {
    let pki = Pki::new("pam_mapi check CA");
    let server = tls_server(&pki, &["localhost", "127.0.0.1"], false);
    server.set_fault(Fault::TlsHandshakeStall);
    let scratch = Scratch::new();
    let cafile = pki.write_cafile(&scratch.dir);
    let started = Instant::now();
    let extra = [format!("socket={}", server.url()), format!("cafile={}", cafile.display()), "timeout=1".into()];
    let run = check(&args_with(&scratch, &extra), None);
    let elapsed = started.elapsed();
    assert_eq!(run.status, 6, "{}", run.describe());
    assert!(run.has_line("tls: FAILED, timed out"), "{}", run.describe());
    assert!(elapsed < Duration::from_secs(3), "timeout=1 took {elapsed:?}");
}

#[test]
fn plain_http_server_at_https_url_exits_with_tls_status() {
    let server = soap_server();
    let scratch = Scratch::new();
    let port = server.tcp_addr().unwrap().port();
    let run = check(&args_with(&scratch, &[format!("socket=https://127.0.0.1:{port}/kopano"), "timeout=2".into()]), None);
    assert_eq!(run.status, 6, "{}", run.describe());
    assert!(run.has_line("tls: FAILED"), "{}", run.describe());
}

#[test]
fn mapihttp_right_password_prints_success() {
    let server = Server::start(Config::mapihttp().user("alice@example.test", PASSWORD)).unwrap();
    let scratch = Scratch::new();
    let extra = [
        format!("socket={}", server.url()),
        "protocol=mapihttp".into(),
        "default_domain=example.test".into(),
        "--user".into(),
        "alice".into(),
    ];
    let run = check(&args_with(&scratch, &extra), Some(&format!("{PASSWORD}\n")));
    assert_eq!(run.status, 0, "{}", run.describe());
    assert!(run.has_line("sent to the server as \"alice@example.test\""), "{}", run.describe());
    assert!(run.has_line("result: PAM_SUCCESS"), "{}", run.describe());
}

#[test]
fn settings_only_contacts_no_server() {
    let scratch = Scratch::new();
    scratch.write_config(&format!("socket = http://127.0.0.1:{}/kopano\ntimeout = 5\n", dead_port()));
    let run = check(&args_with(&scratch, &["--settings-only".into()]), None);
    assert_eq!(run.status, 0, "{}", run.describe());
    assert!(run.has_line("settings: ok"), "{}", run.describe());
    assert!(!run.stdout.contains("server 1 of 1"), "{}", run.describe());
}

#[test]
fn settings_only_rejects_bad_file() {
    let scratch = Scratch::new();
    scratch.write_config("timeout = 0\n");
    let run = check(&args_with(&scratch, &["--settings-only".into()]), None);
    assert_eq!(run.status, 3, "{}", run.describe());
    assert!(run.stdout.contains("timeout"), "{}", run.describe());
}

#[test]
fn settings_only_with_user_is_usage_error() {
    let run = check(&["--settings-only".to_string(), "--user".to_string(), "alice".to_string()], None);
    assert_eq!(run.status, 2, "{}", run.describe());
    assert!(run.stderr.contains("--settings-only"), "{}", run.describe());
}

#[test]
fn cafile_in_open_directory_is_rejected() {
    let pki = Pki::new("pam_mapi check CA");
    let server = tls_server(&pki, &["localhost", "127.0.0.1"], false);
    let scratch = Scratch::new();
    let open = scratch.dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cafile = pki.write_cafile(&open);
    let run = check(&args_with(&scratch, &[format!("socket={}", server.url()), format!("cafile={}", cafile.display())]), None);
    assert_eq!(run.status, 3, "{}", run.describe());
    assert!(run.stdout.contains("another user could replace it"), "{}", run.describe());
}

#[test]
fn throttle_file_in_open_directory_fails_settings() {
    let scratch = Scratch::new();
    let open = scratch.dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let extra = ["--settings-only".to_string(), "throttle_failures=3".into(), format!("throttle_file={}", open.join("t.state").display())];
    let run = check(&args_with(&scratch, &extra), None);
    assert_eq!(run.status, 3, "{}", run.describe());
    assert!(run.stdout.contains("another user could replace it"), "{}", run.describe());
}

#[test]
fn probe_shows_fault_in_ok_reply() {
    let canned = common::Canned::start(vec![common::soap_reply(
        "<SOAP-ENV:Fault><faultcode>SOAP-ENV:Server</faultcode><faultstring>probe fault text</faultstring></SOAP-ENV:Fault>",
    )]);
    let scratch = Scratch::new();
    let run = check(&args_with(&scratch, &[format!("socket={}", canned.url())]), None);
    assert_eq!(run.status, 7, "{}", run.describe());
    assert!(run.stdout.contains("SOAP fault: probe fault text"), "{}", run.describe());
}
