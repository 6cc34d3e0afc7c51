//! pam_mapi: a PAM module that checks a user name and password by logging on to a
//! Kopano or Zarafa server over its SOAP protocol ("MAPI in SOAP"), or to a
//! grommunio or Exchange server over MAPI over HTTP.
//!
//! This file holds only the exported `pam_sm_*` entry points. Each one goes through
//! [`ffi::guard`], which catches panics and bad handles; the decisions are in
//! [`auth`], the PAM code mapping in [`code::decide`].

use std::ffi::{c_char, c_int};

pub mod auth;
pub mod backend;
pub mod code;
pub mod ffi;
pub mod input;
pub mod mapihttp;
pub mod options;
pub mod redact;
pub mod server;
pub mod shared_file;
pub mod soap;
pub mod state;
pub mod throttle;
pub mod transport;

use code::PamCode;
use ffi::{guard, PamHandle};

/// Authenticates the user with the server.
///
/// # Safety
///
/// Called by libpam with a valid handle and `argc` argument strings.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments come straight from libpam.
    unsafe { guard("pam_sm_authenticate", pamh, flags, argc, argv, |pam, _, args| auth::authenticate(pam, args)) }
}

/// Sets no credentials; returns PAM_SUCCESS as pam_unix does, so that a stack that
/// calls setcred after a successful authentication goes on.
///
/// # Safety
///
/// Called by libpam with a valid handle and `argc` argument strings.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_setcred(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments come straight from libpam.
    unsafe { guard("pam_sm_setcred", pamh, flags, argc, argv, |_, _, _| PamCode::Success) }
}

/// PAM_SUCCESS for the user this handle authenticated through pam_mapi,
/// PAM_IGNORE otherwise.
///
/// # Safety
///
/// Called by libpam with a valid handle and `argc` argument strings.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_acct_mgmt(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments come straight from libpam.
    unsafe { guard("pam_sm_acct_mgmt", pamh, flags, argc, argv, |pam, _, args| auth::acct_mgmt(pam, args)) }
}

/// Not provided: PAM_SERVICE_ERR, as Linux-PAM's own modules return for a module
/// type they do not implement.
///
/// # Safety
///
/// Called by libpam with a valid handle and `argc` argument strings.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_open_session(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments come straight from libpam.
    unsafe { guard("pam_sm_open_session", pamh, flags, argc, argv, |_, _, _| PamCode::ServiceErr) }
}

/// Not provided: PAM_SERVICE_ERR.
///
/// # Safety
///
/// Called by libpam with a valid handle and `argc` argument strings.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_close_session(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments come straight from libpam.
    unsafe { guard("pam_sm_close_session", pamh, flags, argc, argv, |_, _, _| PamCode::ServiceErr) }
}

/// Not provided: PAM_SERVICE_ERR. Passwords are changed on the groupware server.
///
/// # Safety
///
/// Called by libpam with a valid handle and `argc` argument strings.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_chauthtok(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments come straight from libpam.
    unsafe { guard("pam_sm_chauthtok", pamh, flags, argc, argv, |_, _, _| PamCode::ServiceErr) }
}
