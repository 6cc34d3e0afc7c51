//! Stand-in for a Kopano server (SOAP "MAPI in SOAP" logon, logoff and getUser) and for a
//! Gromox server (HTTP Basic authentication on MAPI over HTTP), for pam_mapi's tests.
//!
//! The behaviour copies wire captures of kopano-server 11.0.2 and Gromox 3.10, including
//! the parts that hurt a client: the Unix-socket peer-uid logon without a password check,
//! HTTP 200 for failed logons, the 1 s failure delay and the per-user ban. Switchable
//! [`Fault`]s break the transport or the response on purpose. Threads only, no async
//! runtime. Everything listens on loopback or on a Unix socket.

mod faults;
mod http;
mod mapihttp;
mod net;
mod soap_xml;
mod soap;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use faults::Fault;

/// One account on the stand-in server.
#[derive(Clone, Debug)]
pub struct User {
    /// Login name. Kopano mode matches it case-insensitively (ASCII), like the DB plugin's
    /// `strcasecmp`. Gromox mode expects the full address (`alice@example.test`).
    pub name: String,
    /// Password in UTF-8, compared byte for byte.
    pub password: String,
    /// Features explicitly enabled for this user (kopano-admin `--enable-feature`).
    pub enabled_features: Vec<String>,
    /// Features explicitly disabled for this user (kopano-admin `--disable-feature`).
    pub disabled_features: Vec<String>,
}

impl User {
    /// Creates a user with no per-user feature overrides.
    pub fn new(name: &str, password: &str) -> Self {
        User {
            name: name.to_string(),
            password: password.to_string(),
            enabled_features: Vec::new(),
            disabled_features: Vec::new(),
        }
    }
}

/// Wire protocol that the stand-in speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Kopano/Zarafa SOAP in namespace `urn:zarafa`, as kopano-server 11.0.2 serves it.
    Soap,
    /// Gromox 3.10 MAPI over HTTP with HTTP Basic authentication.
    MapiHttp,
}

/// TLS server identity: a PEM certificate chain (leaf first) and a PEM private key.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    pub cert_chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// PEM certificate of the test CA that issued [`TlsIdentity::localhost`]. Clients under
/// test trust it as their only root. Its private key was discarded after issuing.
pub const TEST_CA_PEM: &[u8] = include_bytes!("testdata/ca.pem");

impl TlsIdentity {
    /// Returns a certificate for `localhost`, `127.0.0.1` and `::1` (server and client
    /// authentication, valid until 2126) issued by [`TEST_CA_PEM`], with its key.
    pub fn localhost() -> Self {
        TlsIdentity {
            cert_chain_pem: include_bytes!("testdata/localhost-cert.pem").to_vec(),
            key_pem: include_bytes!("testdata/localhost-key.pem").to_vec(),
        }
    }
}

/// Server configuration. Build it with [`Config::soap`] or [`Config::mapihttp`] and the
/// builder methods.
#[derive(Clone, Debug)]
pub struct Config {
    pub protocol: Protocol,
    pub users: Vec<User>,
    /// TCP listen address (`127.0.0.1:0` picks a free port). `None` means no TCP listener.
    pub tcp: Option<SocketAddr>,
    /// Unix socket path. An existing file at that path is replaced.
    pub unix: Option<PathBuf>,
    /// If set, the TCP listener speaks TLS. A client certificate is requested but not
    /// required, and whether one was presented is recorded.
    pub tls: Option<TlsIdentity>,
    /// Gromox `auth_fail_delay`: wait before every 401 that followed a credential check.
    pub failure_delay: Duration,
    /// Gromox `http_auth_times`: failures on one connection that ban the user name.
    pub ban_after: u32,
    /// Gromox `block_interval_auths`: how long a banned user name gets 401.
    pub ban_duration: Duration,
    /// Idle time after which a kept-alive TCP or TLS connection is closed (Kopano's
    /// `server_recv_timeout`, 5 s; Gromox announces `Keep-Alive: timeout=180`). Unix-socket
    /// connections are exempt.
    pub idle_timeout: Duration,
    /// Kopano's server-wide `disabled_features`.
    pub disabled_features: Vec<String>,
    /// How long a Kopano-mode request whose XML is not well formed is held before the
    /// connection is closed without a response (kopano-server 11.0.2 keeps it open about 60 s).
    pub malformed_hold: Duration,
    /// Largest request body accepted, in bytes. A larger request gets the connection closed.
    pub max_request_bytes: usize,
    /// Write one line per logon decision to stderr, in the style of kopano-server's audit
    /// log and Gromox's `HTTP auth rejected` lines. Passwords are never written.
    pub log: bool,
}

