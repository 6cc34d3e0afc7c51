//! pam_mapi.so over https, loaded by the real libpam, against the stand-in Kopano
//! server. Each test makes its own CA and certificates. The tests cover chain and
//! host name verification, `cafile=` errors, the handshake deadline, and the TLS
//! versions and client certificate that the module offers.
//!
//! Why the module never speaks TLS 1.0 or 1.1: it talks TLS only through rustls
//! 0.23, which implements TLS 1.2 and TLS 1.3 and nothing older, and
//! src/transport.rs builds every https client with that provider. A server that
//! offers only TLS 1.0 or 1.1 therefore fails the handshake. The test
//! `client_hello_offers_only_tls12_and_tls13` checks the versions in the
//! ClientHello that the module sends.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use kopano_standin::{Config, Fault, Server, Transport};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

const PASSWORD: &str = "Tls-Secr3t";

/// A certificate authority made for one test.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issues an intermediate CA certificate.
    fn intermediate(&self, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::signed_by(params, KeyPair::generate().unwrap(), &self.issuer).unwrap();
        TestCa { issuer }
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses) and
    /// returns it and its key in PEM.
    fn leaf(&self, names: &[&str], validity: Validity) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = leaf_params(names, validity);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

#[derive(Clone, Copy)]
enum Validity {
    Now,
    Expired,
    NotYetValid,
}

fn leaf_params(names: &[&str], validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    match validity {
        Validity::Now => {}
        Validity::Expired => {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        Validity::NotYetValid => {
            params.not_before = rcgen::date_time_ymd(2200, 1, 1);
            params.not_after = rcgen::date_time_ymd(2201, 1, 1);
        }
    }
    params
}

/// Makes a self-signed server certificate for `names` and returns it and its key
/// in PEM.
fn self_signed_leaf(names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(names, Validity::Now).self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes `contents` to a file in a fresh scratch directory and returns its path.
fn write_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = scratch_dir("tls").join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn tls_server(cert_pem: &str, key_pem: &str) -> Server {
    Server::start(Config::soap().user("alice", PASSWORD).tls(cert_pem.as_bytes(), key_pem.as_bytes())).unwrap()
}

/// Builds a service that sends to `url` and trusts only `ca_pem`.
fn service_trusting(ca_pem: &str, url: &str) -> Service {
    let cafile = write_file("ca.pem", ca_pem.as_bytes());
    Service::simple(&format!("socket={url} cafile={} timeout=5", cafile.display()))
}

#[test]
fn valid_chain_right_password_is_success() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let service = service_trusting(&ca.pem(), &server.url());
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SUCCESS));
}

#[test]
fn valid_chain_wrong_password_is_auth_err() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let service = service_trusting(&ca.pem(), &server.url());
    assert_eq!(name(authenticate(&service, "alice", "wrong")), name(PAM_AUTH_ERR));
}

#[test]
fn logon_arrives_over_tls() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let service = service_trusting(&ca.pem(), &server.url());
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
    assert_eq!(server.logons()[0].transport, Transport::Tls);
}

#[test]
fn client_certificate_is_never_presented() {
    // The stand-in, like kopano-server, requests a client certificate without
    // requiring one. kopano-server logs the holder of an accepted certificate on as
    // any user without a password check.
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let service = service_trusting(&ca.pem(), &server.url());
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
    assert!(!server.logons()[0].client_cert_presented, "the module presented a client certificate");
}

#[test]
fn host_name_in_certificate_is_accepted() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["localhost"], Validity::Now);
    let server = tls_server(&cert, &key);
    let port = server.tcp_addr().unwrap().port();
    let service = service_trusting(&ca.pem(), &format!("https://localhost:{port}/kopano"));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SUCCESS));
}

#[test]
fn chain_with_intermediate_is_success() {
    let root = TestCa::new("pam_mapi test root CA");
    let intermediate = root.intermediate("pam_mapi test intermediate CA");
    let (cert, key) = intermediate.leaf(&["127.0.0.1"], Validity::Now);
    let chain = format!("{cert}{}", intermediate.pem());
    let server = tls_server(&chain, &key);
    let service = service_trusting(&root.pem(), &server.url());
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SUCCESS));
}

#[test]
fn wrong_host_name_is_authinfo_unavail() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["wrong.example.test"], Validity::Now);
    let server = tls_server(&cert, &key);
    let service = service_trusting(&ca.pem(), &server.url());
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
    assert_eq!(server.logons().len(), 0);
}

