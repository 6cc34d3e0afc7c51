//! pam_mapi-check: finds out, step by step, why pam_mapi rejects or cannot check
//! a password. It reads the same configuration file and module arguments as the
//! module. It checks file permissions, DNS, connections, TLS, and the server's
//! reply to a logon that cannot succeed. With `--user` it runs the module's own
//! decision path and prints the PAM result.

#[path = "pam_mapi-check/files.rs"]
mod files;
#[path = "pam_mapi-check/logon.rs"]
mod logon;
#[path = "pam_mapi-check/network.rs"]
mod network;
#[path = "pam_mapi-check/probe.rs"]
mod probe;
#[path = "pam_mapi-check/report.rs"]
mod report;

use std::process::ExitCode;
use std::time::Instant;

use pam_mapi::input;
use pam_mapi::options::{Protocol, Settings, DEFAULT_CONFIG, OPTION_NAMES};
use pam_mapi::server::ServerUrl;

use report::{Exit, Report};

const HELP: &str = "\
Usage: pam_mapi-check [MODULE-ARGUMENTS...] [--user NAME] [--service NAME]
       pam_mapi-check [MODULE-ARGUMENTS...] --settings-only

Checks the settings and servers of the pam_mapi PAM module, step by step, and
prints the result and duration of each step. MODULE-ARGUMENTS are written as on
the pam_mapi.so line in /etc/pam.d, for example
socket=https://mail.example.com/kopano or
config=/etc/security/pam_mapi-test.conf. Without them the tool reads
/etc/security/pam_mapi.conf and the built-in defaults, as the module does.

Steps:
  1. configuration file: ownership and mode (not owned by root, or writable by
     group or others, is an error), then every setting and where it came from;
     the cafile gets the same ownership and mode check
  2. for each server, in the configured order:
     dns      every address of the host name
     connect  each TCP address, or the Unix socket, within connect_timeout
     tls      https only: protocol version, cipher suite, certificate subject,
              issuer, names and expiry, verified against cafile= or the system
              trust store
     server   protocol=soap: a logon with a user name that cannot exist and a
              random password, which reveals the server version (lpszVersion)
              without any account; protocol=mapihttp: an unauthenticated PING,
              with the HTTP status and X- headers of the reply
  3. with --user: reads the password, runs the module's pam_sm_authenticate
     decision and prints the PAM result, such as \"result: PAM_AUTH_ERR\".
     Like the module, this marks servers that gave no answer in state_file=.

Options:
  --user NAME     also authenticate NAME as pam_mapi would. The password is read
                  from the terminal without echo, or as one line from standard
                  input when that is not a terminal. It is never printed.
  --service NAME  PAM service name to report to the server in szClientAppMisc
                  (default: pam_mapi-check)
  --settings-only run step 1 only and contact no server: exit 0 when the
                  module would accept the settings, 3 when not. Suits a
                  validation step before a new pam_mapi.conf is installed,
                  such as: pam_mapi-check --settings-only config=NEW-FILE
  -h, --help      print this help and exit
  --version       print the version and exit

Module log lines go to standard error; the steps go to standard output.

Exit status (the first step that failed decides):
  0   every step passed; with --user, the PAM result was PAM_SUCCESS
  2   usage: unknown option, missing NAME, or the password could not be read
  3   configuration: invalid argument, setting or configuration file, unsafe
      ownership or mode of the configuration file or cafile, unusable cafile
  4   DNS: a server's host name did not resolve
  5   connect: no TCP address or Unix socket of a server accepted a connection
  6   TLS: the handshake or the certificate verification failed
  7   server answer: no usable reply to the probe (timeout, HTTP status, SOAP
      fault, unreadable reply, redirect), or the server rejects this client
  8   authentication: PAM_AUTH_ERR (wrong password, unknown user, or input
      that cannot be sent)
  9   authentication: PAM_PERM_DENIED (none of the service= features enabled)
  10  authentication: PAM_AUTHINFO_UNAVAIL or PAM_IGNORE (no server answered)
  11  authentication: any other PAM result, such as PAM_SERVICE_ERR
";

