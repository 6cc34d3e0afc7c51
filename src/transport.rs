//! HTTP POSTs to one server with ureq: plain TCP, TLS (rustls, system trust store
//! or `cafile=`), or a Unix socket through ureq's transport API.
//!
//! Every call is bounded by the caller's deadline. Redirects are never followed,
//! proxies from the environment are ignored, and replies are capped in size.
//! Nothing here starts a thread or keeps state between authentications.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, LazyBuffers, NextTimeout, Transport,
};
use ureq::Agent;

use crate::server::ServerUrl;

/// Largest reply body read. A logon reply is under 1 KiB.
pub const MAX_REPLY_BYTES: u64 = 64 * 1024;

/// A reply, read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// Returns the first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The reason a POST got no reply.
#[derive(Debug)]
pub struct TransportError {
    pub message: String,
    /// The deadline ran out, as opposed to a refusal or an error.
    pub timed_out: bool,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// TLS settings shared by every https server of one authentication.
#[derive(Clone)]
pub struct TlsSettings {
    pub cafile: Option<PathBuf>,
}

/// A connection (pool) to one server; logon and logoff reuse the same connection
/// when the server keeps it alive.
pub struct Client {
    agent: Agent,
    url: String,
}

impl Client {
    /// Prepares a client for `server`.
    ///
    /// # Errors
    ///
    /// Returns a message when the trust store or `cafile` cannot be loaded.
    pub fn new(server: &ServerUrl, tls: &TlsSettings, connect_timeout: Duration) -> Result<Client, String> {
        let tls_config = match server {
            ServerUrl::Http { tls: true, .. } => rustls_config(tls)?,
            _ => TlsConfig::builder().provider(TlsProvider::Rustls).build(),
        };
        let config = Config::builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent("pam_mapi/".to_string() + env!("CARGO_PKG_VERSION"))
            .accept_encoding("identity")
            .tls_config(tls_config)
            .timeout_connect(Some(connect_timeout))
            .max_response_header_size(16 * 1024)
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .build();
        let (agent, url) = match server {
            ServerUrl::Http { url, .. } => (Agent::with_parts(config, DefaultConnector::new(), SyncResolver), url.clone()),
            ServerUrl::Unix { path, .. } => (
                Agent::with_parts(config, UnixConnector { path: path.clone() }, UnixResolver),
                // The server ignores the request target. Kopano's own client sends the
                // socket path, and "localhost" replaces the absent host.
                format!("http://localhost{}", path.display()),
            ),
        };
        Ok(Client { agent, url })
    }

    /// Sends every request to `target`, a path with an optional query such as
    /// `/mapi/emsmdb/?MailboxId=alice@example.com`, on the same host, port or
    /// Unix socket, instead of to the path of the configured URL.
    pub fn with_target(mut self, target: &str) -> Client {
        let authority_start = self.url.find("://").map_or(0, |i| i + 3);
        let path_start = self.url[authority_start..].find('/').map_or(self.url.len(), |i| authority_start + i);
        self.url = format!("{}{target}", &self.url[..path_start]);
        self
    }

    /// POSTs `body` and reads the whole reply, all before `deadline`.
    ///
    /// # Errors
    ///
    /// Connect, TLS, timeout, protocol and size errors, with the phase that failed.
    pub fn post(
        &self,
        body: &[u8],
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Reply, TransportError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(TransportError { message: "timed out before the request could be sent".into(), timed_out: true });
        }
        let mut request = self.agent.post(&self.url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.config().timeout_global(Some(remaining)).build();
        // TODO: ureq copies the body and the header values, which hold the password
        // (SOAP szPassword, Basic Authorization), into buffers that it frees unwiped.
        let mut response = request.send(body).map_err(describe)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_vec()
            .map_err(describe)?;
        Ok(Reply { status, headers, body })
    }
}

/// Builds the rustls settings: the system trust store, or `cafile` instead of it.
/// No client certificate is ever configured: kopano-server logs the holder of an
/// accepted certificate on as any user without a password.
fn rustls_config(tls: &TlsSettings) -> Result<TlsConfig, String> {
    let roots: Vec<Certificate<'static>> = match &tls.cafile {
        Some(path) => load_cafile(path)?,
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            if loaded.certs.is_empty() {
                return Err(format!(
                    "no CA certificates found in the system trust store ({}); install ca-certificates or set cafile=",
                    loaded.errors.first().map(|e| e.to_string()).unwrap_or_else(|| "empty".into())
                ));
            }
            loaded.certs.iter().map(|c| Certificate::from_der(c.as_ref()).to_owned()).collect()
        }
    };
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .client_cert(None)
        .unversioned_rustls_crypto_provider(Arc::new(ring_provider()))
        .build())
}

