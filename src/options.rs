//! Module settings: their names, defaults, and the parser for pam.d arguments.
//!
//! `OPTIONS` is the one list of setting names; the man page and README tests
//! compare against it.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::server::ServerUrl;

/// Every setting name, as an argument in pam.d and a key in the configuration file.
pub const OPTION_NAMES: &[&str] = &[
    "socket",
    "protocol",
    "config",
    "timeout",
    "connect_timeout",
    "cafile",
    "service",
    "strip_realm",
    "lowercase",
    "default_domain",
    "ignore_authinfo_unavail",
    "state_file",
    "state_ttl",
    "throttle_failures",
    "throttle_window",
    "throttle_file",
    "try_first_pass",
    "use_first_pass",
    "quiet",
    "debug",
];

/// The configuration file read when no `config=` argument names another.
pub const DEFAULT_CONFIG: &str = "/etc/security/pam_mapi.conf";

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// The server URL used when no `socket=` is given.
pub const DEFAULT_SOCKET: &str = "http://localhost:236/kopano";
/// The total deadline for one authentication. saslauthd and the MTA behind it wait
/// for as long as the module takes, so the module bounds itself.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound for one connection attempt.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest `timeout=` accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a run of failed logons counts, and how long a throttled pair waits.
pub const DEFAULT_THROTTLE_WINDOW: Duration = Duration::from_secs(300);
/// The longest `throttle_window=` accepted: one day.
pub const MAX_THROTTLE_WINDOW: Duration = Duration::from_secs(86_400);
/// Shortest `timeout=` with `protocol=mapihttp`: Gromox delays every failed logon by
/// 1 s, and the reply to a wrong password must arrive within the deadline.
pub const MIN_MAPIHTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest `throttle_failures=` accepted.
pub const MAX_THROTTLE_FAILURES: u32 = 1000;

/// The protocol the servers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Kopano/Zarafa "MAPI in SOAP" (`ns:logon` in `urn:zarafa`).
    Soap,
    /// MAPI over HTTP (grommunio Gromox, Exchange Server 2013 and later).
    MapiHttp,
}

/// The parsed settings of one `pam_sm_*` call.
#[derive(Debug, Clone)]
pub struct Settings {
    pub servers: Vec<ServerUrl>,
    pub protocol: Protocol,
    pub config: Option<PathBuf>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub cafile: Option<PathBuf>,
    pub service: Vec<String>,
    pub strip_realm: bool,
    pub lowercase: bool,
    pub default_domain: Option<String>,
    pub ignore_authinfo_unavail: bool,
    pub state_file: PathBuf,
    pub state_ttl: Duration,
    /// Failed logons of one (user, rhost) pair before its attempts are rejected
    /// without asking the server; 0 turns throttling off.
    pub throttle_failures: u32,
    pub throttle_window: Duration,
    pub throttle_file: PathBuf,
    pub try_first_pass: bool,
    pub use_first_pass: bool,
    pub quiet: bool,
    pub debug: bool,
    /// Origin of each setting that is not at its default: a file path or "argument".
    pub origins: BTreeMap<String, String>,
}