#[test]
fn certificate_for_name_does_not_cover_address() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["localhost"], Validity::Now);
    let server = tls_server(&cert, &key);
    let service = service_trusting(&ca.pem(), &server.url());
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
}

#[test]
fn self_signed_leaf_is_authinfo_unavail() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = self_signed_leaf(&["localhost", "127.0.0.1"]);
    let server = tls_server(&cert, &key);
    let service = service_trusting(&ca.pem(), &server.url());
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
    assert_eq!(server.logons().len(), 0);
}

#[test]
fn expired_leaf_is_authinfo_unavail() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"], Validity::Expired);
    let server = tls_server(&cert, &key);
    let service = service_trusting(&ca.pem(), &server.url());
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
    assert_eq!(server.logons().len(), 0);
}

#[test]
fn not_yet_valid_leaf_is_authinfo_unavail() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"], Validity::NotYetValid);
    let server = tls_server(&cert, &key);
    let service = service_trusting(&ca.pem(), &server.url());
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
}

#[test]
fn ca_not_in_cafile_is_authinfo_unavail() {
    let trusted = TestCa::new("pam_mapi trusted CA");
    let other = TestCa::new("pam_mapi other CA");
    let (cert, key) = other.leaf(&["localhost", "127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let service = service_trusting(&trusted.pem(), &server.url());
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
    assert_eq!(server.logons().len(), 0);
}

#[test]
fn system_trust_store_rejects_test_ca() {
    assert!(
        std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists(),
        "the system trust store is missing; install ca-certificates (tests/setup.sh does)"
    );
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let service = Service::simple(&format!("socket={} timeout=5", server.url()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
}

#[test]
fn missing_cafile_is_service_err() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let missing = scratch_dir("tls").join("no-such-ca.pem");
    let service = Service::simple(&format!("socket={} cafile={}", server.url(), missing.display()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SERVICE_ERR));
    assert_eq!(server.logons().len(), 0);
}

#[test]
fn cafile_without_certificate_is_service_err() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let cafile = write_file("ca.pem", b"this is not a PEM file\n");
    let service = Service::simple(&format!("socket={} cafile={}", server.url(), cafile.display()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SERVICE_ERR));
}

#[test]
fn cafile_with_private_key_only_is_service_err() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let cafile = write_file("ca.pem", key.as_bytes());
    let service = Service::simple(&format!("socket={} cafile={}", server.url(), cafile.display()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SERVICE_ERR));
}

#[test]
fn cafile_with_broken_base64_is_service_err() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let broken = "-----BEGIN CERTIFICATE-----\nMIIB!!!not*base64###\n-----END CERTIFICATE-----\n";
    let cafile = write_file("ca.pem", broken.as_bytes());
    let service = Service::simple(&format!("socket={} cafile={}", server.url(), cafile.display()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SERVICE_ERR));
}

#[test]
fn cafile_with_invalid_der_is_service_err() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    // Valid PEM framing and base64 around bytes that are no X.509 certificate.
    let not_der = "-----BEGIN CERTIFICATE-----\nSGVsbG8sIHRoaXMgaXMgbm90IGEgY2VydGlmaWNhdGUu\n-----END CERTIFICATE-----\n";
    let cafile = write_file("ca.pem", not_der.as_bytes());
    let service = Service::simple(&format!("socket={} cafile={}", server.url(), cafile.display()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SERVICE_ERR));
}

#[test]
fn handshake_stall_is_authinfo_unavail_within_timeout() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    server.set_fault(Fault::TlsHandshakeStall);
    let cafile = write_file("ca.pem", ca.pem().as_bytes());
    let service = Service::simple(&format!("socket={} cafile={} timeout=2", server.url(), cafile.display()));
    let started = Instant::now();
    let code = authenticate(&service, "alice", PASSWORD);
    let elapsed = started.elapsed();
    assert_eq!(name(code), name(PAM_AUTHINFO_UNAVAIL));
    assert!(elapsed < Duration::from_millis(3500), "timeout=2 took {elapsed:?}");
}

#[test]
fn handshake_stall_fails_over_to_next_server() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let stalled = tls_server(&cert, &key);
    stalled.set_fault(Fault::TlsHandshakeStall);
    let healthy = tls_server(&cert, &key);
    let cafile = write_file("ca.pem", ca.pem().as_bytes());
    let service = Service::simple(&format!(
        "socket={} socket={} cafile={} connect_timeout=1 timeout=5",
        stalled.url(),
        healthy.url(),
        cafile.display()
    ));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SUCCESS));
}

