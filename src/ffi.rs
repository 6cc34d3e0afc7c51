//! The libpam boundary: raw declarations, the guard every `pam_sm_*` entry point
//! goes through, and `LibPam`, which implements [`PamOps`] on a real handle.
//!
//! Nothing here decides anything; the decisions live in `auth.rs`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use zeroize::Zeroizing;

use crate::auth::{LogLevel, PamOps};
use crate::code::PamCode;

/// Opaque `pam_handle_t`.
#[repr(C)]
pub struct PamHandle {
    _private: [u8; 0],
}

pub const PAM_SERVICE: c_int = 1;
pub const PAM_USER: c_int = 2;
pub const PAM_AUTHTOK: c_int = 6;
pub const PAM_RHOST: c_int = 4;

pub const PAM_SILENT: c_int = 0x8000;
pub const PAM_PROMPT_ECHO_OFF: c_int = 1;

#[link(name = "pam")]
extern "C" {
    fn pam_get_user(pamh: *mut PamHandle, user: *mut *const c_char, prompt: *const c_char) -> c_int;
    fn pam_get_authtok(
        pamh: *mut PamHandle,
        item: c_int,
        authtok: *mut *const c_char,
        prompt: *const c_char,
    ) -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_set_data(
        pamh: *mut PamHandle,
        module_data_name: *const c_char,
        data: *mut c_void,
        cleanup: Option<unsafe extern "C" fn(*mut PamHandle, *mut c_void, c_int)>,
    ) -> c_int;
    fn pam_get_data(pamh: *const PamHandle, module_data_name: *const c_char, data: *mut *const c_void) -> c_int;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    fn pam_prompt(pamh: *mut PamHandle, style: c_int, response: *mut *mut c_char, fmt: *const c_char, ...) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
}

/// Name under which the authenticated user is stored on the handle for the account phase.
const AUTHENTICATED_DATA: &CStr = c"pam_mapi_authenticated_user";

/// Runs one entry point: checks the handle and argv, turns the C arguments into
/// strings, and catches any panic so that it becomes `PAM_SERVICE_ERR` and a
/// `LOG_CRIT` line instead of unwinding into sshd or saslauthd.
///
/// # Safety
///
/// `pamh` must be null or a handle libpam passed to the module, and `argv` must be null
/// or point to `argc` NUL-terminated strings, as libpam guarantees for `pam_sm_*` calls.
pub unsafe fn guard(
    entry: &str,
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
    body: impl FnOnce(&mut LibPam, i32, &[String]) -> PamCode,
) -> c_int {
    let log_crit = |message: &str| {
        if pamh.is_null() {
            log_without_handle(libc::LOG_CRIT, message);
        } else {
            LibPam { pamh }.log(LogLevel::Crit, message);
        }
    };
    run_guarded(entry, log_crit, || {
        if pamh.is_null() {
            log_without_handle(libc::LOG_ERR, &format!("{entry}: called with a null PAM handle"));
            return PamCode::ServiceErr;
        }
        let mut pam = LibPam { pamh };
        // SAFETY: argv/argc come from libpam as documented above.
        let args = match unsafe { collect_args(argc, argv) } {
            Ok(args) => args,
            Err(message) => {
                pam.log(LogLevel::Err, &format!("{entry}: {message}"));
                return PamCode::ServiceErr;
            }
        };
        body(&mut pam, flags, &args)
    })
}

/// Runs `body`, turning a panic into `PAM_SERVICE_ERR` and one `LOG_CRIT` line.
fn run_guarded(entry: &str, log_crit: impl Fn(&str), body: impl FnOnce() -> PamCode) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(code) => code as c_int,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            let message =
                format!("{entry}: internal error (panic: {what}); failing closed, please report this bug");
            // A second panic while logging must not escape either.
            let _ = catch_unwind(AssertUnwindSafe(|| log_crit(&message)));
            PamCode::ServiceErr as c_int
        }
    }
}

/// Copies `argv` into owned strings.
///
/// # Safety
///
/// `argv` must be null or point to `argc` valid C strings.
unsafe fn collect_args(argc: c_int, argv: *const *const c_char) -> Result<Vec<String>, String> {
    if argc < 0 {
        return Err(format!("invalid argument count {argc}"));
    }
    if argc > 0 && argv.is_null() {
        return Err(format!("argument vector is null although argc is {argc}"));
    }
    let mut args = Vec::with_capacity(argc as usize);
    for i in 0..argc as usize {
        // SAFETY: i < argc, and argv points to argc pointers.
        let arg = unsafe { *argv.add(i) };
        if arg.is_null() {
            return Err(format!("module argument {i} is a null pointer"));
        }
        // SAFETY: libpam's arguments are NUL-terminated strings.
        let text = unsafe { CStr::from_ptr(arg) };
        match text.to_str() {
            Ok(s) => args.push(s.to_string()),
            Err(_) => {
                return Err(format!(
                    "module argument {:?} is not valid UTF-8; fix the line in the pam.d file",
                    text.to_string_lossy()
                ))
            }
        }
    }
    Ok(args)
}