/// The command line, split into the tool's own options and module arguments.
#[derive(Debug, Default)]
struct CommandLine {
    module_args: Vec<String>,
    user: Option<String>,
    service: Option<String>,
    settings_only: bool,
    help: bool,
    version: bool,
}

/// Splits the command line. Anything that starts with `-` is an option of the
/// tool; everything else is a module argument.
fn parse_command_line(args: &[String]) -> Result<CommandLine, String> {
    let mut line = CommandLine::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (name, inline_value) = match arg.split_once('=') {
            Some((name, value)) if arg.starts_with("--") => (name, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        match name {
            "-h" | "--help" => line.help = true,
            "--version" => line.version = true,
            "--settings-only" => line.settings_only = true,
            "--user" | "--service" => {
                let value = match inline_value {
                    Some(value) => value,
                    None => iter.next().cloned().ok_or_else(|| format!("option {name} needs a value"))?,
                };
                if value.is_empty() {
                    return Err(format!("option {name} needs a non-empty value"));
                }
                let slot = if name == "--user" { &mut line.user } else { &mut line.service };
                if slot.is_some() {
                    return Err(format!("option {name} is given twice"));
                }
                *slot = Some(value);
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg:?}")),
            _ => line.module_args.push(arg.clone()),
        }
    }
    if line.settings_only && line.user.is_some() {
        return Err("--settings-only contacts no server, so it cannot be combined with --user".into());
    }
    Ok(line)
}

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(raw) => {
                eprintln!(
                    "pam_mapi-check: argument {:?} is not valid UTF-8; pam.d arguments must be UTF-8 text",
                    raw.to_string_lossy()
                );
                return Exit::Usage.into();
            }
        }
    }
    let line = match parse_command_line(&args) {
        Ok(line) => line,
        Err(message) => {
            eprintln!("pam_mapi-check: {message}; run pam_mapi-check --help for the usage");
            return Exit::Usage.into();
        }
    };
    if line.help {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    if line.version {
        println!("pam_mapi-check {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    run(&line).into()
}

fn run(line: &CommandLine) -> Exit {
    let mut report = Report::new();
    println!("pam_mapi-check {}", env!("CARGO_PKG_VERSION"));

    files::check_config_file(&mut report, &line.module_args);
    let started = Instant::now();
    let settings = match Settings::load(&line.module_args) {
        Ok(settings) => settings,
        Err(e) => {
            report.fail(Exit::Configuration, "settings", started, &format!("{e}"));
            return report.finish();
        }
    };
    report.pass("settings", started, "loaded");
    print_settings(&settings);
    files::check_cafile(&mut report, &settings);
    files::check_shared_directories(&mut report, &settings);
    if report.failed() || line.settings_only {
        return report.finish();
    }

    // The password is read before the network steps, so that their output is
    // not interrupted by a prompt.
    let password = match &line.user {
        Some(user) => match logon::read_password(user) {
            Ok(password) => Some(password),
            Err(message) => {
                eprintln!("pam_mapi-check: cannot read the password: {message}");
                return Exit::Usage;
            }
        },
        None => None,
    };

    for (index, server) in settings.servers.iter().enumerate() {
        println!("server {} of {}: {server}", index + 1, settings.servers.len());
        report.set_indent("  ");
        check_server(&mut report, &settings, server);
        report.set_indent("");
    }

    if let (Some(user), Some(password)) = (&line.user, password) {
        let mapped = input::map_user(user, &settings);
        if &mapped == user {
            println!("authentication of user \"{}\"", input::for_log(user));
        } else {
            println!("authentication of user \"{}\", sent to the server as \"{}\"", input::for_log(user), input::for_log(&mapped));
        }
        let service = line.service.clone().unwrap_or_else(|| "pam_mapi-check".to_string());
        logon::authenticate(&mut report, &line.module_args, user, password, &service);
    }
    report.finish()
}

/// Runs the DNS, connect, TLS and server steps for one server. A server's steps
/// stop at its first failure; the next server is checked all the same, because
/// the module would fail over to it.
fn check_server(report: &mut Report, settings: &Settings, server: &ServerUrl) {
    let deadline = Instant::now() + settings.timeout;
    files::show_state(report, settings, server);
    match server {
        ServerUrl::Unix { path, .. } => {
            if !network::connect_unix(report, path) {
                return;
            }
        }
        ServerUrl::Http { host, port, tls, .. } => {
            let Some(addresses) = network::resolve(report, host, *port) else { return };
            let Some(stream) = network::connect_tcp(report, &addresses, settings.connect_timeout, deadline) else {
                return;
            };
            if *tls && !network::handshake(report, settings, host, stream, deadline) {
                return;
            }
        }
    }
    probe::check_answer(report, settings, server, deadline);
}

/// Prints every setting with its value and where the value came from.
fn print_settings(settings: &Settings) {
    for name in OPTION_NAMES {
        let value = setting_value(settings, name).unwrap_or_else(|| "(value not shown by this pam_mapi-check)".into());
        println!("  {name} = {value} [{}]", settings.origin(name));
    }
}

/// Formats the value of one setting, or `None` for a setting this tool does not
/// know.
fn setting_value(settings: &Settings, name: &str) -> Option<String> {
    let yes_no = |flag: bool| if flag { "yes" } else { "no" }.to_string();
    let seconds = |d: std::time::Duration| format!("{} s", d.as_secs_f64());
    let value = match name {
        "socket" => settings.servers.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" "),
        "protocol" => match settings.protocol {
            Protocol::Soap => "soap".to_string(),
            Protocol::MapiHttp => "mapihttp".to_string(),
        },
        "config" => match &settings.config {
            Some(path) => path.display().to_string(),
            None => format!("{DEFAULT_CONFIG} (not present)"),
        },
        "timeout" => seconds(settings.timeout),
        "connect_timeout" => seconds(settings.connect_timeout),
        "cafile" => match &settings.cafile {
            Some(path) => path.display().to_string(),
            None => "(system trust store)".to_string(),
        },
        "service" if settings.service.is_empty() => "(not checked)".to_string(),
        "service" => settings.service.join("|"),
        "strip_realm" => yes_no(settings.strip_realm),
        "lowercase" => yes_no(settings.lowercase),
        "default_domain" => settings.default_domain.clone().unwrap_or_else(|| "(none)".into()),
        "ignore_authinfo_unavail" => yes_no(settings.ignore_authinfo_unavail),
        "state_file" => settings.state_file.display().to_string(),
        "state_ttl" => seconds(settings.state_ttl),
        "throttle_failures" if settings.throttle_failures == 0 => "0 (off)".to_string(),
        "throttle_failures" => settings.throttle_failures.to_string(),
        "throttle_window" => seconds(settings.throttle_window),
        "throttle_file" => settings.throttle_file.display().to_string(),
        "try_first_pass" => yes_no(settings.try_first_pass),
        "use_first_pass" => yes_no(settings.use_first_pass),
        "quiet" => yes_no(settings.quiet),
        "debug" => yes_no(settings.debug),
        _ => return None,
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<CommandLine, String> {
        parse_command_line(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn user_option_takes_next_argument() {
        let line = parse(&["socket=http://127.0.0.1:1/", "--user", "alice"]).unwrap();
        assert_eq!(line.user.as_deref(), Some("alice"));
        assert_eq!(line.module_args, vec!["socket=http://127.0.0.1:1/".to_string()]);
    }

    #[test]
    fn user_option_with_equals_sign() {
        assert_eq!(parse(&["--user=bob"]).unwrap().user.as_deref(), Some("bob"));
    }

    #[test]
    fn user_option_without_value_is_rejected() {
        assert!(parse(&["--user"]).is_err());
    }

    #[test]
    fn user_option_twice_is_rejected() {
        assert!(parse(&["--user", "a", "--user", "b"]).is_err());
    }

    #[test]
    fn unknown_option_is_rejected() {
        assert!(parse(&["--frobnicate"]).is_err());
    }

    #[test]
    fn module_flag_is_kept() {
        assert_eq!(parse(&["debug"]).unwrap().module_args, vec!["debug".to_string()]);
    }
}
