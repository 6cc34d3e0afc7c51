//! Small files that saslauthd's worker processes share: the state file of servers
//! found down and the throttle file. Both are trusted only when they are regular
//! files owned by root (or by this process's user) and writable by no one else,
//! and both are replaced atomically, so readers never see half a file.
//!
//! Each file starts with a header line of its own. A file at the configured path
//! whose first line is not that header (an empty file included) is neither read
//! nor replaced. Neither is a symbolic link, device, FIFO, socket or directory.
//! So a `state_file=/dev/null` or a path mistyped to `/etc/shadow` cannot destroy
//! that file.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A shared file: its path, the name used in messages (`state file`), and the
/// header line its contents start with.
pub struct SharedFile<'a> {
    pub path: &'a Path,
    pub what: &'static str,
    pub header: &'static str,
}

impl SharedFile<'_> {
    /// Returns the option that names this file (`state_file`), for messages.
    fn option(&self) -> String {
        self.what.replace(' ', "_")
    }

    /// Reads the file. Returns `None` when it does not exist, and `Err` with the
    /// reason when it exists but must not be trusted. The checks run on the open
    /// file, so that the path cannot be swapped between check and read.
    pub fn read(&self, max_bytes: u64) -> Result<Option<Vec<u8>>, String> {
        use std::io::Read;

        let (what, shown) = (self.what, self.path.display());
        let file = match self.open() {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.unusable("ignoring", &e)),
        };
        let metadata = file.metadata().map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
        if !metadata.is_file() {
            return Err(self.not_regular("ignoring"));
        }
        if let Some(dir) = self.path.parent() {
            check_directory(dir, what)?;
        }
        let mut bytes = Vec::new();
        file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
        if !self.has_header(&bytes) {
            return Err(self.foreign());
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if (metadata.uid() != 0 && metadata.uid() != euid) || metadata.mode() & 0o022 != 0 {
            return Err(format!(
                "ignoring {what} {shown}: it must be owned by root and writable only by its owner; remove it, and pam_mapi writes a new one"
            ));
        }
        if bytes.len() as u64 > max_bytes {
            return Err(format!("ignoring {what} {shown}: larger than {max_bytes} bytes; remove it, and pam_mapi writes a new one"));
        }
        Ok(Some(bytes))
    }

    /// Writes the header and `lines` (see [`write`]), unless the path contains
    /// something that is not this file (see the module documentation).
    pub fn write(&self, lines: &str) -> Result<(), String> {
        directory(self.path, self.what)?;
        self.replaceable()?;
        let contents = format!("{}\n{lines}", self.header);
        write(self.path, self.what, contents.as_bytes())
    }

    /// Returns `Err` when the path contains something that [`write`] must not
    /// replace: a symbolic link, device, FIFO, socket or directory, or a file
    /// (even an empty one) that does not start with the header line.
    ///
    /// [`write`]: SharedFile::write
    pub fn replaceable(&self) -> Result<(), String> {
        use std::io::Read;

        let file = match self.open() {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.unusable("not replacing", &e)),
        };
        let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
        if !is_file {
            return Err(self.not_regular("not replacing"));
        }
        let mut start = Vec::new();
        file.take(self.header.len() as u64 + 1)
            .read_to_end(&mut start)
            .map_err(|e| format!("cannot read {} {}: {e}", self.what, self.path.display()))?;
        if !self.has_header(&start) {
            return Err(self.foreign());
        }
        Ok(())
    }

    /// Opens the path for reading without following a symbolic link, and without
    /// blocking on a FIFO.
    fn open(&self) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(self.path)
    }

    /// Tells whether `bytes` start with the header as a whole line.
    fn has_header(&self, bytes: &[u8]) -> bool {
        bytes.starts_with(self.header.as_bytes()) && bytes.get(self.header.len()) == Some(&b'\n')
    }

    /// Describes an open that failed; `ELOOP` means a symbolic link.
    fn unusable(&self, action: &str, error: &std::io::Error) -> String {
        if error.raw_os_error() == Some(libc::ELOOP) {
            return format!(
                "{action} {} {}: it is a symbolic link; set {}= to a path of its own",
                self.what,
                self.path.display(),
                self.option()
            );
        }
        format!("cannot read {} {}: {error}", self.what, self.path.display())
    }

    fn not_regular(&self, action: &str) -> String {
        format!("{action} {} {}: not a regular file; set {}= to a path of its own", self.what, self.path.display(), self.option())
    }

    fn foreign(&self) -> String {
        format!(
            "not using {} {}: its first line is not \"{}\", so it is not pam_mapi's; set {}= to a path of its own, or remove the file if it is a damaged copy",
            self.what,
            self.path.display(),
            self.header,
            self.option()
        )
    }
}

