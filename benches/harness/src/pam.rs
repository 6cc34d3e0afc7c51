//! One PAM transaction through the real libpam: `pam_start_confdir`,
//! `pam_authenticate`, `pam_end`. Each transaction loads and unloads the modules
//! of its service file, as one saslauthd request does.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr;

pub const PAM_SUCCESS: i32 = 0;
pub const PAM_AUTH_ERR: i32 = 7;
const PAM_CONV_ERR: c_int = 19;
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

type ConversationFn =
    unsafe extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConversationFn>,
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
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
}

/// Answers every prompt with the password that `appdata` points to.
unsafe extern "C" fn conversation(
    count: c_int,
    messages: *mut *const PamMessage,
    responses: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    // SAFETY: libpam passes `count` messages and the appdata pointer given to
    // pam_start_confdir, which is a live CString for the whole transaction.
    unsafe {
        let password = &*(appdata as *const CString);
        let out = libc::calloc(count as usize, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
        if out.is_null() {
            return PAM_CONV_ERR;
        }
        for i in 0..count as usize {
            let message = &**messages.add(i);
            if message.msg_style == PAM_PROMPT_ECHO_OFF || message.msg_style == PAM_PROMPT_ECHO_ON {
                (*out.add(i)).resp = libc::strdup(password.as_ptr());
            }
        }
        *responses = out;
    }
    PAM_SUCCESS
}

/// A private PAM configuration directory with one service file and an `other`
/// file that denies, so that libpam logs no missing-`other` error per call.
pub struct Service {
    dir: PathBuf,
    name: CString,
    confdir: CString,
}

impl Service {
    /// Writes `lines` as service `name` into a new directory under `base`.
    pub fn new(base: &Path, name: &str, lines: &str) -> Service {
        let dir = base.join(format!("pam.d-{name}"));
        std::fs::create_dir_all(&dir).expect("create PAM configuration directory");
        std::fs::write(dir.join(name), lines).expect("write PAM service file");
        std::fs::write(dir.join("other"), "auth required pam_deny.so\n").expect("write PAM other file");
        let confdir = CString::new(dir.to_str().expect("UTF-8 path")).expect("path without NUL");
        Service { dir, name: CString::new(name).expect("name without NUL"), confdir }
    }

    /// Runs one transaction and returns the `pam_authenticate` code.
    pub fn authenticate(&self, user: &CString, password: &CString) -> i32 {
        let conv = PamConv { conv: Some(conversation), appdata_ptr: password as *const CString as *mut c_void };
        let mut pamh: *mut PamHandle = ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the calls, and pamh
        // is used only between a successful pam_start_confdir and pam_end.
        unsafe {
            let rc = pam_start_confdir(self.name.as_ptr(), user.as_ptr(), &conv, self.confdir.as_ptr(), &mut pamh);
            if rc != PAM_SUCCESS {
                return rc;
            }
            let auth = pam_authenticate(pamh, 0);
            pam_end(pamh, auth);
            auth
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
