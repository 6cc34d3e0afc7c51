//! Test harness: drives the built `pam_mapi.so` through the real libpam with
//! `pam_start_confdir`, so each test has its own service directory and nothing in
//! /etc/pam.d is touched.

#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const PAM_SUCCESS: i32 = 0;
pub const PAM_SERVICE_ERR: i32 = 3;
pub const PAM_PERM_DENIED: i32 = 6;
pub const PAM_AUTH_ERR: i32 = 7;
pub const PAM_AUTHINFO_UNAVAIL: i32 = 9;
pub const PAM_USER_UNKNOWN: i32 = 10;
pub const PAM_CONV_ERR: i32 = 19;
pub const PAM_AUTHTOK_RECOVERY_ERR: i32 = 21;
pub const PAM_IGNORE: i32 = 25;

const PAM_RHOST: c_int = 4;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

#[repr(C)]
struct PamConv {
    conv: Option<
        unsafe extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int,
    >,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item: c_int, value: *const c_void) -> c_int;
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

/// The conversation's reply, and a count of the password prompts it got.
struct Answers {
    password: Option<Vec<u8>>,
    password_prompts: AtomicUsize,
}

unsafe extern "C" fn conversation(
    count: c_int,
    messages: *mut *const PamMessage,
    responses: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let answers = &*(appdata as *const Answers);
    let out = libc::calloc(count as usize, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
    for i in 0..count as usize {
        let message = &**messages.add(i);
        if message.msg_style == PAM_PROMPT_ECHO_OFF || message.msg_style == PAM_PROMPT_ECHO_ON {
            answers.password_prompts.fetch_add(1, Ordering::SeqCst);
            match &answers.password {
                Some(password) => {
                    let copy = libc::malloc(password.len() + 1) as *mut u8;
                    ptr::copy_nonoverlapping(password.as_ptr(), copy, password.len());
                    *copy.add(password.len()) = 0;
                    (*out.add(i)).resp = copy as *mut c_char;
                }
                None => {
                    libc::free(out as *mut c_void);
                    return PAM_CONV_ERR;
                }
            }
        }
    }
    *responses = out;
    PAM_SUCCESS
}

/// Finds the built module: next to the test binary (`target/<profile>/deps`) or one up.
pub fn module_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for candidate in [deps.join("libpam_mapi.so"), deps.parent().unwrap().join("libpam_mapi.so")] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!("libpam_mapi.so not found next to {}; run cargo build first", exe.display());
}

