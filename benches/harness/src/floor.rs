//! The floor: a minimal client that sends the module's own logon request bytes
//! over a new connection per logon and reads the reply, plus the proxy that
//! records those bytes from one real module call.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Reads one HTTP/1.1 message (head and a `Content-Length` body) from `stream`.
pub fn read_message(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut message = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let mut expected: Option<usize> = None;
    loop {
        if expected.is_none() {
            if let Some(end) = find(&message, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&message[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    .unwrap_or(0);
                expected = Some(end + 4 + length);
            }
        }
        if let Some(total) = expected {
            if message.len() >= total {
                message.truncate(total);
                return Ok(message);
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed mid-message"));
        }
        message.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Returns whether a reply is an HTTP 200 with `er` 0.
pub fn is_success(reply: &[u8]) -> bool {
    reply.starts_with(b"HTTP/1.1 200") && find(reply, b"<er>0</er>").is_some()
}

/// Listening address of a stand-in.
#[derive(Clone, Debug)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

fn connect(endpoint: &Endpoint) -> std::io::Result<Box<dyn ReadWrite>> {
    Ok(match endpoint {
        Endpoint::Tcp(addr) => Box::new(TcpStream::connect(addr)?),
        Endpoint::Unix(path) => Box::new(UnixStream::connect(path)?),
    })
}

pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// Sends `request` over a new plain connection and reads the reply.
pub fn logon_plain(endpoint: &Endpoint, request: &[u8]) -> std::io::Result<bool> {
    let mut stream = connect(endpoint)?;
    stream.write_all(request)?;
    Ok(is_success(&read_message(&mut stream)?))
}

/// Sends `request` like [`logon_plain`], but the head and the body in two
/// writes, as ureq 3 does, to show what the second write costs.
pub fn logon_plain_two_writes(endpoint: &Endpoint, request: &[u8]) -> std::io::Result<bool> {
    let head_end = find(request, b"\r\n\r\n").map(|i| i + 4).unwrap_or(request.len());
    // ureq sets TCP_NODELAY, so the body goes out as its own segment.
    let mut stream: Box<dyn ReadWrite> = match endpoint {
        Endpoint::Tcp(addr) => {
            let stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            Box::new(stream)
        }
        Endpoint::Unix(path) => Box::new(UnixStream::connect(path)?),
    };
    stream.write_all(&request[..head_end])?;
    stream.write_all(&request[head_end..])?;
    Ok(is_success(&read_message(&mut stream)?))
}

/// Sends `request` over loopback TCP with the system calls that ureq 3.5 makes
/// for one request, as `strace` shows them: a non-blocking connect and `poll`,
/// `TCP_NODELAY`, two 128 KiB buffers, a send timeout before each of two writes,
/// a receive timeout before the read, and a one-byte non-blocking read that
/// checks whether the connection could be reused.
pub fn logon_tcp_like_ureq(addr: SocketAddr, request: &[u8]) -> std::io::Result<bool> {
    use std::os::fd::FromRawFd;

    let SocketAddr::V4(v4) = addr else { return Err(std::io::Error::other("IPv4 only")) };
    let head_end = find(request, b"\r\n\r\n").map(|i| i + 4).unwrap_or(request.len());
    // SAFETY: plain system calls on a descriptor owned here; the sockaddr is
    // fully initialised, and the descriptor passes to a TcpStream that closes it.
    let mut stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let mut on: libc::c_int = 1;
        libc::ioctl(fd, libc::FIONBIO, &mut on);
        let mut sockaddr: libc::sockaddr_in = std::mem::zeroed();
        sockaddr.sin_family = libc::AF_INET as libc::sa_family_t;
        sockaddr.sin_port = v4.port().to_be();
        sockaddr.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
        let rc = libc::connect(
            fd,
            &sockaddr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(std::io::Error::last_os_error());
        }
        let mut off: libc::c_int = 0;
        libc::ioctl(fd, libc::FIONBIO, &mut off);
        let mut poll = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        libc::poll(&mut poll, 1, 3000);
        stream
    };
    stream.set_nodelay(true)?;
    let input = vec![0u8; 128 * 1024];
    let output = vec![0u8; 128 * 1024];
    let timeout = Some(std::time::Duration::from_secs(10));
    stream.set_write_timeout(timeout)?;
    stream.write_all(&request[..head_end])?;
    stream.set_write_timeout(timeout)?;
    stream.write_all(&request[head_end..])?;
    stream.set_read_timeout(timeout)?;
    let reply = read_message(&mut stream)?;
    stream.set_nonblocking(true)?;
    let mut probe = [0u8; 1];
    let _ = stream.read(&mut probe);
    drop((input, output));
    Ok(is_success(&reply))
}

/// Sends `request` over a new TLS connection with a full handshake: the CA file
/// is read and a fresh client configuration built for every logon, as a module
/// loaded anew for each PAM transaction must do.
pub fn logon_tls(addr: SocketAddr, cafile: &Path, request: &[u8]) -> std::io::Result<bool> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(cafile).map_err(std::io::Error::other)? {
        roots.add(certificate.map_err(std::io::Error::other)?).map_err(std::io::Error::other)?;
    }
    // The module uses ring too; rustls 0.23.4x deprecates its constructor only
    // because ring has no post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let name = ServerName::IpAddress(addr.ip().into());
    let connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(connection, TcpStream::connect(addr)?);
    stream.write_all(request)?;
    Ok(is_success(&read_message(&mut stream)?))
}

/// A listener that forwards one connection to `upstream` and records the
/// request bytes, to learn what the module sends.
pub struct Recorder {
    pub url: String,
    thread: std::thread::JoinHandle<Vec<u8>>,
}

impl Recorder {
    /// Listens on loopback TCP when `unix` is `None`, else on that socket path.
    pub fn start(upstream: Endpoint, unix: Option<&Path>) -> Recorder {
        let (url, accept): (String, Box<dyn FnOnce() -> Box<dyn ReadWrite> + Send>) = match unix {
            None => {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind recorder");
                let url = format!("http://{}/kopano", listener.local_addr().unwrap());
                (url, Box::new(move || Box::new(listener.accept().expect("accept").0)))
            }
            Some(path) => {
                let _ = std::fs::remove_file(path);
                let listener = UnixListener::bind(path).expect("bind recorder socket");
                (format!("file://{}", path.display()), Box::new(move || Box::new(listener.accept().expect("accept").0)))
            }
        };
        let thread = std::thread::spawn(move || {
            let mut client = accept();
            let request = read_message(&mut client).expect("read the module's request");
            let mut server = connect(&upstream).expect("connect to the stand-in");
            server.write_all(&request).expect("forward request");
            let reply = read_message(&mut server).expect("read the stand-in's reply");
            client.write_all(&reply).expect("forward reply");
            request
        });
        Recorder { url, thread }
    }

    /// Returns the recorded request.
    pub fn request(self) -> Vec<u8> {
        self.thread.join().expect("recorder thread")
    }
}
