//! PAM return codes, and the one function that turns the result of an
//! authentication attempt into the code libpam receives.

use crate::options::Settings;

/// The Linux-PAM return codes this module uses or passes through (values from
/// `security/_pam_types.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum PamCode {
    Success = 0,
    ServiceErr = 3,
    SystemErr = 4,
    BufErr = 5,
    PermDenied = 6,
    AuthErr = 7,
    CredInsufficient = 8,
    AuthinfoUnavail = 9,
    UserUnknown = 10,
    Maxtries = 11,
    ConvErr = 19,
    AuthtokRecoveryErr = 21,
    Ignore = 25,
    Abort = 26,
    Incomplete = 31,
}

impl PamCode {
    /// Maps a code that libpam returned to us (from `pam_get_user`, say) to the
    /// same code, so that it can be passed through. Success is not expected here;
    /// anything unknown becomes `PAM_SYSTEM_ERR`, never success.
    pub fn from_raw(rc: i32) -> PamCode {
        match rc {
            3 => PamCode::ServiceErr,
            5 => PamCode::BufErr,
            6 => PamCode::PermDenied,
            7 => PamCode::AuthErr,
            8 => PamCode::CredInsufficient,
            9 => PamCode::AuthinfoUnavail,
            10 => PamCode::UserUnknown,
            11 => PamCode::Maxtries,
            19 => PamCode::ConvErr,
            21 => PamCode::AuthtokRecoveryErr,
            25 => PamCode::Ignore,
            26 => PamCode::Abort,
            31 => PamCode::Incomplete,
            _ => PamCode::SystemErr,
        }
    }

    /// Returns the symbolic name from the Linux-PAM headers, for log lines and tests.
    pub fn name(self) -> &'static str {
        match self {
            PamCode::Success => "PAM_SUCCESS",
            PamCode::ServiceErr => "PAM_SERVICE_ERR",
            PamCode::SystemErr => "PAM_SYSTEM_ERR",
            PamCode::BufErr => "PAM_BUF_ERR",
            PamCode::PermDenied => "PAM_PERM_DENIED",
            PamCode::AuthErr => "PAM_AUTH_ERR",
            PamCode::CredInsufficient => "PAM_CRED_INSUFFICIENT",
            PamCode::AuthinfoUnavail => "PAM_AUTHINFO_UNAVAIL",
            PamCode::UserUnknown => "PAM_USER_UNKNOWN",
            PamCode::Maxtries => "PAM_MAXTRIES",
            PamCode::ConvErr => "PAM_CONV_ERR",
            PamCode::AuthtokRecoveryErr => "PAM_AUTHTOK_RECOVERY_ERR",
            PamCode::Ignore => "PAM_IGNORE",
            PamCode::Abort => "PAM_ABORT",
            PamCode::Incomplete => "PAM_INCOMPLETE",
        }
    }
}

/// The result of an authentication attempt: the server's reply, or the local check that
/// stopped the attempt before any request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server positively confirmed the password.
    Confirmed,
    /// The server replied that the logon failed (wrong password, unknown user).
    LogonFailed(String),
    /// The input cannot be sent (empty password, control characters, too long), so
    /// it was rejected without a request.
    InputRejected(String),
    /// No server sent a usable reply: connect, TLS, timeout, HTTP status, fault,
    /// unreadable or oversized reply, redirect.
    Unavailable(String),
    /// The server replied but rejects this client (version, capabilities), or the
    /// module is misconfigured.
    ServiceError(String),
    /// The password is right, but none of the `service=` features is enabled.
    FeatureDenied(String),
}

/// Maps an outcome to the PAM code. This is the only place where that happens.
///
/// | outcome | code |
/// |---|---|
/// | `Confirmed` | `PAM_SUCCESS` |
/// | `LogonFailed`, `InputRejected` | `PAM_AUTH_ERR` |
/// | `Unavailable` | `PAM_AUTHINFO_UNAVAIL`, or `PAM_IGNORE` with `ignore_authinfo_unavail` |
/// | `ServiceError` | `PAM_SERVICE_ERR` |
/// | `FeatureDenied` | `PAM_PERM_DENIED` |
pub fn decide(outcome: &Outcome, settings: &Settings) -> PamCode {
    match outcome {
        Outcome::Confirmed => PamCode::Success,
        Outcome::LogonFailed(_) | Outcome::InputRejected(_) => PamCode::AuthErr,
        Outcome::Unavailable(_) if settings.ignore_authinfo_unavail => PamCode::Ignore,
        Outcome::Unavailable(_) => PamCode::AuthinfoUnavail,
        Outcome::ServiceError(_) => PamCode::ServiceErr,
        Outcome::FeatureDenied(_) => PamCode::PermDenied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::from_args(&[]).unwrap()
    }

    #[test]
    fn decide_confirmed_is_success() {
        assert_eq!(decide(&Outcome::Confirmed, &settings()), PamCode::Success);
    }

    #[test]
    fn decide_logon_failed_is_auth_err() {
        assert_eq!(decide(&Outcome::LogonFailed("x".into()), &settings()), PamCode::AuthErr);
    }

    #[test]
    fn decide_input_rejected_is_auth_err() {
        assert_eq!(decide(&Outcome::InputRejected("x".into()), &settings()), PamCode::AuthErr);
    }

    #[test]
    fn decide_unavailable_is_authinfo_unavail() {
        assert_eq!(decide(&Outcome::Unavailable("x".into()), &settings()), PamCode::AuthinfoUnavail);
    }

    #[test]
    fn decide_unavailable_with_ignore_option() {
        let settings = Settings::from_args(&["ignore_authinfo_unavail".to_string()]).unwrap();
        assert_eq!(decide(&Outcome::Unavailable("x".into()), &settings), PamCode::Ignore);
    }

    #[test]
    fn decide_service_error_is_service_err() {
        assert_eq!(decide(&Outcome::ServiceError("x".into()), &settings()), PamCode::ServiceErr);
    }

    #[test]
    fn decide_feature_denied_is_perm_denied() {
        assert_eq!(decide(&Outcome::FeatureDenied("x".into()), &settings()), PamCode::PermDenied);
    }

    #[test]
    fn from_raw_never_yields_success() {
        for rc in -5..40 {
            assert_ne!(PamCode::from_raw(rc), PamCode::Success, "rc {rc}");
        }
    }
}