/// Logs through syslog(3) with the authpriv facility when no handle is available.
fn log_without_handle(priority: c_int, message: &str) {
    let line = CString::new(format!("pam_mapi: {}", message.replace('\0', "\\0"))).unwrap_or_default();
    // SAFETY: both strings are NUL-terminated; "%s" consumes exactly one string argument.
    unsafe { libc::syslog(libc::LOG_AUTHPRIV | priority, c"%s".as_ptr(), line.as_ptr()) };
}

/// A live libpam handle.
pub struct LibPam {
    pamh: *mut PamHandle,
}

impl LibPam {
    fn string_item(&self, item: c_int) -> Option<String> {
        let mut value: *const c_void = ptr::null();
        // SAFETY: pamh is a valid handle; libpam writes a pointer it owns into `value`.
        let rc = unsafe { pam_get_item(self.pamh, item, &mut value) };
        if rc != 0 || value.is_null() {
            return None;
        }
        // SAFETY: string items are NUL-terminated C strings owned by libpam.
        let text = unsafe { CStr::from_ptr(value as *const c_char) };
        Some(text.to_string_lossy().into_owned())
    }
}

/// Frees the user name stored with `pam_set_data`.
///
/// # Safety
///
/// Called by libpam with the pointer that `set_authenticated` stored.
unsafe extern "C" fn free_authenticated(_pamh: *mut PamHandle, data: *mut c_void, _error_status: c_int) {
    if !data.is_null() {
        // SAFETY: the pointer came from CString::into_raw in set_authenticated.
        drop(unsafe { CString::from_raw(data as *mut c_char) });
    }
}

impl PamOps for LibPam {
    fn user(&mut self) -> Result<Vec<u8>, PamCode> {
        let mut user: *const c_char = ptr::null();
        // SAFETY: pamh is valid; a null prompt lets libpam use its default prompt.
        let rc = unsafe { pam_get_user(self.pamh, &mut user, ptr::null()) };
        if rc != 0 {
            return Err(PamCode::from_raw(rc));
        }
        if user.is_null() {
            return Err(PamCode::UserUnknown);
        }
        // SAFETY: libpam returns a NUL-terminated string that it owns.
        Ok(unsafe { CStr::from_ptr(user) }.to_bytes().to_vec())
    }

    fn stored_authtok(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        let mut value: *const c_void = ptr::null();
        // SAFETY: pamh is valid; libpam writes a pointer it owns into `value`.
        let rc = unsafe { pam_get_item(self.pamh, PAM_AUTHTOK, &mut value) };
        if rc != 0 || value.is_null() {
            return None;
        }
        // SAFETY: PAM_AUTHTOK is a NUL-terminated string owned by libpam.
        Some(Zeroizing::new(unsafe { CStr::from_ptr(value as *const c_char) }.to_bytes().to_vec()))
    }

    fn prompt_authtok(&mut self) -> Result<Zeroizing<Vec<u8>>, PamCode> {
        let mut token: *const c_char = ptr::null();
        // SAFETY: pamh is valid; pam_get_authtok prompts through the conversation and
        // stores the answer as PAM_AUTHTOK, which it owns.
        let rc = unsafe { pam_get_authtok(self.pamh, PAM_AUTHTOK, &mut token, ptr::null()) };
        if rc != 0 {
            return Err(PamCode::from_raw(rc));
        }
        if token.is_null() {
            return Err(PamCode::AuthErr);
        }
        // SAFETY: as above.
        Ok(Zeroizing::new(unsafe { CStr::from_ptr(token) }.to_bytes().to_vec()))
    }

