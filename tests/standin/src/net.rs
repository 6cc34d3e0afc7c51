//! Listeners, accepted connections and their peer identity (address, SO_PEERCRED, TLS
//! client certificate). Protocol handling lives in `soap` and `mapihttp`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{lock, Fault, Protocol, Shared, Transport};

/// How often an idle accept loop looks at the stop flag and the listener slot.
const ACCEPT_POLL: Duration = Duration::from_millis(25);

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }
}

/// Where a listener binds, so that it can be closed ([`Fault::Refuse`]) and reopened.
enum BindAddress {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A listener that can be closed and reopened on the same address at run time.
pub(crate) struct ListenerSlot {
    address: BindAddress,
    listener: Mutex<Option<Listener>>,
}

impl ListenerSlot {
    pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("binding the TCP listener on {addr} failed: {error}; choose a free loopback port or port 0"),
            )
        })?;
        let bound = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        Ok(ListenerSlot {
            address: BindAddress::Tcp(bound),
            listener: Mutex::new(Some(Listener::Tcp(listener))),
        })
    }

    pub(crate) fn bind_unix(path: &Path) -> io::Result<Self> {
        let listener = bind_unix_listener(path).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "binding the Unix socket {} failed: {error}; check that its directory exists and is writable",
                    path.display()
                ),
            )
        })?;
        Ok(ListenerSlot {
            address: BindAddress::Unix(path.to_path_buf()),
            listener: Mutex::new(Some(Listener::Unix(listener))),
        })
    }

    pub(crate) fn tcp_addr(&self) -> Option<SocketAddr> {
        match self.address {
            BindAddress::Tcp(addr) => Some(addr),
            BindAddress::Unix(_) => None,
        }
    }

    /// Closes the listening socket. A Unix socket file stays in place, so clients get
    /// ECONNREFUSED as with a crashed server, not ENOENT.
    pub(crate) fn close(&self) {
        lock(&self.listener).take();
    }

    /// Binds again after [`ListenerSlot::close`]; does nothing if the listener is open.
    pub(crate) fn reopen(&self) -> io::Result<()> {
        let mut slot = lock(&self.listener);
        if slot.is_some() {
            return Ok(());
        }
        *slot = Some(match &self.address {
            BindAddress::Tcp(addr) => {
                let listener = TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Listener::Tcp(listener)
            }
            BindAddress::Unix(path) => Listener::Unix(bind_unix_listener(path)?),
        });
        Ok(())
    }

    /// Waits up to [`ACCEPT_POLL`] for a connection and accepts it.
    fn accept(&self) -> Option<Accepted> {
        let slot = lock(&self.listener);
        let listener = match slot.as_ref() {
            Some(listener) => listener,
            None => {
                drop(slot);
                std::thread::sleep(ACCEPT_POLL);
                return None;
            }
        };
        let mut pollfd = libc::pollfd { fd: listener.fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: pollfd points to one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, ACCEPT_POLL.as_millis() as libc::c_int) };
        if ready <= 0 {
            return None;
        }
        match listener {
            Listener::Tcp(l) => l.accept().ok().map(|(stream, addr)| Accepted::Tcp(stream, addr)),
            Listener::Unix(l) => l.accept().ok().map(|(stream, _)| Accepted::Unix(stream)),
        }
    }
}

fn bind_unix_listener(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let listener = UnixListener::bind(path)?;
    // Mode 0666 like kopano-server's main socket, so that every local user can connect.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

/// Open connections, kept so that dropping the server can shut them all down.
#[derive(Default)]
pub(crate) struct ConnectionTable {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Socket>>,
}

impl ConnectionTable {
    fn insert(&self, socket: Socket) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        lock(&self.open).insert(id, socket);
        id
    }

    fn remove(&self, id: u64) {
        lock(&self.open).remove(&id);
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.open).len()
    }

    pub(crate) fn shutdown_all(&self) {
        for socket in lock(&self.open).values() {
            socket.shutdown();
        }
    }
}

