//! DNS, connection and TLS steps. The TLS step does its own rustls handshake,
//! with the same trust anchors, TLS versions and crypto provider as the module
//! (src/transport.rs), so that it can show the protocol version and the server
//! certificate even when verification fails.

use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use pam_mapi::options::Settings;

use crate::report::{Exit, Report};

/// Builds the trust anchors as the module does: every certificate of `cafile`,
/// or the system trust store.
pub fn load_roots(cafile: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match cafile {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("cannot read cafile {}: {e}", path.display()))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("cannot parse cafile {}: {e}; it must contain PEM certificates", path.display()))?;
            if certs.is_empty() {
                return Err(format!("cafile {} contains no PEM certificate", path.display()));
            }
            let count = certs.len();
            for (index, cert) in certs.into_iter().enumerate() {
                roots.add(cert).map_err(|e| {
                    format!(
                        "cafile {}: certificate {} of {count} is not a valid X.509 CA certificate: {e}",
                        path.display(),
                        index + 1
                    )
                })?;
            }
        }
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(loaded.certs);
            if roots.is_empty() {
                return Err(format!(
                    "no CA certificates found in the system trust store ({}); install ca-certificates or set cafile=",
                    loaded.errors.first().map(|e| e.to_string()).unwrap_or_else(|| "empty".into())
                ));
            }
        }
    }
    Ok(roots)
}

/// Resolves `host` and prints every address. An IP address is used as it is.
// NOTE: the lookup is bounded by resolv.conf (timeout, attempts), not by
// timeout=, as in the module.
pub fn resolve(report: &mut Report, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
    let step = format!("dns {host}");
    let started = Instant::now();
    if let Ok(ip) = host.parse::<IpAddr>() {
        report.pass(&step, started, &format!("{ip} is an IP address, no lookup needed"));
        return Some(vec![SocketAddr::new(ip, port)]);
    }
    match (host, port).to_socket_addrs() {
        Ok(found) => {
            let addresses: Vec<SocketAddr> = found.collect();
            if addresses.is_empty() {
                report.fail(Exit::Dns, &step, started, "no address found; check the host name in socket= and /etc/hosts");
                return None;
            }
            let list = addresses.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ");
            report.pass(&step, started, &list);
            Some(addresses)
        }
        Err(e) => {
            report.fail(
                Exit::Dns,
                &step,
                started,
                &format!("lookup failed: {e}; check the host name in socket=, /etc/hosts and /etc/resolv.conf"),
            );
            None
        }
    }
}

/// Connects to every address in turn and returns the first connection. The step
/// fails only when no address accepts, because the module's HTTP client (ureq)
/// also goes on to the next address.
pub fn connect_tcp(
    report: &mut Report,
    addresses: &[SocketAddr],
    connect_timeout: Duration,
    deadline: Instant,
) -> Option<TcpStream> {
    let mut connected = None;
    let mut failures = Vec::new();
    for address in addresses {
        let step = format!("connect {address}");
        let started = Instant::now();
        let remaining = deadline.saturating_duration_since(started);
        let limit = connect_timeout.min(remaining);
        if limit.is_zero() {
            failures.push((step, started, "not tried, timeout= ran out".to_string()));
            continue;
        }
        match TcpStream::connect_timeout(address, limit) {
            Ok(stream) if connected.is_none() => {
                report.pass(&step, started, "connected");
                connected = Some(stream);
            }
            Ok(_) => report.pass(&step, started, "connected"),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock => {
                failures.push((step, started, format!("timed out after {:?} (connect_timeout); check firewalls and that the server listens there", limit)));
            }
            Err(e) => failures.push((
                step,
                started,
                format!("{e}; check that the server listens on this address and port (kopano-server: server_listen)"),
            )),
        }
    }
    for (step, started, detail) in failures {
        if connected.is_some() {
            report.warn(&step, &format!("{detail} ({})", crate::report::elapsed(started)));
        } else {
            report.fail(Exit::Connect, &step, started, &detail);
        }
    }
    connected
}

