//! `kopano-standin`: runs the stand-in Kopano or Gromox server until SIGTERM or SIGINT,
//! for demos and end-to-end scripts.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kopano_standin::{Config, Fault, Server};

const USAGE: &str = "\
usage: kopano-standin [--mapihttp] [--listen ADDR:PORT] [--unix PATH]
                      [--user NAME:PASSWORD]... [--tls-cert PEM --tls-key PEM]
                      [--enable-feature NAME:FEATURE]... [--disable-feature NAME:FEATURE]...
                      [--failure-delay-ms N] [--ban-after N] [--ban-seconds N]
                      [--fault NAME[:ARG]] [--pid-file FILE] [--quiet]

  --mapihttp           speak Gromox MAPI over HTTP instead of Kopano SOAP
  --listen ADDR:PORT   TCP listen address (default 127.0.0.1:0, a free port)
  --unix PATH          also listen on this Unix socket
  --user NAME:PASSWORD add a user; the password starts after the first colon
  --tls-cert PEM       certificate chain (PEM file) for TLS on the TCP listener
  --tls-key PEM        private key (PEM file) for TLS on the TCP listener
  --enable-feature NAME:FEATURE
                       enable a feature (imap, pop3, mobile, outlook, webapp) for a
                       user, like kopano-admin --enable-feature
  --disable-feature NAME:FEATURE
                       disable a feature for a user
  --failure-delay-ms N Gromox mode: delay before each 401 in milliseconds (default 1000)
  --ban-after N        Gromox mode: failures on one connection that ban the user
                       name (default 10)
  --ban-seconds N      Gromox mode: how long a ban lasts in seconds (default 60)
  --fault NAME[:ARG]   start in a fault mode, e.g. stall, huge-body:8, delay-ms:1500
  --pid-file FILE      write the process id to FILE, removed again on exit
  --quiet              do not log logon decisions to stderr

Prints one line `listening on URL` per listener once ready.";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Options {
    config: Config,
    fault: Fault,
    pid_file: Option<PathBuf>,
}

fn number(option: &str, text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("invalid {option} value {text:?}: expected a whole number"))
}

fn parse_options() -> Result<Options, String> {
    let mut mapihttp = false;
    let mut log = true;
    let mut listen: Option<SocketAddr> = None;
    let mut unix: Option<PathBuf> = None;
    let mut tls_cert: Option<PathBuf> = None;
    let mut tls_key: Option<PathBuf> = None;
    let mut fault = Fault::None;
    let mut pid_file = None;
    let mut users = Vec::new();
    let mut features: Vec<(bool, String, String)> = Vec::new();
    let mut failure_delay: Option<Duration> = None;
    let mut ban_after: Option<u32> = None;
    let mut ban_duration: Option<Duration> = None;

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("option {name} needs a value"));
        match arg.as_str() {
            "--mapihttp" => mapihttp = true,
            "--quiet" => log = false,
            "--listen" => {
                let text = value("--listen")?;
                listen = Some(text.parse().map_err(|_| {
                    format!("invalid --listen address {text:?}: expected IP:PORT such as 127.0.0.1:2236 or [::1]:2236")
                })?);
            }
            "--unix" => unix = Some(PathBuf::from(value("--unix")?)),
            "--user" => {
                let text = value("--user")?;
                let Some((name, password)) = text.split_once(':') else {
                    return Err(format!("invalid --user value for {text:?}: expected NAME:PASSWORD"));
                };
                users.push((name.to_string(), password.to_string()));
            }
            "--enable-feature" | "--disable-feature" => {
                let text = value(&arg)?;
                let Some((name, feature)) = text.split_once(':') else {
                    return Err(format!("invalid {arg} value {text:?}: expected NAME:FEATURE, e.g. alice:imap"));
                };
                features.push((arg == "--enable-feature", name.to_string(), feature.to_string()));
            }
            "--failure-delay-ms" => failure_delay = Some(Duration::from_millis(number(&arg, &value(&arg)?)?)),
            "--ban-after" => ban_after = Some(number(&arg, &value(&arg)?)? as u32),
            "--ban-seconds" => ban_duration = Some(Duration::from_secs(number(&arg, &value(&arg)?)?)),
            "--tls-cert" => tls_cert = Some(PathBuf::from(value("--tls-cert")?)),
            "--tls-key" => tls_key = Some(PathBuf::from(value("--tls-key")?)),
            "--fault" => fault = value("--fault")?.parse()?,
            "--pid-file" => pid_file = Some(PathBuf::from(value("--pid-file")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }

    let mut config = if mapihttp { Config::mapihttp() } else { Config::soap() }.log(log);
    for (name, password) in users {
        config = config.user(&name, &password);
    }
    for (enable, name, feature) in features {
        let Some(user) = config.users.iter_mut().find(|user| user.name == name) else {
            return Err(format!("feature option for unknown user {name:?}: add --user {name}:PASSWORD first"));
        };
        if enable {
            user.enabled_features.push(feature);
        } else {
            user.disabled_features.push(feature);
        }
    }
    config.failure_delay = failure_delay.unwrap_or(config.failure_delay);
    config.ban_after = ban_after.unwrap_or(config.ban_after);
    config.ban_duration = ban_duration.unwrap_or(config.ban_duration);
    // Without --listen, a --unix server has no TCP listener; otherwise TCP is on 127.0.0.1.
    if listen.is_some() || unix.is_some() {
        config.tcp = listen;
    }
    config.unix = unix;
    match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &PathBuf| {
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            };
            config = config.tls(&read(&cert)?, &read(&key)?);
        }
        (None, None) => {}
        _ => return Err("--tls-cert and --tls-key must be given together".to_string()),
    }
    Ok(Options { config, fault, pid_file })
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("kopano-standin: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: request_stop only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGINT, request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }

    let server = match Server::start(options.config) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("kopano-standin: starting the server failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    if options.fault != Fault::None {
        server.set_fault(options.fault);
    }
    if let Some(path) = &options.pid_file {
        if let Err(error) = std::fs::write(path, format!("{}\n", std::process::id())) {
            eprintln!("kopano-standin: writing pid file {} failed: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }

    let mut stdout = std::io::stdout();
    if server.tcp_addr().is_some() {
        let _ = writeln!(stdout, "listening on {}", server.url());
    }
    if let Some(url) = server.unix_url() {
        let _ = writeln!(stdout, "listening on {url}");
    }
    let _ = stdout.flush();

    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    if let Some(path) = &options.pid_file {
        let _ = std::fs::remove_file(path);
    }
    ExitCode::SUCCESS
}