impl Config {
    /// Kopano SOAP mode on `127.0.0.1:0`, no users, kopano-server defaults.
    pub fn soap() -> Self {
        Config {
            protocol: Protocol::Soap,
            users: Vec::new(),
            tcp: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            unix: None,
            tls: None,
            failure_delay: Duration::from_secs(1),
            ban_after: 10,
            ban_duration: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(5),
            disabled_features: vec!["imap".to_string(), "pop3".to_string()],
            malformed_hold: Duration::from_secs(60),
            max_request_bytes: 8 << 20,
            log: false,
        }
    }

    /// Gromox MAPI over HTTP mode on `127.0.0.1:0`, no users, Gromox 3.10 defaults.
    pub fn mapihttp() -> Self {
        Config {
            protocol: Protocol::MapiHttp,
            idle_timeout: Duration::from_secs(180),
            ..Config::soap()
        }
    }

    /// Adds a user with no per-user feature overrides.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push(User::new(name, password));
        self
    }

    /// Adds a user with explicit enabled and disabled feature lists.
    pub fn user_with_features(
        mut self,
        name: &str,
        password: &str,
        enabled: &[&str],
        disabled: &[&str],
    ) -> Self {
        let mut user = User::new(name, password);
        user.enabled_features = enabled.iter().map(|f| f.to_string()).collect();
        user.disabled_features = disabled.iter().map(|f| f.to_string()).collect();
        self.users.push(user);
        self
    }

    /// Sets the TCP listen address, or `None` for no TCP listener.
    pub fn tcp(mut self, addr: Option<SocketAddr>) -> Self {
        self.tcp = addr;
        self
    }

    /// Adds a Unix socket listener at `path`.
    pub fn unix(mut self, path: impl Into<PathBuf>) -> Self {
        self.unix = Some(path.into());
        self
    }

    /// Makes the TCP listener speak TLS with this PEM certificate chain and key.
    pub fn tls(mut self, cert_chain_pem: &[u8], key_pem: &[u8]) -> Self {
        self.tls = Some(TlsIdentity {
            cert_chain_pem: cert_chain_pem.to_vec(),
            key_pem: key_pem.to_vec(),
        });
        self
    }

    /// Makes the TCP listener speak TLS with [`TlsIdentity::localhost`].
    pub fn tls_localhost(mut self) -> Self {
        self.tls = Some(TlsIdentity::localhost());
        self
    }

    /// Sets the Gromox failure delay.
    pub fn failure_delay(mut self, delay: Duration) -> Self {
        self.failure_delay = delay;
        self
    }

    /// Sets the Gromox ban threshold (failures per connection) and ban duration.
    pub fn ban(mut self, after: u32, duration: Duration) -> Self {
        self.ban_after = after;
        self.ban_duration = duration;
        self
    }

    /// Sets the keep-alive idle timeout of TCP and TLS connections.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets Kopano's server-wide `disabled_features`.
    pub fn disabled_features(mut self, features: &[&str]) -> Self {
        self.disabled_features = features.iter().map(|f| f.to_string()).collect();
        self
    }

    /// Turns the stderr log of logon decisions on or off.
    pub fn log(mut self, enabled: bool) -> Self {
        self.log = enabled;
        self
    }

    /// Sets how long a request with malformed XML is held before the connection closes.
    pub fn malformed_hold(mut self, hold: Duration) -> Self {
        self.malformed_hold = hold;
        self
    }
}