/// Writes `contents` to a temporary file in the same directory, then renames it
/// over `path`, whatever is there. The directory is created with mode 0700 if it is missing. The
/// temporary file is created exclusively and never through a symlink, so that a
/// file planted under its name cannot make root write elsewhere.
fn write(path: &Path, what: &str, contents: &[u8]) -> Result<(), String> {
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

/// Returns the file's directory, creating it with mode 0700 if it is missing, and
/// checks that only root can change it (see [`check_directory`]).
pub fn directory<'a>(path: &'a Path, what: &str) -> Result<&'a Path, String> {
    let dir = path.parent().ok_or_else(|| format!("{what} {} has no directory", path.display()))?;
    if !dir.exists() {
        // Nothing is created under a directory that another user could change,
        // such as through their link in /tmp.
        if let Some(existing) = dir.ancestors().find(|step| step.exists()) {
            check_chain(existing, what, false)?;
        }
        // The mode is set at creation, so no later chmod can follow a link
        // swapped in meanwhile.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                let option = what.replace(' ', "_");
                format!("cannot create {}: {e}; create it as root with mode 0700, or set {option}= to a directory the caller of PAM can write", dir.display())
            })?;
    }
    check_directory(dir, what)?;
    Ok(dir)
}

/// Checks the directory of the file at `path` as [`directory`] would before
/// writing, without creating anything: the directory itself when it exists, or
/// else the nearest existing directory above it.
pub fn check_directory_of(path: &Path, what: &str) -> Result<(), String> {
    let dir = path.parent().ok_or_else(|| format!("{what} {} has no directory", path.display()))?;
    if dir.exists() {
        return check_directory(dir, what);
    }
    match dir.ancestors().find(|step| step.exists()) {
        Some(existing) => check_chain(existing, what, false),
        None => Ok(()),
    }
}

/// Checks that only root (or this process's user) can rename, replace or add
/// entries along `dir`. Every directory from `/` down, after resolving links, must
/// be owned by root or this user. `dir` itself must not be writable by group or
/// others, and the directories above it only with the sticky bit (as `/tmp` is).
/// Every link on the path as written must be owned by root or this user.
/// Otherwise another user could swap a link between the checks on the file and
/// the rename that replaces it, or plant names that block the write.
pub fn check_directory(dir: &Path, what: &str) -> Result<(), String> {
    check_chain(dir, what, true)
}

/// Checks `dir` as [`check_directory`] does, but allows the sticky bit on `dir`
/// itself unless `is_file_directory` is set.
fn check_chain(dir: &Path, what: &str, is_file_directory: bool) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let trusted_owner = |uid: u32| uid == 0 || uid == euid;
    let fix = "keep it in a directory that only root can write";
    for step in dir.ancestors() {
        let Ok(metadata) = std::fs::symlink_metadata(step) else { continue };
        if metadata.file_type().is_symlink() && !trusted_owner(metadata.uid()) {
            return Err(format!(
                "not using {what} in {}: {} is a symbolic link owned by uid {}; {fix}",
                dir.display(),
                step.display(),
                metadata.uid()
            ));
        }
    }
    let resolved = std::fs::canonicalize(dir).map_err(|e| format!("cannot resolve the directory {} of {what}: {e}", dir.display()))?;
    for step in resolved.ancestors() {
        let metadata = std::fs::symlink_metadata(step).map_err(|e| format!("cannot read {}: {e}", step.display()))?;
        // The sticky bit protects the entries of others, but in the file's own
        // directory anyone could still plant the file's name or its temporary names.
        let sticky = metadata.mode() & libc::S_ISVTX != 0 && !(is_file_directory && step == resolved);
        if !trusted_owner(metadata.uid()) || (metadata.mode() & 0o022 != 0 && !sticky) {
            return Err(format!(
                "not using {what} in {}: directory {} is owned by uid {} with mode {:04o}, so another user could replace it; run: chown root {} && chmod go-w {}, or {fix}",
                dir.display(),
                step.display(),
                metadata.uid(),
                metadata.mode() & 0o7777,
                step.display(),
                step.display()
            ));
        }
    }
    Ok(())
}