/// Checks the Unix socket file and connects to it.
pub fn connect_unix(report: &mut Report, path: &Path) -> bool {
    let step = format!("connect {}", path.display());
    let started = Instant::now();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) => {
            report.fail(
                Exit::Connect,
                &step,
                started,
                &format!("{e}; check that kopano-server runs and that socket= matches its server_pipe_name"),
            );
            return false;
        }
    };
    if !metadata.file_type().is_socket() {
        report.fail(Exit::Connect, &step, started, "the path exists but is not a Unix socket; fix socket=");
        return false;
    }
    let owner = format!("socket owner uid {}, gid {}, mode {:04o}", metadata.uid(), metadata.gid(), metadata.mode() & 0o7777);
    match pam_mapi::transport::connect_unix(path, std::time::Duration::from_secs(3)) {
        Ok(_) => {
            report.pass(&step, started, &format!("connected; {owner}"));
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            report.fail(
                Exit::Connect,
                &step,
                started,
                &format!("{e}; {owner}; run the checking process (saslauthd) as root or as a member of the socket's group"),
            );
            false
        }
        Err(e) => {
            report.fail(Exit::Connect, &step, started, &format!("{e}; {owner}; check that kopano-server runs"));
            false
        }
    }
}

/// Does the TLS handshake over `stream` and prints the negotiated version, the
/// cipher suite and the server certificate.
pub fn handshake(report: &mut Report, settings: &Settings, host: &str, mut stream: TcpStream, deadline: Instant) -> bool {
    let step = "tls";
    let started = Instant::now();
    let roots = match load_roots(settings.cafile.as_deref()) {
        Ok(roots) => roots,
        Err(message) => {
            report.fail(Exit::Configuration, step, started, &message);
            return false;
        }
    };
    let captured = Arc::new(Mutex::new(Vec::new()));
    let config = match client_config(roots, captured.clone()) {
        Ok(config) => config,
        Err(message) => {
            report.fail(Exit::Tls, step, started, &message);
            return false;
        }
    };
    let server_name = match ServerName::try_from(host.to_string()) {
        Ok(name) => name,
        Err(e) => {
            report.fail(Exit::Configuration, step, started, &format!("invalid host name {host:?} for TLS: {e}"));
            return false;
        }
    };
    let mut connection = match ClientConnection::new(Arc::new(config), server_name) {
        Ok(connection) => connection,
        Err(e) => {
            report.fail(Exit::Tls, step, started, &format!("cannot start the handshake: {e}"));
            return false;
        }
    };

    let result = drive_handshake(&mut connection, &mut stream, deadline);
    let presented = captured.lock().map(|certs| certs.clone()).unwrap_or_default();
    match result {
        Ok(()) => {
            let version = match connection.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
                Some(other) => format!("{other:?}"),
                None => "unknown version".to_string(),
            };
            let suite = connection
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_else(|| "unknown cipher suite".into());
            report.pass(step, started, &format!("{version}, {suite}, certificate verified for {host}"));
            show_certificate(report, &presented);
            true
        }
        Err(error) => {
            let hint = hint_for(&error, host);
            report.fail(Exit::Tls, step, started, &format!("{}{hint}", error.message));
            show_certificate(report, &presented);
            false
        }
    }
}

struct HandshakeError {
    message: String,
    certificate: Option<CertificateError>,
}

fn drive_handshake(connection: &mut ClientConnection, stream: &mut TcpStream, deadline: Instant) -> Result<(), HandshakeError> {
    while connection.is_handshaking() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(HandshakeError { message: "timed out (timeout=) during the handshake".into(), certificate: None });
        }
        let _ = stream.set_read_timeout(Some(remaining));
        let _ = stream.set_write_timeout(Some(remaining));
        if let Err(e) = connection.complete_io(stream) {
            let certificate = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .and_then(|tls| match tls {
                    rustls::Error::InvalidCertificate(cert) => Some(cert.clone()),
                    _ => None,
                });
            let message = match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    "timed out (timeout=) during the handshake; the server accepted the connection but does not speak TLS there".to_string()
                }
                std::io::ErrorKind::UnexpectedEof => {
                    "the server closed the connection during the handshake; check that this port speaks TLS (kopano-server: server_listen_tls)".to_string()
                }
                _ => format!("handshake failed: {e}"),
            };
            return Err(HandshakeError { message, certificate });
        }
    }
    Ok(())
}