/// The TLS versions a ClientHello offers: `legacy_version`, and the
/// `supported_versions` extension (RFC 8446, 4.2.1) if present.
struct OfferedVersions {
    legacy_version: u16,
    supported_versions: Vec<u16>,
}

/// Parses one ClientHello from the start of a TLS stream.
fn parse_client_hello(data: &[u8]) -> OfferedVersions {
    assert_eq!(data[0], 0x16, "first record is not a handshake record");
    let body = &data[5..];
    assert_eq!(body[0], 0x01, "first handshake message is not a ClientHello");
    let hello = &body[4..];
    let legacy_version = u16::from_be_bytes([hello[0], hello[1]]);
    let mut at = 2 + 32;
    let session_id_len = hello[at] as usize;
    at += 1 + session_id_len;
    let suites_len = u16::from_be_bytes([hello[at], hello[at + 1]]) as usize;
    at += 2 + suites_len;
    let compression_len = hello[at] as usize;
    at += 1 + compression_len;
    let extensions_len = u16::from_be_bytes([hello[at], hello[at + 1]]) as usize;
    at += 2;
    let end = at + extensions_len;
    let mut supported_versions = Vec::new();
    while at + 4 <= end {
        let kind = u16::from_be_bytes([hello[at], hello[at + 1]]);
        let len = u16::from_be_bytes([hello[at + 2], hello[at + 3]]) as usize;
        let ext = &hello[at + 4..at + 4 + len];
        if kind == 43 {
            let list = &ext[1..1 + ext[0] as usize];
            supported_versions = list.chunks(2).map(|v| u16::from_be_bytes([v[0], v[1]])).collect();
        }
        at += 4 + len;
    }
    OfferedVersions { legacy_version, supported_versions }
}

#[test]
fn client_hello_offers_only_tls12_and_tls13() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let capture = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut data = Vec::new();
        let mut buffer = [0u8; 4096];
        // A ClientHello fits in one record; read until the record is complete.
        while data.len() < 5 || data.len() < 5 + u16::from_be_bytes([data[3], data[4]]) as usize {
            let n = stream.read(&mut buffer).unwrap();
            assert!(n > 0, "connection closed before the ClientHello was complete");
            data.extend_from_slice(&buffer[..n]);
        }
        data
    });
    let ca = TestCa::new("pam_mapi test CA");
    let service = service_trusting(&ca.pem(), &format!("https://127.0.0.1:{port}/kopano"));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));

    let offered = parse_client_hello(&capture.join().unwrap());
    assert_eq!(offered.legacy_version, 0x0303, "ClientHello legacy_version is not TLS 1.2");
    assert!(!offered.supported_versions.is_empty(), "no supported_versions extension");
    for version in &offered.supported_versions {
        assert!(
            *version == 0x0303 || *version == 0x0304,
            "supported_versions offers 0x{version:04x}: {:04x?}",
            offered.supported_versions
        );
    }
}

#[test]
fn writable_cafile_is_service_err() {
    use std::os::unix::fs::PermissionsExt;
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let cafile = write_file("ca.pem", ca.pem().as_bytes());
    std::fs::set_permissions(&cafile, std::fs::Permissions::from_mode(0o666)).unwrap();
    let service = Service::simple(&format!("socket={} cafile={}", server.url(), cafile.display()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SERVICE_ERR));
}

#[test]
fn cafile_not_owned_by_root_is_service_err() {
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let cafile = write_file("ca.pem", ca.pem().as_bytes());
    std::os::unix::fs::chown(&cafile, Some(65534), None).unwrap();
    let service = Service::simple(&format!("socket={} cafile={}", server.url(), cafile.display()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SERVICE_ERR));
}

#[test]
fn cafile_in_open_directory_is_service_err() {
    use std::os::unix::fs::PermissionsExt;
    let ca = TestCa::new("pam_mapi test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"], Validity::Now);
    let server = tls_server(&cert, &key);
    let cafile = write_file("ca.pem", ca.pem().as_bytes());
    let dir = cafile.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let service = Service::simple(&format!("socket={} cafile={}", server.url(), cafile.display()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SERVICE_ERR));
    assert_eq!(server.logons().len(), 0);
}