fn load_cafile(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    use std::os::unix::fs::MetadataExt;

    // Any user who can write the CA file can make the module trust any server, so
    // the file gets the same ownership rule as the configuration file.
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read cafile {shown}: {e}; fix cafile="))?;
    // Both the directory as written and the one a link leads to must be safe.
    let resolved = std::fs::canonicalize(path).map_err(|e| format!("cannot read cafile {shown}: {e}; fix cafile="))?;
    for dir in [path.parent(), resolved.parent()].into_iter().flatten() {
        crate::shared_file::check_directory(dir, "cafile")?;
    }
    if metadata.uid() != 0 {
        return Err(format!("cafile {shown} is owned by uid {}, not root; run: chown root:root {shown}", metadata.uid()));
    }
    if metadata.mode() & 0o022 != 0 {
        return Err(format!(
            "cafile {shown} is writable by group or others (mode {:04o}); run: chmod go-w {shown}",
            metadata.mode() & 0o7777
        ));
    }
    let pem = std::fs::read(path).map_err(|e| format!("cannot read cafile {shown}: {e}"))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert.to_owned()),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot parse cafile {}: {e}", path.display())),
        }
    }
    if certs.is_empty() {
        return Err(format!("cafile {} contains no PEM certificate", path.display()));
    }
    // ureq skips a root it cannot parse, so a broken cafile would surface only as
    // a failed handshake. Checking here turns it into a configuration error.
    let mut store = rustls::RootCertStore::empty();
    for (index, cert) in certs.iter().enumerate() {
        let der = rustls::pki_types::CertificateDer::from(cert.der());
        store.add(der).map_err(|e| {
            format!(
                "cafile {}: certificate {} of {} is not a valid X.509 CA certificate: {e}; replace the file with the PEM CA bundle",
                path.display(),
                index + 1,
                certs.len()
            )
        })?;
    }
    Ok(certs)
}

/// Turns a ureq error into a message that names the phase.
fn describe(error: ureq::Error) -> TransportError {
    use ureq::Error as E;
    let (message, timed_out) = match &error {
        E::Timeout(phase) => (
            format!("timed out ({}); check that the server is up and reachable, or raise timeout=", timeout_phase(*phase)),
            true,
        ),
        E::HostNotFound => ("host name not found; check the host in socket= and the DNS or /etc/hosts entry".to_string(), false),
        E::ConnectionFailed => {
            ("connection failed; check that the server listens on the address and port in socket=".to_string(), false)
        }
        E::Io(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
            (format!("timed out: {e}; check that the server is up, or raise timeout="), true)
        }
        E::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => (
            format!("connection refused: {e}; check that the server runs and listens on the address in socket= (kopano-server: server_listen, server_pipe_name)"),
            false,
        ),
        E::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (format!("{e}; check the socket path in socket= and that the server runs"), false)
        }
        E::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            (format!("{e}; the calling process (saslauthd) needs permission to connect to that socket"), false)
        }
        E::Io(e) => (format!("connection error: {e}"), false),
        E::BodyExceedsLimit(limit) => (
            format!("reply body is larger than {limit} bytes; socket= may point at something other than the groupware server"),
            false,
        ),
        E::Tls(e) => (tls_message(e), false),
        E::Rustls(e) => (tls_message(&e.to_string()), false),
        // The library's message may quote the reply, which may quote the request,
        // so only the kind of error is given.
        other => (format!("invalid HTTP reply ({}); socket= may point at something other than the groupware server", error_kind(other)), false),
    };
    TransportError { message, timed_out }
}

/// Returns the name of an error's kind from its debug form, without the data it
/// carries: `Protocol(BadHeader` for `Protocol(BadHeader("..."))`.
fn error_kind(error: &ureq::Error) -> String {
    let debug = format!("{error:?}");
    let kind: String = debug.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '(' || *c == '_').collect();
    kind.trim_end_matches('(').to_string()
}

/// Builds the message for a TLS error, with the fix for the certificate problems
/// that rustls names.
fn tls_message(error: &str) -> String {
    let fix = if error.contains("CaUsedAsEndEntity") {
        "the server presents a CA certificate (basicConstraints CA:TRUE) as its own; give the server a certificate with CA:FALSE signed by the CA in cafile="
    } else if error.contains("Expired") {
        "the server's certificate has expired (or the clock is wrong); renew the certificate"
    } else if error.contains("NotValidYet") {
        "the server's certificate is not valid yet; check the clocks of both hosts"
    } else if error.contains("NotValidForName") {
        "the certificate does not name the host in socket=; use a host name or address that the certificate lists"
    } else if error.contains("UnknownIssuer") {
        "no CA in the trust store signed the certificate; set cafile= to the CA that signed it"
    } else {
        "pam_mapi-check shows the server's certificate; check cafile= and the host name in socket="
    };
    format!("TLS error: {error}; {fix}")
}

fn timeout_phase(phase: ureq::Timeout) -> &'static str {
    use ureq::Timeout as T;
    match phase {
        T::Global => "total deadline",
        T::PerCall => "call deadline",
        T::Resolve => "DNS lookup",
        T::Connect => "connect",
        T::SendRequest => "sending the request",
        T::SendBody => "sending the request body",
        T::Await100 => "waiting for 100-continue",
        T::RecvResponse => "waiting for the reply headers",
        T::RecvBody => "reading the reply body",
        _ => "unknown phase",
    }
}

