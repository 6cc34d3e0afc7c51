//! The authentication and account decisions, written against [`PamOps`] instead of
//! a raw handle so that unit tests can drive them with a scripted fake.

use std::time::Instant;

use zeroize::Zeroizing;

use crate::backend::{self, Credentials};
use crate::code::{decide, Outcome, PamCode};
use crate::input::{self, for_log, for_log_cut_at};
use crate::options::Settings;
use crate::throttle::{failed_logons, Recorded, Throttle};

/// syslog priorities, as Linux-PAM modules use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

impl LogLevel {
    pub fn priority(self) -> i32 {
        match self {
            LogLevel::Crit => libc::LOG_CRIT,
            LogLevel::Err => libc::LOG_ERR,
            LogLevel::Warning => libc::LOG_WARNING,
            LogLevel::Notice => libc::LOG_NOTICE,
            LogLevel::Info => libc::LOG_INFO,
            LogLevel::Debug => libc::LOG_DEBUG,
        }
    }
}

/// Operations on a PAM handle that the decisions use.
pub trait PamOps {
    /// Returns the user name, prompting if the application has not set one.
    fn user(&mut self) -> Result<Vec<u8>, PamCode>;
    /// `PAM_AUTHTOK` as an earlier module left it, without prompting.
    fn stored_authtok(&mut self) -> Option<Zeroizing<Vec<u8>>>;
    /// `PAM_AUTHTOK`, prompting once through the conversation if it is not set.
    fn prompt_authtok(&mut self) -> Result<Zeroizing<Vec<u8>>, PamCode>;
    /// Prompts for the password even if an earlier module set `PAM_AUTHTOK`, and
    /// stores the reply as `PAM_AUTHTOK`, as pam_unix does without
    /// `try_first_pass`.
    fn prompt_new_authtok(&mut self) -> Result<Zeroizing<Vec<u8>>, PamCode> {
        self.prompt_authtok()
    }
    fn service(&self) -> Option<String>;
    fn rhost(&self) -> Option<String>;
    /// Remembers on the handle that this user authenticated through pam_mapi.
    fn set_authenticated(&mut self, user: &str);
    fn authenticated_user(&self) -> Option<String>;
    /// `PAM_USER` as it is now.
    fn current_user(&self) -> Option<String>;
    fn log(&self, level: LogLevel, message: &str);
}