/// An invalid argument or configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Feature names defined by kopano-server (`kopano_features[]` in KC 11).
pub const KNOWN_FEATURES: &[&str] = &["imap", "pop3", "mobile", "outlook", "webapp"];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            servers: Vec::new(),
            protocol: Protocol::Soap,
            config: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            cafile: None,
            service: Vec::new(),
            strip_realm: false,
            lowercase: false,
            default_domain: None,
            ignore_authinfo_unavail: false,
            state_file: PathBuf::from("/run/pam_mapi/servers.state"),
            state_ttl: Duration::from_secs(30),
            throttle_failures: 0,
            throttle_window: DEFAULT_THROTTLE_WINDOW,
            throttle_file: PathBuf::from("/run/pam_mapi/throttle.state"),
            try_first_pass: false,
            use_first_pass: false,
            quiet: false,
            debug: false,
            origins: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Parses the module arguments of a pam.d line.
    ///
    /// # Errors
    ///
    /// Returns a message naming the argument and the fix for an unknown or
    /// malformed argument.
    pub fn from_args(args: &[String]) -> Result<Settings, SettingsError> {
        let mut settings = Settings::default();
        for arg in args {
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (arg.as_str(), None),
            };
            settings.apply(name, value, &format!("module argument {arg:?}"))?;
            settings.origins.insert(name.to_string(), "argument".into());
        }
        settings.finish()
    }

    /// Reads the configuration file (`config=` or the default one), then applies
    /// the module arguments on top of it. A `socket=` argument replaces the file's
    /// server list instead of adding to it.
    ///
    /// # Errors
    ///
    /// Returns a message naming the file, the key or argument, and the fix.
    pub fn load(args: &[String]) -> Result<Settings, SettingsError> {
        Settings::load_unchecked(args)?.finish()
    }

    /// Reads the file and arguments like [`Settings::load`], checking every value
    /// but not the combinations that only the auth phase needs (for example
    /// `protocol=mapihttp` in the file with `socket=` only on the auth line). The
    /// account phase uses this.
    ///
    /// # Errors
    ///
    /// Returns a message naming the file, the key or argument, and the fix.
    pub fn load_unchecked(args: &[String]) -> Result<Settings, SettingsError> {
        let mut settings = Settings::default();
        let named = args.iter().rev().find_map(|a| a.strip_prefix("config="));
        let path = match named {
            Some("") => return Err(SettingsError("module argument \"config=\": missing value; expected a file path".into())),
            Some(path) => PathBuf::from(path),
            None => PathBuf::from(DEFAULT_CONFIG),
        };
        if let Some(entries) = read_config_file(&path, named.is_some())? {
            let origin = path.display().to_string();
            for (key, value) in entries {
                if key == "config" {
                    return Err(SettingsError(format!(
                        "{origin}: key \"config\" is only valid as a module argument; remove it from the file"
                    )));
                }
                settings.apply_file_value(&key, &value, &origin)?;
            }
            settings.config = Some(path);
        }

        let file_servers = settings.servers.len();
        let mut socket_args = 0;
        for arg in args {
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (arg.as_str(), None),
            };
            if name == "socket" && socket_args == 0 && file_servers > 0 {
                settings.servers.clear();
            }
            if name == "socket" {
                socket_args += 1;
            }
            settings.apply(name, value, &format!("module argument {arg:?}"))?;
            settings.origins.insert(name.to_string(), "argument".into());
        }
        Ok(settings)
    }

    /// Applies one key of the configuration file. Flags take yes/no there, and
    /// `socket` takes a space-separated list.
    fn apply_file_value(&mut self, key: &str, value: &str, origin: &str) -> Result<(), SettingsError> {
        let what = format!("{origin}: key {key:?}");
        if key == "socket" {
            let urls: Vec<&str> = value.split_whitespace().collect();
            if urls.is_empty() {
                return Err(SettingsError(format!("{what}: missing value; expected one or more server URLs")));
            }
            for url in urls {
                self.apply("socket", Some(url), &what)?;
            }
        } else {
            self.apply(key, Some(value), &what)?;
        }
        self.origins.insert(key.to_string(), origin.to_string());
        Ok(())
    }

    /// Tells where a setting's value came from: "default", the file path, or "argument".
    pub fn origin(&self, name: &str) -> &str {
        self.origins.get(name).map(String::as_str).unwrap_or("default")
    }

    /// Applies one setting. `origin` names where it came from for error messages.
    pub fn apply(&mut self, name: &str, value: Option<&str>, origin: &str) -> Result<(), SettingsError> {
        match name {
            "socket" => {
                let url = required(value, origin, "a server URL such as http://localhost:236/kopano")?;
                let server = ServerUrl::parse(url).map_err(|e| SettingsError(format!("{origin}: {e}")))?;
                self.servers.push(server);
            }
            "protocol" => {
                self.protocol = match required(value, origin, "soap or mapihttp")? {
                    "soap" => Protocol::Soap,
                    "mapihttp" => Protocol::MapiHttp,
                    other => {
                        return Err(SettingsError(format!(
                            "{origin}: unknown protocol {other:?}; use protocol=soap (Kopano, Zarafa) or protocol=mapihttp (grommunio, Exchange)"
                        )))
                    }
                }
            }
            "config" => self.config = Some(PathBuf::from(required(value, origin, "a file path")?)),
            "timeout" => self.timeout = seconds(value, origin)?,
            "connect_timeout" => self.connect_timeout = seconds(value, origin)?,
            "cafile" => self.cafile = Some(absolute_path(required(value, origin, "a PEM file path")?, origin)?),
            "service" => self.service = features(required(value, origin, "features such as imap|pop3")?, origin)?,
            "strip_realm" => self.strip_realm = flag(value, origin)?,
            "lowercase" => self.lowercase = flag(value, origin)?,
            "default_domain" => {
                let domain = required(value, origin, "a mail domain such as example.com")?;
                if domain.contains(['@', ':']) || domain.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(SettingsError(format!(
                        "{origin}: invalid domain {domain:?}; give the bare domain, such as default_domain=example.com"
                    )));
                }
                self.default_domain = Some(domain.to_string());
            }
            "ignore_authinfo_unavail" => self.ignore_authinfo_unavail = flag(value, origin)?,
            "state_file" => self.state_file = absolute_path(required(value, origin, "a file path")?, origin)?,
            "state_ttl" => self.state_ttl = seconds(value, origin)?,
            "throttle_failures" => self.throttle_failures = whole_number(value, origin, 0, MAX_THROTTLE_FAILURES)?,
            "throttle_window" => {
                let max = MAX_THROTTLE_WINDOW.as_secs() as u32;
                self.throttle_window = Duration::from_secs(whole_number(value, origin, 1, max)?.into());
            }
            "throttle_file" => self.throttle_file = absolute_path(required(value, origin, "a file path")?, origin)?,
            "try_first_pass" => self.try_first_pass = flag(value, origin)?,
            "use_first_pass" => self.use_first_pass = flag(value, origin)?,
            "quiet" => self.quiet = flag(value, origin)?,
            "debug" => self.debug = flag(value, origin)?,
            _ => {
                return Err(SettingsError(format!(
                    "{origin}: unknown setting {name:?}; valid settings are {}",
                    OPTION_NAMES.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Fills in defaults and checks combinations.
    fn finish(mut self) -> Result<Settings, SettingsError> {
        if self.protocol == Protocol::MapiHttp && self.servers.is_empty() {
            return Err(SettingsError(
                "protocol=mapihttp needs socket= with the server's base URL, such as socket=https://mail.example.com/; the default socket= is a Kopano URL".into(),
            ));
        }
        if self.protocol == Protocol::MapiHttp {
            if let Some(server) = self.servers.iter().find(|s| !s.is_tls() && !s.is_local()) {
                return Err(SettingsError(format!(
                    "socket={server}: protocol=mapihttp sends the password in an HTTP Basic Authorization header, which plain http carries unencrypted; use https://, or http:// only to a loopback address or a Unix socket"
                )));
            }
        }
        if self.servers.is_empty() {
            self.servers.push(ServerUrl::parse(DEFAULT_SOCKET).expect("the default URL parses"));
        }
        if self.connect_timeout > self.timeout {
            self.connect_timeout = self.timeout;
        }
        if self.protocol == Protocol::MapiHttp && self.timeout < MIN_MAPIHTTP_TIMEOUT {
            return Err(SettingsError(format!(
                "{}: timeout={} is too short for protocol=mapihttp: Gromox replies to a wrong password only after 1 s, so it would end as a time-out, uncounted by throttling; use timeout={} or more",
                self.origin("timeout"),
                self.timeout.as_secs_f64(),
                MIN_MAPIHTTP_TIMEOUT.as_secs()
            )));
        }
        let state = resolved(&self.state_file);
        let throttle = resolved(&self.throttle_file);
        let mut throttle_lock = throttle.clone().into_os_string();
        throttle_lock.push(".lock");
        if state == throttle || state.as_os_str() == throttle_lock {
            return Err(SettingsError(format!(
                "state_file={} ({}) and throttle_file={} ({}) name the same file or its lock file; give each a file of its own",
                self.state_file.display(),
                self.origin("state_file"),
                self.throttle_file.display(),
                self.origin("throttle_file")
            )));
        }
        if self.protocol == Protocol::MapiHttp && !self.service.is_empty() {
            return Err(SettingsError(
                "service= cannot be checked over protocol=mapihttp, which has no feature lists; remove service= or use protocol=soap".into(),
            ));
        }
        Ok(self)
    }
}

/// Returns the path with `.`, `..` and repeated slashes removed, and with its
/// directory resolved through symbolic links when it exists (`/var/run` is often
/// a link to `/run`), for comparing two settings that name files.
fn resolved(path: &Path) -> PathBuf {
    let mut lexical = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    match (lexical.parent(), lexical.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir).map(|dir| dir.join(name)).unwrap_or(lexical),
        _ => lexical,
    }
}

/// Reads and checks the configuration file. Returns `None` when the default file
/// does not exist; a missing file named by `config=` is an error.
fn read_config_file(path: &Path, named: bool) -> Result<Option<Vec<(String, String)>>, SettingsError> {
    let shown = path.display();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => return Ok(None),
        Err(e) => {
            return Err(SettingsError(format!(
                "cannot read configuration file {shown}: {e}; create it or fix the config= argument"
            )))
        }
    };
    if !metadata.is_file() {
        return Err(SettingsError(format!("configuration file {shown} is not a regular file")));
    }
    if metadata.uid() != 0 {
        return Err(SettingsError(format!(
            "configuration file {shown} is owned by uid {}, not root; run: chown root:root {shown}",
            metadata.uid()
        )));
    }
    if metadata.mode() & 0o022 != 0 {
        return Err(SettingsError(format!(
            "configuration file {shown} is writable by group or others (mode {:04o}); run: chmod go-w {shown}",
            metadata.mode() & 0o7777
        )));
    }
    if metadata.len() > MAX_CONFIG_BYTES {
        return Err(SettingsError(format!(
            "configuration file {shown} is {} bytes long, the limit is {MAX_CONFIG_BYTES}",
            metadata.len()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingsError(format!("cannot read configuration file {shown}: {e}")))?;
    parse_config_text(&text, &shown.to_string()).map(Some)
}

/// Parses `key = value` lines with the `config` crate's INI reader; `#` and `;`
/// start comments. Sections are not used, so a key inside one is rejected.
pub fn parse_config_text(text: &str, origin: &str) -> Result<Vec<(String, String)>, SettingsError> {
    use config::{FileFormat, Format};

    // Windows editors may start the file with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    // Format::parse returns the keys as written. The crate's ConfigBuilder would
    // read each key as a path expression instead, and a key such as
    // `a[99999999999]` made it allocate an array of that length and abort the
    // process.
    // The INI reader keeps only the last of repeated keys, so repeats are found here.
    let mut seen = std::collections::BTreeSet::new();
    // The INI reader also ends a line at a lone carriage return, which editors and
    // `cat` do not show, so such a line could hide a setting.
    if text.replace("\r\n", "\n").contains('\r') {
        return Err(SettingsError(format!(
            "{origin}: contains a carriage return that does not end a line; save the file with Unix or Windows line ends"
        )));
    }
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        // The INI reader joins an indented line to the line before it.
        if line.starts_with([' ', '\t']) && !line.trim().is_empty() {
            return Err(SettingsError(format!(
                "{origin}: line {number} is indented; start every setting and comment at the beginning of the line"
            )));
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') || line.starts_with('[') {
            continue;
        }
        // The INI reader takes the first '=' or ':' as the separator.
        let Some(separator) = line.find(['=', ':']) else {
            return Err(SettingsError(format!(
                "{origin}: line {number}: {line:?} has no '='; write \"key = value\", for example \"strip_realm = yes\""
            )));
        };
        if line[separator..].starts_with(':') {
            return Err(SettingsError(format!(
                "{origin}: line {number}: {line:?} uses ':' between key and value; write \"key = value\""
            )));
        }
        let (key, value) = (line[..separator].trim(), line[separator + 1..].trim());
        // The INI reader also decodes escapes in keys, which would hide a repeat.
        if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(SettingsError(format!(
                "{origin}: line {number}: key {key:?} has characters other than letters, digits and '_'; write the key name plain"
            )));
        }
        if !seen.insert(key.to_string()) {
            return Err(SettingsError(format!(
                "{origin}: key {key:?} appears more than once; keep one line (socket takes a space-separated list)"
            )));
        }
        // The INI reader turns backslash sequences into other characters and strips
        // quotes, so the module would use a value other than the one written.
        if value.contains('\\') || value.starts_with('"') || value.starts_with('\'') {
            return Err(SettingsError(format!(
                "{origin}: key {key:?}: value {value:?} contains a backslash or starts with a quote, which this file format would rewrite; write the value plain, without quotes"
            )));
        }
    }
    let table = FileFormat::Ini
        .parse(None, text)
        .map_err(|e| SettingsError(format!("{origin}: cannot parse: {e}; write one \"key = value\" per line")))?;
    let mut entries = Vec::new();
    for (key, value) in table {
        let text = value.into_string().map_err(|_| {
            SettingsError(format!(
                "{origin}: [{key}] sections are not supported; put every key at the top of the file"
            ))
        })?;
        entries.push((key, text));
    }
    Ok(entries)
}

/// Accepts only an absolute path: a relative one would depend on the working
/// directory of whichever daemon loads the module.
fn absolute_path(text: &str, origin: &str) -> Result<PathBuf, SettingsError> {
    if !text.starts_with('/') {
        return Err(SettingsError(format!("{origin}: path {text:?} is not absolute; give a full path starting with /")));
    }
    Ok(PathBuf::from(text))
}

fn required<'a>(value: Option<&'a str>, origin: &str, what: &str) -> Result<&'a str, SettingsError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(SettingsError(format!("{origin}: missing value; expected {what}"))),
    }
}

/// Parses a flag: on when given bare (`debug`) or as `yes`/`true`/`1`, off with `no`/`false`/`0`.
fn flag(value: Option<&str>, origin: &str) -> Result<bool, SettingsError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("yes") | Some("true") | Some("1") | Some("on") => Ok(true),
        Some("no") | Some("false") | Some("0") | Some("off") => Ok(false),
        Some(other) => Err(SettingsError(format!("{origin}: invalid flag value {other:?}; use yes or no"))),
    }
}