/// Connection type a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Unix,
    Tls,
}

/// One logon request as the server saw it (Kopano `ns:logon`, or one Gromox Basic
/// authentication attempt).
#[derive(Clone, Debug)]
pub struct LogonRecord {
    /// `szUsername`, or the Basic user name (decoded as UTF-8, lossy).
    pub username: String,
    /// The password bytes that the password check compares: after `{1}:`/`{2}:`
    /// de-obfuscation in Kopano mode, after truncation to 127 bytes in Gromox mode.
    pub password: Vec<u8>,
    /// `ulFlags` (0 in Gromox mode or when absent).
    pub flags: u32,
    /// `ulCapabilities` (0 in Gromox mode or when absent).
    pub capabilities: u32,
    pub version: Option<String>,
    pub client_app: Option<String>,
    pub client_app_version: Option<String>,
    pub client_app_misc: Option<String>,
    /// Whether the request contained a `szImpersonateUser` element (even an empty one).
    pub impersonate_user_present: bool,
    pub transport: Transport,
    /// Peer process id and user id from SO_PEERCRED (Unix socket only).
    pub peer_pid: Option<i32>,
    pub peer_uid: Option<u32>,
    /// Peer address (TCP and TLS only).
    pub peer_addr: Option<SocketAddr>,
    /// Whether the TLS client presented a certificate.
    pub client_cert_presented: bool,
    /// Kopano `er` sent back (0 in Gromox mode).
    pub er: u32,
    /// HTTP status sent back.
    pub http_status: u16,
    /// Whether the logon succeeded without a password check (Kopano "Pipe socket").
    pub peer_uid_bypass: bool,
}

/// Kopano session-table entry.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub user: String,
    /// `127.0.0.1` for TCP and TLS, `*:pid-<pid>` for the Unix socket.
    pub source: String,
    /// The logon had ENHANCED_ICS, so every response on this session is chunked.
    pub enhanced_ics: bool,
}

/// State shared between the [`Server`] handle and its threads.
pub(crate) struct Shared {
    pub config: Config,
    pub fault: Mutex<Fault>,
    pub logons: Mutex<Vec<LogonRecord>>,
    pub counts: Mutex<HashMap<String, usize>>,
    pub sessions: Mutex<HashMap<u64, Session>>,
    /// Gromox MAPI over HTTP sessions from Connect or Bind: `sid` cookie and user name.
    pub mapi_sessions: Mutex<HashMap<String, String>>,
    /// Gromox bans: lower-case user name and the time the ban ends.
    pub bans: Mutex<HashMap<String, Instant>>,
    pub stop: AtomicBool,
    pub connections: net::ConnectionTable,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub server_euid: u32,
}

impl Shared {
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(crate) fn current_fault(&self) -> Fault {
        lock(&self.fault).clone()
    }

    /// Writes one line to stderr if [`Config::log`] is set.
    pub(crate) fn log(&self, line: std::fmt::Arguments<'_>) {
        if self.config.log {
            eprintln!("kopano-standin: {line}");
        }
    }

    pub(crate) fn count(&self, method: &str) {
        *lock(&self.counts).entry(method.to_string()).or_insert(0) += 1;
    }

    /// Sleeps for `duration` in short steps and returns false if the server stopped.
    pub(crate) fn sleep(&self, duration: Duration) -> bool {
        let end = Instant::now() + duration;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }
}

