//! The `--user` step: the module's own `pam_sm_authenticate` decision
//! (`pam_mapi::auth::authenticate`) behind a command-line [`PamOps`].

use std::io::{BufRead, Read};
use std::time::Instant;

use pam_mapi::auth::{self, LogLevel, PamOps};
use pam_mapi::code::PamCode;
use zeroize::Zeroizing;

use crate::report::{elapsed, Exit, Report};

/// Maximum number of bytes read from standard input. The module itself rejects
/// passwords over 1024 bytes.
const MAX_STDIN_BYTES: u64 = 64 * 1024;

/// Reads the password: from the terminal without echo when standard input is a
/// terminal, else the first line of standard input.
pub fn read_password(user: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    // SAFETY: isatty only inspects the descriptor.
    let terminal = unsafe { libc::isatty(libc::STDIN_FILENO) } == 1;
    if terminal {
        let prompt = format!("Password for {}: ", pam_mapi::input::for_log(user));
        let password = rpassword::prompt_password(prompt).map_err(|e| format!("{e}; pipe the password into standard input instead"))?;
        return Ok(Zeroizing::new(password.into_bytes()));
    }
    // Allocated at full size up front, so that growing leaves no unwiped copies.
    // NOTE: standard input's own buffer still holds a copy until it is reused.
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_STDIN_BYTES as usize + 1));
    let read = std::io::stdin()
        .lock()
        .take(MAX_STDIN_BYTES)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("reading standard input failed: {e}"))?;
    if read == 0 {
        return Err("standard input is empty; type the password at the prompt or pipe it in followed by a newline".into());
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// A PAM handle for the command line: the user and password come from the
/// command line, and log lines go to standard error.
struct CommandLinePam {
    user: String,
    password: Zeroizing<Vec<u8>>,
    service: String,
    authenticated: Option<String>,
}

impl PamOps for CommandLinePam {
    fn user(&mut self) -> Result<Vec<u8>, PamCode> {
        Ok(self.user.as_bytes().to_vec())
    }

    /// Returns the password as if an earlier module had set it, so that
    /// use_first_pass and try_first_pass work as in a stack.
    fn stored_authtok(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        Some(self.password.clone())
    }

    fn prompt_authtok(&mut self) -> Result<Zeroizing<Vec<u8>>, PamCode> {
        Ok(self.password.clone())
    }

    fn service(&self) -> Option<String> {
        Some(self.service.clone())
    }

    fn rhost(&self) -> Option<String> {
        None
    }

    fn set_authenticated(&mut self, user: &str) {
        self.authenticated = Some(user.to_string());
    }

    fn authenticated_user(&self) -> Option<String> {
        self.authenticated.clone()
    }

    fn current_user(&self) -> Option<String> {
        Some(self.user.clone())
    }

    fn log(&self, level: LogLevel, message: &str) {
        let name = match level {
            LogLevel::Crit => "crit",
            LogLevel::Err => "err",
            LogLevel::Warning => "warning",
            LogLevel::Notice => "notice",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        };
        eprintln!("pam_mapi({}:auth): {name}: {message}", self.service);
    }
}

/// Runs the module's authentication and prints the PAM result.
pub fn authenticate(report: &mut Report, module_args: &[String], user: &str, password: Zeroizing<Vec<u8>>, service: &str) {
    let mut pam = CommandLinePam { user: user.to_string(), password, service: service.to_string(), authenticated: None };
    let started = Instant::now();
    let code = auth::authenticate(&mut pam, module_args);
    drop(pam);
    report.detail(&format!("result: {} ({})", code.name(), elapsed(started)));
    let exit = match code {
        PamCode::Success => return,
        PamCode::AuthErr => Exit::AuthFailed,
        PamCode::PermDenied => Exit::PermissionDenied,
        PamCode::AuthinfoUnavail | PamCode::Ignore => Exit::NoServerAnswered,
        _ => Exit::OtherPamResult,
    };
    report.record(exit);
}