/// Implements `pam_sm_authenticate`: reads the user and password, checks them
/// locally, sends the logon to the server, logs the result and maps it to a PAM code.
pub fn authenticate(pam: &mut dyn PamOps, args: &[String]) -> PamCode {
    let settings = match Settings::load(args) {
        Ok(settings) => settings,
        Err(e) => {
            pam.log(LogLevel::Err, &format!("invalid configuration, failing closed: {e}"));
            return PamCode::ServiceErr;
        }
    };
    let service = pam.service().unwrap_or_default();
    let rhost = pam.rhost();
    let context = |user: &str| {
        format!(
            "user=\"{}\" service=\"{}\" rhost=\"{}\"",
            for_log(user),
            for_log(&service),
            for_log(rhost.as_deref().unwrap_or(""))
        )
    };

    let raw_user = match pam.user() {
        Ok(user) => user,
        Err(code) => {
            pam.log(LogLevel::Err, &format!("cannot get the user name: {}", code.name()));
            return code;
        }
    };
    let pam_user = match input::check_user(&raw_user) {
        Ok(user) => user,
        Err(reason) => {
            let shown = for_log(&String::from_utf8_lossy(&raw_user));
            pam.log(LogLevel::Info, &format!("rejected without asking the server: {reason}; user=\"{shown}\""));
            return PamCode::AuthErr;
        }
    };
    let user = input::map_user(&pam_user, &settings);

    let token = if settings.use_first_pass {
        match pam.stored_authtok() {
            Some(token) => token,
            None => {
                pam.log(
                    LogLevel::Err,
                    &format!("use_first_pass is set but no earlier module set a password; {}", context(&user)),
                );
                return PamCode::AuthtokRecoveryErr;
            }
        }
    } else if settings.try_first_pass {
        match pam.prompt_authtok() {
            Ok(token) => token,
            Err(code) => {
                pam.log(LogLevel::Err, &format!("cannot get the password: {}; {}", code.name(), context(&user)));
                return code;
            }
        }
    } else {
        match pam.prompt_new_authtok() {
            Ok(token) => token,
            Err(code) => {
                pam.log(LogLevel::Err, &format!("cannot get the password: {}; {}", code.name(), context(&user)));
                return code;
            }
        }
    };
    let password = match input::check_password(&token) {
        Ok(password) => password,
        Err(reason) => {
            pam.log(LogLevel::Info, &format!("rejected without asking the server: {reason}; {}", context(&user)));
            return PamCode::AuthErr;
        }
    };
    drop(token);

    let deadline = Instant::now() + settings.timeout;
    let started = Instant::now();
    let log = |level: LogLevel, message: &str| pam.log(level, &format!("{message}; {}", context(&user)));
    let creds = Credentials { user: &user, password: &password, service: &service, rhost: rhost.as_deref() };
    let throttle = Throttle::new(&settings, &user, rhost.as_deref());
    let throttled = throttle.as_ref().and_then(|t| t.check(&|warning| log(LogLevel::Warning, warning)));
    let outcome = match throttled {
        Some(reason) => Outcome::InputRejected(reason),
        None => {
            let outcome = backend::check(&settings, &creds, deadline, &log);
            if let Some(throttle) = &throttle {
                record_for_throttle(throttle, &outcome, &log);
            }
            outcome
        }
    };
    drop(password);
    let code = decide(&outcome, &settings);

    let servers = settings.servers.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" ");
    let elapsed = started.elapsed().as_millis();
    let line = |what: &str, reason: &str| {
        format!("{what}; {} server=\"{servers}\" reason=\"{}\" result={} elapsed_ms={elapsed}", context(&user), for_log_cut_at(reason, 2048), code.name())
    };
    match &outcome {
        Outcome::Confirmed => {
            if settings.debug {
                pam.log(LogLevel::Debug, &line("authentication succeeded", "server confirmed the password"));
            }
            pam.set_authenticated(&pam_user);
        }
        Outcome::LogonFailed(reason) => {
            if !settings.quiet {
                pam.log(LogLevel::Notice, &line("authentication failure", reason));
            }
        }
        Outcome::InputRejected(reason) => pam.log(LogLevel::Info, &line("rejected without asking the server", reason)),
        Outcome::Unavailable(reason) => pam.log(LogLevel::Err, &line("no server could answer", reason)),
        Outcome::ServiceError(reason) => pam.log(LogLevel::Err, &line("service error", reason)),
        Outcome::FeatureDenied(reason) => pam.log(LogLevel::Notice, &line("permission denied", reason)),
    }
    code
}

/// Counts a failed logon for throttling, or clears the count after a right
/// password, and logs when a pair starts being throttled.
fn record_for_throttle(throttle: &Throttle, outcome: &Outcome, log: &dyn Fn(LogLevel, &str)) {
    match throttle.record(outcome, &|warning| log(LogLevel::Warning, warning)) {
        Ok(Recorded::Failure { failures, started: true }) => log(
            LogLevel::Notice,
            &format!(
                "throttling after {}: further attempts are rejected without asking the server until {} s after the last failure",
                failed_logons(failures),
                throttle.window().as_secs()
            ),
        ),
        Ok(_) => {}
        Err(e) => log(LogLevel::Warning, &format!("{e}; the throttle file was not updated for this attempt")),
    }
}