/// Locks a mutex and ignores poisoning, because a panicking connection thread must not
/// take the whole test server down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running stand-in server. Dropping it stops all threads, closes every connection and
/// removes the Unix socket.
pub struct Server {
    shared: Arc<Shared>,
    tcp_addr: Option<SocketAddr>,
    unix_path: Option<PathBuf>,
    listeners: Vec<Arc<net::ListenerSlot>>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds the configured listeners and starts serving in background threads.
    ///
    /// # Errors
    /// Fails if a listener cannot be bound, if neither TCP nor a Unix socket is
    /// configured, or if the TLS certificate or key cannot be loaded.
    pub fn start(config: Config) -> std::io::Result<Server> {
        if config.tcp.is_none() && config.unix.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no listener configured: set Config::tcp or Config::unix",
            ));
        }
        let tls = match &config.tls {
            Some(identity) => Some(tls::server_config(identity)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            config: config.clone(),
            fault: Mutex::new(Fault::None),
            logons: Mutex::new(Vec::new()),
            counts: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            mapi_sessions: Mutex::new(HashMap::new()),
            bans: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            connections: net::ConnectionTable::default(),
            tls,
            // SAFETY: geteuid has no preconditions and cannot fail.
            server_euid: unsafe { libc::geteuid() },
        });

        let mut server = Server {
            shared: shared.clone(),
            tcp_addr: None,
            unix_path: None,
            listeners: Vec::new(),
            threads: Vec::new(),
        };
        if let Some(addr) = config.tcp {
            let slot = Arc::new(net::ListenerSlot::bind_tcp(addr)?);
            server.tcp_addr = slot.tcp_addr();
            let transport = if config.tls.is_some() { Transport::Tls } else { Transport::Tcp };
            server.threads.push(net::spawn_accept_loop(shared.clone(), slot.clone(), transport));
            server.listeners.push(slot);
        }
        if let Some(path) = &config.unix {
            let slot = Arc::new(net::ListenerSlot::bind_unix(path)?);
            server.unix_path = Some(path.clone());
            server.threads.push(net::spawn_accept_loop(shared.clone(), slot.clone(), Transport::Unix));
            server.listeners.push(slot);
        }
        Ok(server)
    }

    /// Address of the TCP (or TLS) listener, with the real port.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// Path of the Unix socket listener.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// URL of the TCP listener: `http://127.0.0.1:PORT/kopano` in Kopano mode,
    /// `http://127.0.0.1:PORT/` in Gromox mode, `https` with TLS. Falls back to
    /// [`Server::unix_url`] when there is no TCP listener.
    pub fn url(&self) -> String {
        let Some(addr) = self.tcp_addr else {
            return self.unix_url().unwrap_or_default();
        };
        let scheme = if self.shared.tls.is_some() { "https" } else { "http" };
        let path = match self.shared.config.protocol {
            Protocol::Soap => "/kopano",
            Protocol::MapiHttp => "/",
        };
        format!("{scheme}://{addr}{path}")
    }

    /// URL of the Unix socket listener, `file:///path`.
    pub fn unix_url(&self) -> Option<String> {
        self.unix_path.as_ref().map(|path| format!("file://{}", path.display()))
    }

    /// Switches the fault mode. It applies to every request that starts after this call;
    /// [`Fault::Refuse`] closes the listeners before this call returns, and any other mode
    /// reopens them on the same address.
    pub fn set_fault(&self, fault: Fault) {
        let refuse = matches!(fault, Fault::Refuse);
        *lock(&self.shared.fault) = fault;
        for slot in &self.listeners {
            if refuse {
                slot.close();
            } else if let Err(error) = slot.reopen() {
                eprintln!("kopano-standin: reopening the listener failed: {error}");
            }
        }
    }

    /// Logon requests received so far, oldest first.
    pub fn logons(&self) -> Vec<LogonRecord> {
        lock(&self.shared.logons).clone()
    }

    /// Number of live sessions: Kopano's session table, or the Gromox sessions that MAPI
    /// over HTTP Connect and Bind requests created (a PING creates none).
    pub fn registered_sessions(&self) -> usize {
        lock(&self.shared.sessions).len() + lock(&self.shared.mapi_sessions).len()
    }

    /// Number of requests received for a method: `logon`, `logoff`, `getUser`, any other
    /// SOAP method name, or a MAPI over HTTP `X-RequestType` such as `PING`.
    pub fn request_count(&self, method: &str) -> usize {
        lock(&self.shared.counts).get(method).copied().unwrap_or(0)
    }

    /// Number of connections currently open.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for slot in &self.listeners {
            slot.close();
        }
        self.shared.connections.shutdown_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn server_is_send_and_sync() {
        assert_send_sync::<super::Server>();
    }
}
