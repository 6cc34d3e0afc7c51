//! Ownership and mode of the files the module trusts: the configuration file and
//! the cafile. A user who can write either file can point the module at a server
//! of their own.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use pam_mapi::options::{Settings, DEFAULT_CONFIG};
use pam_mapi::server::ServerUrl;
use pam_mapi::state::DownList;

use crate::network;
use crate::report::{Exit, Report};

/// Checks the configuration file that `Settings::load` reads: the last
/// `config=` argument, or the default file, which may be absent.
pub fn check_config_file(report: &mut Report, module_args: &[String]) {
    let named = module_args.iter().rev().find_map(|a| a.strip_prefix("config="));
    let path = Path::new(named.unwrap_or(DEFAULT_CONFIG));
    let step = format!("config file {}", path.display());
    let started = Instant::now();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && named.is_none() => {
            report.pass(&step, started, "not present, so the built-in defaults and the arguments apply");
        }
        Err(e) => report.fail(
            Exit::Configuration,
            &step,
            started,
            &format!("cannot read it: {e}; create it or fix the config= argument"),
        ),
        Ok(_) => check_trusted_file(report, &step, path, started),
    }
}

/// Checks the cafile, which decides which servers are believed. Without a
/// cafile, checks that the system trust store is usable when an https server is
/// configured.
pub fn check_cafile(report: &mut Report, settings: &Settings) {
    let needs_tls = settings.servers.iter().any(ServerUrl::is_tls);
    let started = Instant::now();
    match &settings.cafile {
        Some(path) => {
            let step = format!("cafile {}", path.display());
            if let Err(e) = std::fs::metadata(path) {
                report.fail(Exit::Configuration, &step, started, &format!("cannot read it: {e}; fix cafile="));
                return;
            }
            check_trusted_file(report, &step, path, started);
            // The module refuses a cafile whose directory others could change,
            // as written or where a link leads.
            let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            for dir in [path.parent(), resolved.parent()].into_iter().flatten() {
                if let Err(message) = pam_mapi::shared_file::check_directory(dir, "cafile") {
                    report.fail(Exit::Configuration, &step, started, &message);
                    return;
                }
            }
            let started = Instant::now();
            match network::load_roots(Some(path)) {
                Ok(roots) => report.pass(&step, started, &format!("{} CA certificate(s) loaded", roots.len())),
                Err(message) => report.fail(Exit::Configuration, &step, started, &message),
            }
        }
        None if needs_tls => match network::load_roots(None) {
            Ok(roots) => report.pass(
                "system trust store",
                started,
                &format!("{} CA certificate(s) loaded; set cafile= to trust only a private CA", roots.len()),
            ),
            Err(message) => report.fail(Exit::Configuration, "system trust store", started, &message),
        },
        None => {}
    }
}

/// Fails when the directory of `state_file` (or of `throttle_file`, when throttling
/// is on) could be changed by other users: the module would then skip the file on
/// every logon, and with it the memory of dead servers or the throttling.
pub fn check_shared_directories(report: &mut Report, settings: &Settings) {
    let mut files = vec![("state file", &settings.state_file)];
    if settings.throttle_failures > 0 {
        files.push(("throttle file", &settings.throttle_file));
    }
    for (what, path) in files {
        let started = Instant::now();
        let step = format!("{what} {}", path.display());
        match pam_mapi::shared_file::check_directory_of(path, what) {
            Ok(()) => report.pass(&step, started, "directory can be changed by root only"),
            Err(message) => report.fail(Exit::Configuration, &step, started, &message),
        }
    }
}

/// Fails the step unless `path` is a regular file owned by root and not writable
/// by group or others, and warns about a directory that others can write to.
fn check_trusted_file(report: &mut Report, step: &str, path: &Path, started: Instant) {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) => {
            report.fail(Exit::Configuration, step, started, &format!("cannot read it: {e}"));
            return;
        }
    };
    let mode = metadata.mode() & 0o7777;
    let shown = path.display();
    if !metadata.is_file() {
        report.fail(Exit::Configuration, step, started, "not a regular file; point it at a file");
    } else if metadata.uid() != 0 {
        report.fail(
            Exit::Configuration,
            step,
            started,
            &format!("owned by uid {}, not root; run: chown root:root {shown}", metadata.uid()),
        );
    } else if mode & 0o022 != 0 {
        report.fail(
            Exit::Configuration,
            step,
            started,
            &format!("writable by group or others (mode {mode:04o}); run: chmod go-w {shown}"),
        );
    } else {
        report.pass(step, started, &format!("owner root, mode {mode:04o}"));
    }

    if let Some(directory) = path.parent() {
        if let Ok(dir) = std::fs::metadata(directory) {
            let dir_mode = dir.mode() & 0o7777;
            let sticky = dir_mode & 0o1000 != 0;
            if (dir.uid() != 0 || dir_mode & 0o022 != 0) && !sticky {
                report.warn(
                    step,
                    &format!(
                        "its directory {} (owner uid {}, mode {dir_mode:04o}) lets users other than root replace the file",
                        directory.display(),
                        dir.uid()
                    ),
                );
            }
        }
    }
}

/// Prints whether the state file marks `server` down, which makes the module
/// try it after the other servers.
pub fn show_state(report: &Report, settings: &Settings, server: &ServerUrl) {
    match DownList::read(&settings.state_file) {
        Ok(down) => {
            if let Some(seconds) = down.seconds_left(server) {
                report.detail(&format!(
                    "state file {} marks this server down for {seconds} s more, so the module tries it after the others until then or until it answers",
                    settings.state_file.display()
                ));
            }
        }
        Err(reason) => report.detail(&reason),
    }
}
