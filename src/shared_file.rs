//! Small files that saslauthd's worker processes share: the state file of servers
//! found down and the throttle file. Both are trusted only when they are regular
//! files owned by root (or by this process's user) and writable by no one else,
//! and both are replaced atomically, so readers never see half a file.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Reads the file named `what` in messages. Returns `None` when it does not
/// exist, and `Err` with the reason when it exists but must not be trusted.
pub fn read(path: &Path, what: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, String> {
    let shown = path.display();
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {what} {shown}: {e}")),
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if !metadata.is_file() || (metadata.uid() != 0 && metadata.uid() != euid) || metadata.mode() & 0o022 != 0 {
        return Err(format!(
            "ignoring {what} {shown}: it must be a regular file owned by root and writable only by its owner; remove it, and pam_mapi writes a new one"
        ));
    }
    if metadata.len() > max_bytes {
        return Err(format!("ignoring {what} {shown}: larger than {max_bytes} bytes; remove it"));
    }
    std::fs::read(path).map(Some).map_err(|e| format!("cannot read {what} {shown}: {e}"))
}

/// Writes `contents` to a temporary file in the same directory, then renames it
/// over `path`. The directory is created with mode 0700 if it is missing. The
/// temporary file is created exclusively and never through a symlink, so that a
/// file planted under its name cannot make root write elsewhere.
pub fn write(path: &Path, what: &str, contents: &[u8]) -> Result<(), String> {
    let temporary = temporary_path(path, what)?;
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(contents)?;
        std::fs::rename(&temporary, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot write {what} {}: {e}", path.display())
    })
}

/// Builds a temporary file name that is unique per process and per call, because
/// several threads of one process may load the module.
fn temporary_path(path: &Path, what: &str) -> Result<PathBuf, String> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let dir = directory(path, what)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(dir.join(format!(".{name}.{}.{}", std::process::id(), CALLS.fetch_add(1, Ordering::Relaxed))))
}

/// Returns the file's directory, creating it with mode 0700 if it is missing.
pub fn directory<'a>(path: &'a Path, what: &str) -> Result<&'a Path, String> {
    let dir = path.parent().ok_or_else(|| format!("{what} {} has no directory", path.display()))?;
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?;
    }
    Ok(dir)
}