/// Parses a positive number of seconds (fractions allowed) up to `MAX_TIMEOUT`.
fn seconds(value: Option<&str>, origin: &str) -> Result<Duration, SettingsError> {
    let text = required(value, origin, "a number of seconds")?;
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT.as_secs_f64() => Ok(Duration::from_secs_f64(s)),
        _ => Err(SettingsError(format!(
            "{origin}: invalid number of seconds {text:?}; give a number greater than 0 and at most {}",
            MAX_TIMEOUT.as_secs()
        ))),
    }
}

/// Parses a whole number from `min` to `max`.
fn whole_number(value: Option<&str>, origin: &str, min: u32, max: u32) -> Result<u32, SettingsError> {
    let text = required(value, origin, "a whole number")?;
    match text.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(SettingsError(format!(
            "{origin}: invalid number {text:?}; give a whole number from {min} to {max}"
        ))),
    }
}

/// Parses `imap|pop3|...` into lower-case feature names.
fn features(text: &str, origin: &str) -> Result<Vec<String>, SettingsError> {
    let mut list = Vec::new();
    for part in text.split(['|', ',', ' ']).filter(|p| !p.is_empty()) {
        let name = part.to_ascii_lowercase();
        if !KNOWN_FEATURES.contains(&name.as_str()) {
            return Err(SettingsError(format!(
                "{origin}: unknown feature {part:?}; valid features are {}",
                KNOWN_FEATURES.join("|")
            )));
        }
        list.push(name);
    }
    if list.is_empty() {
        return Err(SettingsError(format!("{origin}: no feature given; use e.g. service=imap|pop3")));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, SettingsError> {
        Settings::from_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn config_key_with_array_index_is_rejected() {
        // Read as a path expression, this key made the config crate allocate
        // 10^11 array elements and abort, so it must never reach the crate.
        let error = parse_config_text("a[99999999999] = 1\n", "test.conf").unwrap_err();
        assert!(error.0.contains("write the key name plain"), "{error}");
    }

    #[test]
    fn config_key_with_dot_is_rejected() {
        let error = parse_config_text("socket.url = http://localhost:236/\n", "test.conf").unwrap_err();
        assert!(error.0.contains("key \"socket.url\""), "{error}");
    }

    #[test]
    fn defaults_without_arguments() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.servers.len(), 1);
        assert_eq!(s.servers[0].to_string(), DEFAULT_SOCKET);
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.protocol, Protocol::Soap);
        assert!(!s.debug);
        assert!(!s.quiet);
        assert!(!s.try_first_pass);
        assert!(!s.use_first_pass);
    }

    #[test]
    fn flags_are_set() {
        let s = parse(&["try_first_pass", "use_first_pass", "quiet", "debug"]).unwrap();
        assert!(s.try_first_pass);
        assert!(s.use_first_pass);
        assert!(s.quiet);
        assert!(s.debug);
    }

    #[test]
    fn socket_is_repeatable() {
        let s = parse(&["socket=http://127.0.0.1:1/", "socket=file:///run/kopano/server.sock"]).unwrap();
        assert_eq!(s.servers.len(), 2);
    }

    #[test]
    fn unknown_argument_is_rejected() {
        let err = parse(&["sockett=http://x/"]).unwrap_err();
        assert!(err.0.contains("sockett"), "{err}");
    }

    #[test]
    fn malformed_timeout_is_rejected() {
        assert!(parse(&["timeout=abc"]).is_err());
        assert!(parse(&["timeout=0"]).is_err());
        assert!(parse(&["timeout=-1"]).is_err());
        assert!(parse(&["timeout=100000"]).is_err());
    }

    #[test]
    fn fractional_timeout_is_accepted() {
        assert_eq!(parse(&["timeout=2.5"]).unwrap().timeout, Duration::from_millis(2500));
    }

    #[test]
    fn empty_socket_is_rejected() {
        assert!(parse(&["socket="]).is_err());
        assert!(parse(&["socket"]).is_err());
    }

    #[test]
    fn throttle_settings_are_parsed() {
        let s = parse(&["throttle_failures=5", "throttle_window=600", "throttle_file=/run/x/throttle.state"]).unwrap();
        assert_eq!(s.throttle_failures, 5);
        assert_eq!(s.throttle_window, Duration::from_secs(600));
        assert_eq!(s.throttle_file, PathBuf::from("/run/x/throttle.state"));
    }

    #[test]
    fn throttle_off_by_default() {
        assert_eq!(parse(&[]).unwrap().throttle_failures, 0);
    }

    #[test]
    fn malformed_throttle_values_are_rejected() {
        assert!(parse(&["throttle_failures=-1"]).is_err());
        assert!(parse(&["throttle_failures=1001"]).is_err());
        assert!(parse(&["throttle_failures=2.5"]).is_err());
        assert!(parse(&["throttle_window=0"]).is_err());
        assert!(parse(&["throttle_window=86401"]).is_err());
        assert!(parse(&["throttle_file="]).is_err());
    }

    #[test]
    fn flag_with_bad_value_is_rejected() {
        assert!(parse(&["debug=maybe"]).is_err());
    }

    #[test]
    fn service_list_is_parsed() {
        let s = parse(&["service=IMAP|pop3"]).unwrap();
        assert_eq!(s.service, vec!["imap".to_string(), "pop3".to_string()]);
    }

    #[test]
    fn service_unknown_feature_is_rejected() {
        assert!(parse(&["service=smtp"]).is_err());
    }

    #[test]
    fn short_timeout_with_mapihttp_is_rejected() {
        let error = parse(&["protocol=mapihttp", "socket=https://mail.example.test/", "timeout=0.9"]).unwrap_err();
        assert!(error.0.contains("timeout=0.9 is too short"), "{error}");
        assert!(parse(&["protocol=mapihttp", "socket=https://mail.example.test/", "timeout=2"]).is_ok());
        assert!(parse(&["timeout=0.9"]).is_ok());
    }

    #[test]
    fn same_state_and_throttle_file_is_rejected() {
        let cases = [
            ["state_file=/run/pam_mapi/x", "throttle_file=/run/pam_mapi/x"],
            ["state_file=/run/pam_mapi/./x", "throttle_file=/run//pam_mapi/x"],
            ["state_file=/run/pam_mapi/y/../x", "throttle_file=/run/pam_mapi/x"],
            ["state_file=/run/pam_mapi/x.lock", "throttle_file=/run/pam_mapi/x"],
        ];
        for args in cases {
            let error = parse(&args).unwrap_err();
            assert!(error.0.contains("give each a file of its own"), "{args:?}: {error}");
            assert!(error.0.contains("(argument)"), "{args:?}: {error}");
        }
        assert!(parse(&["state_file=/run/pam_mapi/x", "throttle_file=/run/pam_mapi/x2"]).is_ok());
    }

    #[test]
    fn same_file_through_linked_directory_is_rejected() {
        let dir = std::env::temp_dir().join(format!("pam_mapi-options-{}-link", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("real")).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
        let state = format!("state_file={}", dir.join("link/x").display());
        let throttle = format!("throttle_file={}", dir.join("real/x").display());
        assert!(parse(&[state.as_str(), throttle.as_str()]).is_err());
    }

    #[test]
    fn quoted_or_escaped_file_values_are_rejected() {
        for text in ["cafile = \"/etc/ssl/ca.pem\"\n", "cafile = '/etc/ssl/ca.pem'\n", "cafile = /etc/ssl/a\\tb.pem\n"] {
            let error = parse_config_text(text, "test.conf").unwrap_err();
            assert!(error.0.contains("write the value plain"), "{text:?}: {error}");
        }
        assert!(parse_config_text("cafile = /etc/ssl/ca.pem\n", "test.conf").is_ok());
    }

    #[test]
    fn lone_carriage_return_is_rejected() {
        let text = "socket = http://127.0.0.1:1/good\rsocket = http://127.0.0.1:2/evil\n";
        let error = parse_config_text(text, "test.conf").unwrap_err();
        assert!(error.0.contains("carriage return"), "{error}");
        assert!(parse_config_text("timeout = 5\r\nquiet = yes\r\n", "test.conf").is_ok());
    }

    #[test]
    fn colon_separator_is_rejected() {
        let error = parse_config_text("state_file: /run/x\n", "test.conf").unwrap_err();
        assert!(error.0.contains("uses ':'"), "{error}");
        assert!(parse_config_text("socket = http://127.0.0.1:236/kopano\n", "test.conf").is_ok());
    }

    #[test]
    fn indented_line_is_rejected() {
        let error = parse_config_text("timeout = 5\n  # note\nquiet = yes\n", "test.conf").unwrap_err();
        assert!(error.0.contains("line 2 is indented"), "{error}");
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let entries = parse_config_text("\u{feff}timeout = 5\n", "test.conf").unwrap();
        assert_eq!(entries, vec![("timeout".to_string(), "5".to_string())]);
    }

    #[test]
    fn escaped_key_is_rejected() {
        let text = "ignore_authinfo_unavail = no\nignore_authinfo_unavail\\ = yes\n";
        let error = parse_config_text(text, "test.conf").unwrap_err();
        assert!(error.0.contains("write the key name plain"), "{error}");
    }

    #[test]
    fn bare_key_names_the_line() {
        let error = parse_config_text("# settings\nstrip_realm\n", "test.conf").unwrap_err();
        assert!(error.0.contains("line 2: \"strip_realm\" has no '='"), "{error}");
    }

    #[test]
    fn relative_cafile_is_rejected() {
        let error = parse(&["cafile=ca.pem"]).unwrap_err();
        assert!(error.0.contains("not absolute"), "{error}");
    }

    #[test]
    fn service_with_mapihttp_is_rejected() {
        assert!(parse(&["protocol=mapihttp", "service=imap"]).is_err());
    }

    fn config_file(text: &str, mode: u32) -> (PathBuf, String) {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "pam_mapi-options-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pam_mapi.conf");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let arg = format!("config={}", path.display());
        (path, arg)
    }

    fn load(args: &[&str]) -> Result<Settings, SettingsError> {
        Settings::load(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn load_reads_file_values() {
        let (path, arg) = config_file(
            "# comment\nsocket = http://127.0.0.1:1/ file:///run/kopano/server.sock\ntimeout = 4\ndebug = yes\nquiet = no\n",
            0o644,
        );
        let s = load(&[&arg]).unwrap();
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.timeout, Duration::from_secs(4));
        assert!(s.debug);
        assert!(!s.quiet);
        assert_eq!(s.origin("timeout"), path.display().to_string());
        assert_eq!(s.origin("connect_timeout"), "default");
    }

    #[test]
    fn load_arguments_override_file() {
        let (_path, arg) = config_file("socket = http://127.0.0.1:1/ http://127.0.0.1:2/\ntimeout = 4\n", 0o600);
        let s = load(&[&arg, "timeout=7", "socket=http://127.0.0.1:3/"]).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(7));
        assert_eq!(s.servers.len(), 1);
        assert_eq!(s.servers[0].to_string(), "http://127.0.0.1:3/");
        assert_eq!(s.origin("timeout"), "argument");
    }

    #[test]
    fn load_rejects_unknown_key() {
        let (path, arg) = config_file("sockt = http://127.0.0.1:1/\n", 0o644);
        let err = load(&[&arg]).unwrap_err();
        assert!(err.0.contains("sockt"), "{err}");
        assert!(err.0.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn load_rejects_bad_value() {
        let (_path, arg) = config_file("timeout = soon\n", 0o644);
        let err = load(&[&arg]).unwrap_err();
        assert!(err.0.contains("timeout"), "{err}");
    }

    #[test]
    fn load_rejects_group_writable_file() {
        let (_path, arg) = config_file("debug = yes\n", 0o664);
        let err = load(&[&arg]).unwrap_err();
        assert!(err.0.contains("chmod go-w"), "{err}");
    }

    #[test]
    fn load_rejects_world_writable_file() {
        let (_path, arg) = config_file("debug = yes\n", 0o646);
        assert!(load(&[&arg]).is_err());
    }

    #[test]
    fn load_rejects_file_not_owned_by_root() {
        let (path, arg) = config_file("debug = yes\n", 0o644);
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = load(&[&arg]).unwrap_err();
        assert!(err.0.contains("chown root:root"), "{err}");
    }

    #[test]
    fn load_rejects_missing_named_file() {
        assert!(load(&["config=/nonexistent/pam_mapi.conf"]).is_err());
    }

    #[test]
    fn missing_default_file_is_fine() {
        assert_eq!(read_config_file(Path::new("/nonexistent/pam_mapi.conf"), false), Ok(None));
    }

    #[test]
    fn load_rejects_sections() {
        let (_path, arg) = config_file("[pam_mapi]\ndebug = yes\n", 0o644);
        let err = load(&[&arg]).unwrap_err();
        assert!(err.0.contains("sections"), "{err}");
    }

    #[test]
    fn load_rejects_config_key_in_file() {
        let (_path, arg) = config_file("config = /etc/other.conf\n", 0o644);
        assert!(load(&[&arg]).is_err());
    }

    #[test]
    fn load_rejects_empty_socket_list() {
        let (_path, arg) = config_file("socket =\n", 0o644);
        assert!(load(&[&arg]).is_err());
    }

    #[test]
    fn option_names_cover_every_setting() {
        let mut settings = Settings::default();
        for name in OPTION_NAMES {
            let value = match *name {
                "socket" => Some("http://127.0.0.1:1/"),
                "protocol" => Some("soap"),
                "service" => Some("imap"),
                "default_domain" => Some("example.com"),
                "timeout" | "connect_timeout" | "state_ttl" | "throttle_failures" | "throttle_window" => Some("5"),
                "config" | "cafile" | "state_file" | "throttle_file" => Some("/nonexistent"),
                _ => None,
            };
            settings.apply(name, value, "test").unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