    fn prompt_new_authtok(&mut self) -> Result<Zeroizing<Vec<u8>>, PamCode> {
        let mut response: *mut c_char = ptr::null_mut();
        // SAFETY: pamh is valid; pam_prompt runs the application's conversation and
        // hands us a malloc'd reply, which we wipe and free below.
        let rc = unsafe { pam_prompt(self.pamh, PAM_PROMPT_ECHO_OFF, &mut response, c"%s".as_ptr(), c"Password: ".as_ptr()) };
        if rc != 0 {
            return Err(PamCode::from_raw(rc));
        }
        if response.is_null() {
            return Err(PamCode::ConvErr);
        }
        // SAFETY: the reply is a NUL-terminated string that we own.
        let length = unsafe { CStr::from_ptr(response) }.to_bytes().len();
        // SAFETY: the reply has `length` readable bytes before its NUL.
        let token = Zeroizing::new(unsafe { std::slice::from_raw_parts(response as *const u8, length) }.to_vec());
        // SAFETY: libpam copies the string into its own PAM_AUTHTOK item.
        let stored = unsafe { pam_set_item(self.pamh, PAM_AUTHTOK, response as *const c_void) };
        // SAFETY: no other reference to the reply exists; it is wiped, then freed
        // with the allocator the conversation used (malloc).
        unsafe {
            zeroize::Zeroize::zeroize(std::slice::from_raw_parts_mut(response as *mut u8, length));
            libc::free(response as *mut c_void);
        }
        if stored != 0 {
            return Err(PamCode::from_raw(stored));
        }
        Ok(token)
    }

    fn service(&self) -> Option<String> {
        self.string_item(PAM_SERVICE)
    }

    fn rhost(&self) -> Option<String> {
        self.string_item(PAM_RHOST)
    }

    fn set_authenticated(&mut self, user: &str) {
        let Ok(value) = CString::new(user) else { return };
        let raw = value.into_raw();
        // SAFETY: pamh is valid; libpam keeps the pointer until pam_end or a later
        // pam_set_data with the same name, then calls free_authenticated on it.
        let rc = unsafe { pam_set_data(self.pamh, AUTHENTICATED_DATA.as_ptr(), raw as *mut c_void, Some(free_authenticated)) };
        if rc != 0 {
            // SAFETY: libpam did not take the pointer, so it is still ours.
            drop(unsafe { CString::from_raw(raw) });
        }
    }

    fn authenticated_user(&self) -> Option<String> {
        let mut value: *const c_void = ptr::null();
        // SAFETY: pamh is valid; the data, if any, is the CString stored above.
        let rc = unsafe { pam_get_data(self.pamh, AUTHENTICATED_DATA.as_ptr(), &mut value) };
        if rc != 0 || value.is_null() {
            return None;
        }
        // SAFETY: the stored data is a NUL-terminated string that lives until pam_end.
        Some(unsafe { CStr::from_ptr(value as *const c_char) }.to_string_lossy().into_owned())
    }

    fn current_user(&self) -> Option<String> {
        self.string_item(PAM_USER)
    }

    fn log(&self, level: LogLevel, message: &str) {
        let line = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
        // SAFETY: pamh is valid; "%s" consumes exactly one NUL-terminated string.
        unsafe { pam_syslog(self.pamh, level.priority(), c"%s".as_ptr(), line.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_panic_into_service_err() {
        let logged = std::cell::RefCell::new(Vec::<String>::new());
        let rc = run_guarded("pam_sm_authenticate", |m| logged.borrow_mut().push(m.to_string()), || {
            panic!("deliberate test panic")
        });
        assert_eq!(rc, PamCode::ServiceErr as c_int);
        let lines = logged.borrow();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("deliberate test panic"), "{lines:?}");
    }

    #[test]
    fn guard_survives_panic_while_logging() {
        let rc = run_guarded("pam_sm_authenticate", |_| panic!("logger broke"), || panic!("first"));
        assert_eq!(rc, PamCode::ServiceErr as c_int);
    }

    #[test]
    fn guard_passes_result_through() {
        let rc = run_guarded("pam_sm_authenticate", |_| {}, || PamCode::AuthErr);
        assert_eq!(rc, PamCode::AuthErr as c_int);
    }

    #[test]
    fn guard_rejects_null_handle() {
        let mut ran = false;
        let rc = unsafe {
            guard("pam_sm_authenticate", ptr::null_mut(), 0, 0, ptr::null(), |_, _, _| {
                ran = true;
                PamCode::Success
            })
        };
        assert_eq!(rc, PamCode::ServiceErr as c_int);
        assert!(!ran, "the body must not run without a handle");
    }

    #[test]
    fn collect_args_rejects_null_argv() {
        let result = unsafe { collect_args(2, ptr::null()) };
        assert!(result.is_err());
    }

    #[test]
    fn collect_args_rejects_negative_argc() {
        let result = unsafe { collect_args(-1, ptr::null()) };
        assert!(result.is_err());
    }

    #[test]
    fn collect_args_copies_strings() {
        let a = c"debug";
        let b = c"socket=http://127.0.0.1:236/";
        let argv = [a.as_ptr(), b.as_ptr()];
        let args = unsafe { collect_args(2, argv.as_ptr()) }.unwrap();
        assert_eq!(args, vec!["debug".to_string(), "socket=http://127.0.0.1:236/".to_string()]);
    }
}
