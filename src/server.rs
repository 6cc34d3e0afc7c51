//! Server URLs as given by `socket=`: `http://`, `https://`, or `file:///path` for
//! HTTP over a Unix socket.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ureq::http::Uri;

/// Longest Unix socket path that fits `sun_path` (108 bytes including the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// One server to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerUrl {
    /// HTTP or HTTPS over TCP.
    Http { url: String, host: String, port: u16, tls: bool },
    /// HTTP over a Unix socket; `url` is the text as configured.
    Unix { url: String, path: PathBuf },
}

impl ServerUrl {
    /// Parses and checks a `socket=` value.
    ///
    /// # Errors
    ///
    /// Returns a message naming the value and what is wrong with it.
    pub fn parse(text: &str) -> Result<ServerUrl, String> {
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "invalid server URL {text:?}: it contains spaces or control characters; give each server its own socket= argument, or list them separated by spaces in the configuration file"
            ));
        }
        if let Some(path) = text.strip_prefix("file://") {
            return Self::parse_unix(text, path);
        }
        let lower = text.to_ascii_lowercase();
        let tls = if lower.starts_with("https://") {
            true
        } else if lower.starts_with("http://") {
            false
        } else {
            return Err(format!(
                "invalid server URL {text:?}: use http://HOST:PORT/, https://HOST:PORT/ or file:///PATH/TO/SOCKET"
            ));
        };
        let uri: Uri = text.parse().map_err(|e| format!("invalid server URL {text:?}: {e}"))?;
        let authority = uri.authority().ok_or_else(|| format!("invalid server URL {text:?}: no host name"))?;
        if let Some((_, host_part)) = authority.as_str().rsplit_once('@') {
            // The part before @ may be a password, so the message leaves it out.
            return Err(format!(
                "invalid server URL with user information before @{host_part}: user names or passwords in the URL are not supported; remove the part before @"
            ));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() {
            return Err(format!("invalid server URL {text:?}: no host name"));
        }
        if uri.query().is_some() {
            return Err(format!("invalid server URL {text:?}: a query string is not supported; remove the part after ?"));
        }
        let port = match port_text(authority.as_str()) {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(port) => match port.parse::<u16>() {
                Ok(number) if number > 0 => number,
                _ => return Err(format!("invalid server URL {text:?}: port {port:?} is not a number from 1 to 65535")),
            },
        };
        Ok(ServerUrl::Http { url: text.to_string(), host, port, tls })
    }

    fn parse_unix(text: &str, path: &str) -> Result<ServerUrl, String> {
        if !path.starts_with('/') {
            return Err(format!(
                "invalid server URL {text:?}: a Unix socket needs an absolute path, such as file:///run/kopano/server.sock"
            ));
        }
        if path.len() > MAX_SOCKET_PATH {
            return Err(format!(
                "invalid server URL {text:?}: the socket path is {} bytes long, the limit is {MAX_SOCKET_PATH}",
                path.len()
            ));
        }
        Ok(ServerUrl::Unix { url: text.to_string(), path: PathBuf::from(path) })
    }

    /// Tells whether the server is this machine: a Unix socket, `localhost`, or a
    /// loopback address.
    pub fn is_local(&self) -> bool {
        match self {
            ServerUrl::Unix { .. } => true,
            ServerUrl::Http { host, .. } => {
                host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
            }
        }
    }

    /// Tells whether traffic to this server is encrypted (https) or never leaves the
    /// machine (Unix socket).
    pub fn is_tls(&self) -> bool {
        matches!(self, ServerUrl::Http { tls: true, .. })
    }
}

/// Returns the text after the port colon of an authority (`host:port`,
/// `[v6]:port`), or `None` when there is no colon.
fn port_text(authority: &str) -> Option<&str> {
    let after_host = match authority.rfind(']') {
        Some(end) => &authority[end + 1..],
        None => authority,
    };
    after_host.rfind(':').map(|colon| &after_host[colon + 1..])
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerUrl::Http { url, .. } | ServerUrl::Unix { url, .. } => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_http_with_port() {
        let s = ServerUrl::parse("http://kopano.example.test:236/kopano").unwrap();
        assert_eq!(
            s,
            ServerUrl::Http {
                url: "http://kopano.example.test:236/kopano".into(),
                host: "kopano.example.test".into(),
                port: 236,
                tls: false
            }
        );
    }

    #[test]
    fn parse_https_default_port() {
        match ServerUrl::parse("https://mail.example.test/").unwrap() {
            ServerUrl::Http { port, tls, .. } => {
                assert_eq!(port, 443);
                assert!(tls);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_ipv6_literal() {
        match ServerUrl::parse("http://[::1]:236/").unwrap() {
            ServerUrl::Http { host, port, .. } => {
                assert_eq!(host, "::1");
                assert_eq!(port, 236);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_unix_socket() {
        let s = ServerUrl::parse("file:///run/kopano/server.sock").unwrap();
        assert_eq!(s, ServerUrl::Unix { url: "file:///run/kopano/server.sock".into(), path: "/run/kopano/server.sock".into() });
        assert!(s.is_local());
    }

    #[test]
    fn parse_rejects_relative_socket() {
        assert!(ServerUrl::parse("file://run/kopano.sock").is_err());
    }

    #[test]
    fn parse_rejects_long_socket_path() {
        let long = format!("file:///{}", "a".repeat(120));
        assert!(ServerUrl::parse(&long).is_err());
    }

    #[test]
    fn parse_rejects_other_schemes() {
        assert!(ServerUrl::parse("ftp://x/").is_err());
        assert!(ServerUrl::parse("localhost:236").is_err());
    }

    #[test]
    fn parse_rejects_bad_ports() {
        for url in ["http://127.0.0.1:99999/", "http://127.0.0.1:-5/", "http://127.0.0.1:/", "http://127.0.0.1:0/", "http://[::1]:x/"] {
            assert!(ServerUrl::parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn parse_rejects_userinfo() {
        let error = ServerUrl::parse("http://user:Sekret99@host/").unwrap_err();
        assert!(!error.contains("Sekret99"), "{error}");
        assert!(error.contains("@host"), "{error}");
    }

    #[test]
    fn parse_rejects_spaces() {
        assert!(ServerUrl::parse("http://host /").is_err());
    }

    #[test]
    fn is_local_for_loopback() {
        assert!(ServerUrl::parse("http://127.0.0.1:236/").unwrap().is_local());
        assert!(ServerUrl::parse("http://localhost:236/").unwrap().is_local());
        assert!(ServerUrl::parse("http://[::1]:236/").unwrap().is_local());
        assert!(!ServerUrl::parse("http://192.0.2.1:236/").unwrap().is_local());
    }
}