/// A private PAM configuration directory with one service file.
pub struct Service {
    pub dir: PathBuf,
    pub name: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Makes a unique scratch directory under the target directory.
pub fn scratch_dir(label: &str) -> PathBuf {
    let base = std::env::temp_dir().join(format!(
        "pam_mapi-test-{}-{}-{}",
        std::process::id(),
        label,
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&base).unwrap();
    base
}

impl Service {
    /// Writes a service file. `{module}` in `lines` becomes the module's absolute path.
    pub fn new(lines: &str) -> Service {
        let dir = scratch_dir("svc");
        let module = module_path();
        let (lines, name) = match with_debug_if_requested(lines) {
            Some(lines) => (lines, DEBUG_SERVICE.to_string()),
            None => (lines.to_string(), "pam_mapi_test".to_string()),
        };
        let text = lines.replace("{module}", module.to_str().unwrap());
        std::fs::write(dir.join(&name), text).unwrap();
        Service { dir, name }
    }

    /// `auth required {module} ARGS` + `account required {module}`.
    pub fn simple(args: &str) -> Service {
        Service::new(&format!("auth required {{module}} {args}\naccount required {{module}}\n"))
    }
}

/// Service name of a service that got `debug` from [`with_debug_if_requested`].
/// [`log_text`] hides the debug lines of this service only.
const DEBUG_SERVICE: &str = "pam_mapi_test_debug";

/// With `PAM_MAPI_TEST_DEBUG=1`, adds `debug` to every pam_mapi line, so that a
/// whole suite runs with debug logging for the password scan of
/// tests/hardening/run.sh. Returns `None` when the variable is unset or a line
/// already sets `debug`: such a test checks the debug lines itself.
fn with_debug_if_requested(lines: &str) -> Option<String> {
    if std::env::var("PAM_MAPI_TEST_DEBUG").as_deref() != Ok("1") {
        return None;
    }
    let sets_debug = |line: &str| line.split_whitespace().any(|word| word == "debug" || word.starts_with("debug="));
    if lines.lines().any(sets_debug) {
        return None;
    }
    let mut out = String::new();
    for line in lines.lines() {
        out.push_str(line);
        if line.contains("{module}") {
            out.push_str(" debug");
        }
        out.push('\n');
    }
    Some(out)
}

/// With `PAM_MAPI_TEST_PASSWORD_LIST=FILE`, appends the user name and password of
/// each attempt to FILE as one line of two hex strings, so that
/// tests/hardening/run.sh can look for every password in the log.
fn record_password(user: &[u8], password: &[u8]) {
    use std::io::Write;
    let Ok(path) = std::env::var("PAM_MAPI_TEST_PASSWORD_LIST") else { return };
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let line = format!("{}\t{}\n", hex(user), hex(password));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open PAM_MAPI_TEST_PASSWORD_LIST {path}: {e}"));
    file.write_all(line.as_bytes()).unwrap();
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The result of one PAM transaction.
#[derive(Debug)]
pub struct Run {
    pub auth: i32,
    pub account: Option<i32>,
    pub password_prompts: usize,
}

/// Options for one transaction.
#[derive(Default)]
pub struct Attempt<'a> {
    pub user: &'a str,
    pub password: Option<&'a [u8]>,
    pub rhost: Option<&'a str>,
    pub account: bool,
    pub raw_user: Option<&'a [u8]>,
}

/// Runs pam_start_confdir, pam_authenticate (and pam_acct_mgmt if asked), pam_end.
pub fn run(service: &Service, attempt: Attempt) -> Run {
    if let Some(password) = attempt.password {
        record_password(attempt.raw_user.unwrap_or(attempt.user.as_bytes()), password);
    }
    let answers = Box::new(Answers {
        password: attempt.password.map(|p| p.to_vec()),
        password_prompts: AtomicUsize::new(0),
    });
    let conv = PamConv { conv: Some(conversation), appdata_ptr: &*answers as *const Answers as *mut c_void };
    let service_name = CString::new(service.name.clone()).unwrap();
    let user = CString::new(attempt.raw_user.unwrap_or(attempt.user.as_bytes())).unwrap();
    let confdir = CString::new(service.dir.to_str().unwrap()).unwrap();
    let mut pamh: *mut PamHandle = ptr::null_mut();
    unsafe {
        let rc = pam_start_confdir(service_name.as_ptr(), user.as_ptr(), &conv, confdir.as_ptr(), &mut pamh);
        assert_eq!(rc, PAM_SUCCESS, "pam_start_confdir failed");
        let rhost;
        if let Some(host) = attempt.rhost {
            rhost = CString::new(host).unwrap();
            pam_set_item(pamh, PAM_RHOST, rhost.as_ptr() as *const c_void);
        }
        let auth = pam_authenticate(pamh, 0);
        let account = if attempt.account { Some(pam_acct_mgmt(pamh, 0)) } else { None };
        pam_end(pamh, auth);
        Run { auth, account, password_prompts: answers.password_prompts.load(Ordering::SeqCst) }
    }
}

/// Authenticates `user` with `password` through a service and returns the code.
pub fn authenticate(service: &Service, user: &str, password: &str) -> i32 {
    run(service, Attempt { user, password: Some(password.as_bytes()), ..Default::default() }).auth
}

/// Returns libpam's text for a PAM code, for assertion messages.
pub fn name(code: i32) -> String {
    unsafe { CStr::from_ptr(pam_strerror(ptr::null_mut(), code)).to_string_lossy().into_owned() }
}

/// Syslog file that tests/run-all.sh has rsyslogd write authpriv lines to.
pub const AUTH_LOG: &str = "/var/log/auth.log";

/// Lines of the auth log that contain `marker`, waiting up to 3 s for them.
pub fn log_lines_with(marker: &str, at_least: usize) -> Vec<String> {
    let listening = std::os::unix::net::UnixDatagram::unbound().and_then(|socket| socket.connect("/dev/log")).is_ok();
    assert!(
        listening,
        "no syslog daemon listens on /dev/log; run tests/setup.sh, which starts rsyslogd, to run the logging tests"
    );
    let started = std::time::Instant::now();
    loop {
        let lines: Vec<String> = log_text().lines().filter(|l| l.contains(marker)).map(str::to_string).collect();
        if lines.len() >= at_least || started.elapsed() > std::time::Duration::from_secs(3) {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Returns the auth log, or the log file named by `PAM_MAPI_TEST_LOG`, whose
/// lines tests/hardening/run.sh writes with the severity in front. From that file
/// the debug lines of services that got `debug` only for the scan are left out,
/// so that the tests see the same lines as without it.
fn log_text() -> String {
    let read = |path: &str| std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let Ok(path) = std::env::var("PAM_MAPI_TEST_LOG") else { return read(AUTH_LOG) };
    let added_debug = format!("({DEBUG_SERVICE}:");
    let mut text = String::new();
    for line in read(&path).lines() {
        let (severity, rest) = line.split_once(' ').unwrap_or(("", line));
        if !(severity == "debug" && rest.contains(&added_debug)) {
            text.push_str(rest);
            text.push('\n');
        }
    }
    text
}

/// A loopback HTTP server that replies to every request with the next canned reply
/// (the last one repeats) and records the requests. For replies the stand-in
/// server never sends, such as a client rejection.
pub struct Canned {
    pub addr: std::net::SocketAddr,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Canned {
    pub fn start(replies: Vec<String>) -> Canned {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = serve_canned_connections(move || listener.accept().map(|(stream, _)| stream), replies);
        Canned { addr, requests }
    }

    /// Like `start`, on a Unix socket at `path`.
    pub fn start_unix(path: &Path, replies: Vec<String>) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        serve_canned_connections(move || listener.accept().map(|(stream, _)| stream), replies)
    }

    pub fn url(&self) -> String {
        format!("http://{}/kopano", self.addr)
    }
}

/// Accepts connections in a thread of its own and replies to each with the
/// canned replies. Returns the list that the request bodies are recorded in.
fn serve_canned_connections<S>(
    mut accept: impl FnMut() -> std::io::Result<S> + Send + 'static,
    replies: Vec<String>,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>>
where
    S: Send + 'static,
    for<'a> &'a S: std::io::Read + std::io::Write,
{
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        let mut index = 0usize;
        while let Ok(stream) = accept() {
            serve_canned(&stream, &stream, &replies, &mut index, &seen);
        }
    });
    requests
}

/// Replies to the requests of one connection with the canned replies.
fn serve_canned(
    reader: impl std::io::Read,
    mut writer: impl std::io::Write,
    replies: &[String],
    index: &mut usize,
    seen: &std::sync::Mutex<Vec<String>>,
) {
    use std::io::{BufRead, BufReader, Read};
    let mut reader = BufReader::new(reader);
    loop {
        let mut length = 0usize;
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        if head.is_empty() {
            return;
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
        let reply = &replies[(*index).min(replies.len() - 1)];
        *index += 1;
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Builds an HTTP 200 reply carrying a SOAP body.
pub fn soap_reply(inner: &str) -> String {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:ns=\"urn:zarafa\"><SOAP-ENV:Body>{inner}</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    );
    format!(
        "HTTP/1.1 200 OK\r\nServer: gSOAP/2.8\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
        body.len()
    )
}

/// Returns a name unique to this test run, so that log lines of earlier runs never match.
pub fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{label}-{}-{nanos}", std::process::id())
}