/// A clone of an accepted socket, used only to shut it down.
pub(crate) enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    fn shutdown(&self) {
        let _ = match self {
            Socket::Tcp(s) => s.shutdown(Shutdown::Both),
            Socket::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub transport: Transport,
    pub addr: Option<SocketAddr>,
    pub pid: Option<i32>,
    pub uid: Option<u32>,
    pub client_cert: bool,
}

impl Peer {
    /// Session source as kopano-server records it: the peer IP for TCP and TLS,
    /// `*:pid-<pid>` for the Unix socket.
    pub(crate) fn source(&self) -> String {
        match (self.transport, self.addr, self.pid) {
            (Transport::Unix, _, Some(pid)) => format!("*:pid-{pid}"),
            (Transport::Unix, _, None) => "*:pid-unknown".to_string(),
            (_, Some(addr), _) => addr.ip().to_string(),
            (_, None, _) => "unknown".to_string(),
        }
    }
}

/// A byte stream of any transport.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Stream {
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Unix(s) => s.set_read_timeout(timeout),
            Stream::Tls(s) => s.sock.set_read_timeout(timeout),
        }
    }

    /// Closes the connection with a TCP RST where possible (SO_LINGER 0), else normally.
    pub(crate) fn reset(self) {
        let tcp = match &self {
            Stream::Tcp(s) => Some(s),
            Stream::Tls(s) => Some(&s.sock),
            Stream::Unix(_) => None,
        };
        if let Some(tcp) = tcp {
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: the fd is open and linger is a valid struct of the given size.
            unsafe {
                libc::setsockopt(
                    tcp.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    &linger as *const libc::linger as *const libc::c_void,
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
        drop(self);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Reads the peer's pid and uid with SO_PEERCRED.
fn peer_credentials(stream: &UnixStream) -> Option<(i32, u32)> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    (rc == 0).then_some((cred.pid, cred.uid))
}

pub(crate) fn spawn_accept_loop(
    shared: Arc<Shared>,
    slot: Arc<ListenerSlot>,
    transport: Transport,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !shared.stopped() {
            let Some(accepted) = slot.accept() else { continue };
            let shared = shared.clone();
            std::thread::spawn(move || serve_connection(shared, accepted, transport));
        }
    })
}

fn serve_connection(shared: Arc<Shared>, accepted: Accepted, transport: Transport) {
    let (stream, socket, peer) = match accepted {
        Accepted::Tcp(stream, addr) => {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_nodelay(true);
            let Ok(clone) = stream.try_clone() else { return };
            let peer = Peer { transport, addr: Some(addr), pid: None, uid: None, client_cert: false };
            (Stream::Tcp(stream), Socket::Tcp(clone), peer)
        }
        Accepted::Unix(stream) => {
            let _ = stream.set_nonblocking(false);
            let Ok(clone) = stream.try_clone() else { return };
            let credentials = peer_credentials(&stream);
            let peer = Peer {
                transport,
                addr: None,
                pid: credentials.map(|c| c.0),
                uid: credentials.map(|c| c.1),
                client_cert: false,
            };
            (Stream::Unix(stream), Socket::Unix(clone), peer)
        }
    };
    let id = shared.connections.insert(socket);
    if shared.stopped() {
        // Drop may have shut the table down just before this connection was added.
        shared.connections.remove(id);
        return;
    }
    run_connection(&shared, stream, peer);
    shared.connections.remove(id);
}

fn run_connection(shared: &Arc<Shared>, stream: Stream, mut peer: Peer) {
    let idle = match peer.transport {
        Transport::Unix => None,
        Transport::Tcp | Transport::Tls => Some(shared.config.idle_timeout),
    };
    let stream = match (peer.transport, stream) {
        (Transport::Tls, Stream::Tcp(tcp)) => {
            if matches!(shared.current_fault(), Fault::TlsHandshakeStall) {
                crate::faults::hold_until_closed(shared, Stream::Tcp(tcp));
                return;
            }
            match crate::tls::handshake(shared, tcp, idle) {
                Some((tls, client_cert)) => {
                    peer.client_cert = client_cert;
                    Stream::Tls(Box::new(tls))
                }
                None => return,
            }
        }
        (_, stream) => stream,
    };
    let _ = stream.set_read_timeout(idle);
    let mut connection = crate::http::Connection::new(stream);
    match shared.config.protocol {
        Protocol::Soap => crate::soap::serve(shared, &mut connection, &peer),
        Protocol::MapiHttp => crate::mapihttp::serve(shared, &mut connection, &peer),
    }
}