/// Explains the common certificate errors in terms of the settings.
fn hint_for(error: &HandshakeError, host: &str) -> String {
    match &error.certificate {
        Some(CertificateError::UnknownIssuer) => {
            "; the certificate chain does not lead to a CA in cafile= (or the system trust store); set cafile= to the CA that issued the server certificate".into()
        }
        Some(CertificateError::NotValidForName) | Some(CertificateError::NotValidForNameContext { .. }) => {
            format!("; the certificate does not name {host}; use a host name in socket= that the certificate lists, or reissue it")
        }
        Some(CertificateError::Expired) | Some(CertificateError::ExpiredContext { .. }) => {
            "; the server certificate has expired; renew it on the server".into()
        }
        Some(CertificateError::NotValidYet) | Some(CertificateError::NotValidYetContext { .. }) => {
            "; the server certificate is not valid yet; check the clocks of both machines".into()
        }
        _ => String::new(),
    }
}

/// Prints subject, issuer, names and validity of the server's certificate.
fn show_certificate(report: &Report, presented: &[CertificateDer<'static>]) {
    let Some(leaf) = presented.first() else { return };
    let certificate = match X509Certificate::from_der(leaf.as_ref()) {
        Ok((_, certificate)) => certificate,
        Err(e) => {
            report.detail(&format!("certificate: cannot parse: {e}"));
            return;
        }
    };
    report.detail(&format!("certificate subject: {}", certificate.subject()));
    report.detail(&format!("certificate issuer: {}", certificate.issuer()));
    let names: Vec<String> = match certificate.subject_alternative_name() {
        Ok(Some(extension)) => extension.value.general_names.iter().filter_map(general_name).collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        report.detail("certificate names: none (no subjectAltName; TLS clients ignore the CN)");
    } else {
        report.detail(&format!("certificate names: {}", names.join(", ")));
    }
    let validity = certificate.validity();
    let remaining = match validity.time_to_expiration() {
        Some(left) => format!("expires in {} days", left.whole_days()),
        None if validity.not_before.timestamp() > now_unix() => "not valid yet".to_string(),
        None => "expired".to_string(),
    };
    report.detail(&format!(
        "certificate validity: {} until {} ({remaining})",
        validity.not_before, validity.not_after
    ));
    report.detail(&format!("certificate chain: {} certificate(s) sent by the server", presented.len()));
}

fn general_name(name: &GeneralName) -> Option<String> {
    match name {
        GeneralName::DNSName(dns) => Some(format!("DNS:{dns}")),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => Some(format!("IP:{}", IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?))),
            16 => Some(format!("IP:{}", IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?))),
            _ => None,
        },
        _ => None,
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Builds the module's TLS client settings: ring, TLS 1.2 and 1.3, no client
/// certificate. The verifier is the standard webpki one, wrapped so that the
/// certificates the server presents are kept for printing.
fn client_config(roots: RootCertStore, captured: Arc<Mutex<Vec<CertificateDer<'static>>>>) -> Result<ClientConfig, String> {
    let provider = Arc::new(ring_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
    let verifier = Arc::new(RecordingVerifier { inner, captured });
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| format!("cannot set the TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

/// Returns the ring provider, which src/transport.rs also uses.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A certificate verifier that records the chain the server presents, then
/// verifies it with webpki.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    captured: Arc<Mutex<Vec<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut captured) = self.captured.lock() {
            captured.clear();
            captured.push(end_entity.clone().into_owned());
            captured.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        }
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
