//! TLS listener: a logon over TLS, with and without a client certificate, checked with a
//! rustls client that trusts only the stand-in's test CA.

mod common;

use std::net::TcpStream;
use std::sync::Arc;

use common::*;
use kopano_standin::{Config, Server, TlsIdentity, Transport, TEST_CA_PEM};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

fn client_config(client_cert: bool) -> Arc<rustls::ClientConfig> {
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(TEST_CA_PEM) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if client_cert {
        let identity = TlsIdentity::localhost();
        let chain = CertificateDer::pem_slice_iter(&identity.cert_chain_pem).map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_slice(&identity.key_pem).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

fn logon_over_tls(server: &Server, client_cert: bool) -> Reply {
    let connection = rustls::ClientConnection::new(client_config(client_cert), ServerName::try_from("localhost").unwrap()).unwrap();
    let socket = TcpStream::connect(server.tcp_addr().unwrap()).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, socket);
    exchange(&mut stream, "/", &logon("bob", "plain", 1))
}

#[test]
fn tls_logon_without_client_certificate() {
    let server = Server::start(Config::soap().user("bob", "plain").tls_localhost()).unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    assert_eq!(logon_over_tls(&server, false).er(), 0);
    let record = &server.logons()[0];
    assert_eq!(record.transport, Transport::Tls);
    assert!(!record.client_cert_presented);
}

#[test]
fn tls_records_client_certificate() {
    let server = Server::start(Config::soap().user("bob", "plain").tls_localhost()).unwrap();
    assert_eq!(logon_over_tls(&server, true).er(), 0);
    assert!(server.logons()[0].client_cert_presented);
}

#[test]
fn invalid_certificate_pem_rejected() {
    let error = Server::start(Config::soap().tls(b"not a certificate", b"not a key")).err().unwrap();
    assert!(error.to_string().contains("invalid TLS certificate PEM"), "{error}");
}