/// `pam_sm_acct_mgmt`: PAM_SUCCESS for the user this handle authenticated through
/// pam_mapi, PAM_IGNORE for anyone else, so that a stack can fall through to the
/// next account module.
pub fn acct_mgmt(pam: &mut dyn PamOps, args: &[String]) -> PamCode {
    let settings = match Settings::load_unchecked(args) {
        Ok(settings) => settings,
        Err(e) => {
            pam.log(LogLevel::Err, &format!("invalid configuration, failing closed: {e}"));
            return PamCode::ServiceErr;
        }
    };
    let current = pam.current_user();
    let code = match (pam.authenticated_user(), &current) {
        (Some(authenticated), Some(current)) if &authenticated == current => PamCode::Success,
        _ => PamCode::Ignore,
    };
    if settings.debug {
        pam.log(
            LogLevel::Debug,
            &format!("account check; user=\"{}\" result={}", for_log(current.as_deref().unwrap_or("")), code.name()),
        );
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A scripted handle.
    #[derive(Default)]
    struct FakePam {
        user: Vec<u8>,
        stored: Option<Vec<u8>>,
        prompt_answer: Option<Vec<u8>>,
        prompts: usize,
        authenticated: Option<String>,
        logs: RefCell<Vec<(LogLevel, String)>>,
    }

    impl PamOps for FakePam {
        fn user(&mut self) -> Result<Vec<u8>, PamCode> {
            Ok(self.user.clone())
        }
        fn stored_authtok(&mut self) -> Option<Zeroizing<Vec<u8>>> {
            self.stored.clone().map(Zeroizing::new)
        }
        fn prompt_authtok(&mut self) -> Result<Zeroizing<Vec<u8>>, PamCode> {
            if let Some(stored) = &self.stored {
                return Ok(Zeroizing::new(stored.clone()));
            }
            self.prompts += 1;
            self.prompt_answer.clone().map(Zeroizing::new).ok_or(PamCode::ConvErr)
        }
        fn prompt_new_authtok(&mut self) -> Result<Zeroizing<Vec<u8>>, PamCode> {
            self.prompts += 1;
            self.prompt_answer.clone().map(Zeroizing::new).ok_or(PamCode::ConvErr)
        }
        fn service(&self) -> Option<String> {
            Some("smtp".into())
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
            String::from_utf8(self.user.clone()).ok()
        }
        fn log(&self, level: LogLevel, message: &str) {
            self.logs.borrow_mut().push((level, message.to_string()));
        }
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// A server URL nothing listens on; tests that reach it fail with
    /// PAM_AUTHINFO_UNAVAIL, so a test expecting another code proves no request.
    const DEAD: &str = "socket=file:///nonexistent/pam_mapi-test.sock";

    #[test]
    fn authenticate_rejects_empty_password_locally() {
        let mut pam = FakePam { user: b"alice".to_vec(), prompt_answer: Some(Vec::new()), ..Default::default() };
        assert_eq!(authenticate(&mut pam, &args(&[DEAD])), PamCode::AuthErr);
        let logs = pam.logs.borrow();
        let line = logs.iter().find(|(_, m)| m.contains("password is empty")).expect("a line about the empty password");
        assert_eq!(line.0, LogLevel::Info);
    }

    #[test]
    fn authenticate_rejects_control_character_user_locally() {
        let mut pam = FakePam { user: b"al\x01ice".to_vec(), prompt_answer: Some(b"pw".to_vec()), ..Default::default() };
        assert_eq!(authenticate(&mut pam, &args(&[DEAD])), PamCode::AuthErr);
        assert_eq!(pam.prompts, 0);
    }

    #[test]
    fn authenticate_invalid_argument_is_service_err() {
        let mut pam = FakePam { user: b"alice".to_vec(), prompt_answer: Some(b"pw".to_vec()), ..Default::default() };
        assert_eq!(authenticate(&mut pam, &args(&["bogus"])), PamCode::ServiceErr);
        assert!(pam.logs.borrow()[0].1.contains("bogus"));
    }

    #[test]
    fn authenticate_use_first_pass_never_prompts() {
        let mut pam = FakePam { user: b"alice".to_vec(), prompt_answer: Some(b"pw".to_vec()), ..Default::default() };
        assert_eq!(authenticate(&mut pam, &args(&[DEAD, "use_first_pass"])), PamCode::AuthtokRecoveryErr);
        assert_eq!(pam.prompts, 0);
    }

    #[test]
    fn authenticate_unreachable_server_is_authinfo_unavail() {
        let mut pam = FakePam { user: b"alice".to_vec(), prompt_answer: Some(b"pw".to_vec()), ..Default::default() };
        assert_eq!(authenticate(&mut pam, &args(&[DEAD])), PamCode::AuthinfoUnavail);
        assert!(pam.authenticated.is_none());
    }

    #[test]
    fn acct_mgmt_ignores_unauthenticated_user() {
        let mut pam = FakePam { user: b"alice".to_vec(), ..Default::default() };
        assert_eq!(acct_mgmt(&mut pam, &[]), PamCode::Ignore);
    }

    #[test]
    fn acct_mgmt_accepts_authenticated_user() {
        let mut pam = FakePam { user: b"alice".to_vec(), authenticated: Some("alice".into()), ..Default::default() };
        assert_eq!(acct_mgmt(&mut pam, &[]), PamCode::Success);
    }

    #[test]
    fn acct_mgmt_ignores_other_user() {
        let mut pam = FakePam { user: b"bob".to_vec(), authenticated: Some("alice".into()), ..Default::default() };
        assert_eq!(acct_mgmt(&mut pam, &[]), PamCode::Ignore);
    }
}
