//! TLS listener support. Like kopano-server, the stand-in requests a client certificate
//! but does not require one; it accepts any certificate and records that one was sent.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConnection, SignatureScheme, StreamOwned};

use crate::{Shared, TlsIdentity};

fn invalid(context: &str, error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{context}: {error}"))
}

/// Builds the rustls server configuration from a PEM chain and key.
pub(crate) fn server_config(identity: &TlsIdentity) -> io::Result<Arc<rustls::ServerConfig>> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&identity.cert_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("invalid TLS certificate PEM", e))?;
    if certificates.is_empty() {
        return Err(invalid(
            "invalid TLS certificate PEM",
            "no CERTIFICATE block found; pass the chain as PEM, leaf first",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&identity.key_pem)
        .map_err(|e| invalid("invalid TLS key PEM", format!("{e}; pass a PKCS#8, PKCS#1 or SEC1 PEM key")))?;
    // ring is deprecated in rustls 0.23.48 only for lacking post-quantum key exchange,
    // which does not matter for a loopback test server.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyClientCertificate { algorithms: provider.signature_verification_algorithms });
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS protocol versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificates, key)
        .map_err(|e| invalid("TLS certificate and key do not match", e))?;
    Ok(Arc::new(config))
}

/// Completes the server handshake. Returns the stream and whether the client presented a
/// certificate, or None if the handshake failed or timed out.
pub(crate) fn handshake(
    shared: &Shared,
    mut tcp: TcpStream,
    timeout: Option<Duration>,
) -> Option<(StreamOwned<ServerConnection, TcpStream>, bool)> {
    let config = shared.tls.clone()?;
    let mut connection = ServerConnection::new(config).ok()?;
    tcp.set_read_timeout(timeout).ok()?;
    while connection.is_handshaking() {
        if connection.complete_io(&mut tcp).is_err() {
            return None;
        }
    }
    let client_cert = connection.peer_certificates().is_some_and(|certs| !certs.is_empty());
    Some((StreamOwned::new(connection, tcp), client_cert))
}

/// Offers client authentication, never requires it, and accepts any certificate whose
/// handshake signature is valid.
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