/// Resolves host names in the calling thread. ureq's default resolver starts a
/// thread per lookup when a timeout is set, and a thread that outlives the call
/// would run code of a module libpam has already unloaded.
// NOTE: the lookup itself is bounded by resolv.conf (timeout, attempts), not by
// timeout=; use an address or /etc/hosts where that matters.
#[derive(Debug)]
struct SyncResolver;

impl Resolver for SyncResolver {
    fn resolve(&self, uri: &Uri, config: &Config, _timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let authority = uri.authority().ok_or(ureq::Error::HostNotFound)?;
        let default_port = if uri.scheme_str() == Some("https") { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let found: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(|_| ureq::Error::HostNotFound)?.collect();
        let mut result = self.empty();
        for addr in config.ip_family().keep_wanted(found.into_iter()).take(16) {
            result.push(addr);
        }
        if result.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(result)
    }
}

/// Skips name resolution for Unix sockets: the connector ignores the address.
#[derive(Debug)]
struct UnixResolver;

impl Resolver for UnixResolver {
    fn resolve(&self, _uri: &Uri, _config: &Config, _timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut result = self.empty();
        result.push(SocketAddr::from(([127, 0, 0, 1], 0)));
        Ok(result)
    }
}

/// Opens a Unix stream socket instead of a TCP connection.
#[derive(Debug)]
struct UnixConnector {
    path: PathBuf,
}

impl<In: Transport> Connector<In> for UnixConnector {
    type Out = UnixTransport;

    fn connect(&self, details: &ConnectionDetails, _chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let limit = details.timeout.not_zero().map(|d| *d).unwrap_or(Duration::from_secs(3));
        let stream = connect_unix(&self.path, limit).map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => ureq::Error::Timeout(details.timeout.reason),
            kind => ureq::Error::Io(std::io::Error::new(kind, format!("cannot connect to {}: {e}", self.path.display()))),
        })?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(UnixTransport { stream, buffers }))
    }
}

/// Connects to a Unix stream socket within `limit`. A plain blocking connect can
/// wait forever when the server's listen backlog is full. A non-blocking connect
/// fails at once with EAGAIN then, so it is retried until `limit` runs out.
pub fn connect_unix(path: &Path, limit: Duration) -> std::io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::FromRawFd;

    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= address.sun_path.len() || bytes.contains(&0) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "socket path is too long or contains NUL"));
    }
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (target, byte) in address.sun_path.iter_mut().zip(bytes) {
        *target = *byte as libc::c_char;
    }
    let length = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;

    // SAFETY: socket has no memory preconditions; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket that nothing else owns; the stream closes it.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    let started = Instant::now();
    loop {
        // SAFETY: address and length describe a valid sockaddr_un.
        let rc = unsafe { libc::connect(fd, &address as *const libc::sockaddr_un as *const libc::sockaddr, length) };
        if rc == 0 {
            break;
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            // The listen backlog is full: the server does not accept connections.
            Some(libc::EAGAIN) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(10)),
            Some(libc::EAGAIN) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the server accepts no connections (listen backlog full)",
                ))
            }
            _ => return Err(error),
        }
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

#[derive(Debug)]
struct UnixTransport {
    stream: UnixStream,
    buffers: LazyBuffers,
}

/// Converts a timeout into the error ureq expects when it runs out.
fn io_error(e: std::io::Error, timeout: NextTimeout) -> ureq::Error {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ureq::Error::Timeout(timeout.reason),
        _ => ureq::Error::Io(e),
    }
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        if timeout.after.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        self.stream.set_write_timeout(timeout.not_zero().map(|d| *d)).map_err(ureq::Error::Io)?;
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output).map_err(|e| io_error(e, timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        if timeout.after.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        self.stream.set_read_timeout(timeout.not_zero().map(|d| *d)).map_err(ureq::Error::Io)?;
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match self.stream.read(input) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e, timeout)),
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // A readable byte or EOF on an idle connection means it is unusable.
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut probe = [0u8; 1];
        let open = matches!(self.stream.read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        open && self.stream.set_nonblocking(false).is_ok()
    }
}

/// Returns the ring crypto provider. rustls 0.23.4x deprecates it because it lacks
/// post-quantum key exchange. aws-lc-rs has that, but it needs cmake at build
/// time, which the offline package builds avoid.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_message_names_the_fix() {
        let cases = [
            ("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))", "CA:FALSE"),
            ("invalid peer certificate: Expired", "renew the certificate"),
            ("invalid peer certificate: NotValidYet", "clocks"),
            ("invalid peer certificate: NotValidForName", "that the certificate lists"),
            ("invalid peer certificate: UnknownIssuer", "set cafile="),
            ("received fatal alert: HandshakeFailure", "pam_mapi-check shows"),
        ];
        for (error, fix) in cases {
            let message = tls_message(error);
            assert!(message.starts_with("TLS error: "), "{message}");
            assert!(message.contains(fix), "{error}: {message}");
        }
    }
}
