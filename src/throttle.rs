//! Throttling of repeated failed logons for one (user, source) pair, shared by
//! saslauthd's worker processes through a small root-owned file (`throttle_file=`).
//!
//! After `throttle_failures=` failed logons, each within `throttle_window=` seconds
//! of the one before, further attempts for that pair are rejected without asking
//! the server until `throttle_window` seconds have passed since the last failure.
//! A logon with the right password clears the pair's count.
//!
//! The source is `PAM_RHOST`. A caller that does not set it (saslauthd 2.1.28 does
//! not) gives every attempt the same empty source, so the pair is then the user
//! alone: an attacker can keep that user's logons through this PAM service
//! rejected for as long as they keep failing on purpose.
//!
//! The file can only cause a rejection, never a success: a missing, unreadable,
//! foreign (not owned by root or by this process's user, or writable by others) or
//! corrupt file reads as empty, which at worst means no throttling.
//!
//! Pairs are stored as the 64-bit FNV-1a hash of the lower-cased user name and
//! the source, so the file shows no user names in clear. The hash is not a secret:
//! anyone who can read the file can test guessed names against it.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::code::Outcome;
use crate::shared_file::{self, SharedFile};
use crate::options::Settings;

/// The throttle file's first line.
pub const HEADER: &str = "# pam_mapi throttle file: failed logons (PAIR-HASH FAILURES LAST-FAILURE-MS); safe to delete";

fn file(path: &Path) -> SharedFile<'_> {
    SharedFile { path, what: "throttle file", header: HEADER }
}

/// Largest throttle file read: about 10,000 entries of up to 48 bytes.
const MAX_FILE_BYTES: u64 = 480 * 1024;
/// Maximum number of pairs kept. When more are failing at once, the pairs whose
/// last failure is oldest are dropped first.
const MAX_ENTRIES: usize = 10_000;
/// Maximum wait for the lock of another worker process. After it the update goes
/// ahead unlocked (and logs a warning), so a concurrent update may lose one
/// failure.
const LOCK_WAIT: Duration = Duration::from_millis(200);

/// The failure count of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    failures: u32,
    /// Unix time of the last failure, in milliseconds.
    last_failure_ms: u64,
}

/// The pairs with failures, keyed by [`pair_key`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Table {
    entries: BTreeMap<u64, Entry>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Hashes the user name and the source with 64-bit FNV-1a, which is stable across
/// processes and versions. The name is lower-cased and stripped of surrounding
/// white space, so that `Alice` and ` alice ` share the count of `alice`: Kopano
/// and Gromox compare names without case, and a user database may ignore the
/// spaces.
pub fn pair_key(user: &str, source: &str) -> u64 {
    const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let user = user.trim().to_lowercase();
    let mut hash = FNV_OFFSET_BASIS;
    for byte in user.as_bytes().iter().chain(&[0u8]).chain(source.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Returns how long ago the entry's last failure was. A last failure up to one
/// window in the future (the clock was set back a little) counts as now. One
/// further ahead gives `None`, so the entry is dropped: otherwise a clock set back
/// by a day would keep the pair throttled for that day.
fn age_ms(entry: &Entry, now: u64, window_ms: u64) -> Option<u64> {
    if entry.last_failure_ms > now.saturating_add(window_ms) {
        return None;
    }
    Some(now.saturating_sub(entry.last_failure_ms))
}

impl Table {
    /// Reads the file; see the module documentation for what reads as empty.
    /// `Err` carries the reason for a log line.
    fn read(path: &Path) -> Result<Table, String> {
        match file(path).read(MAX_FILE_BYTES)? {
            Some(bytes) => Ok(Table::parse(&String::from_utf8_lossy(&bytes))),
            None => Ok(Table::default()),
        }
    }

    /// Parses `KEY FAILURES LAST_FAILURE_MS` lines (KEY in hexadecimal), skipping
    /// any line that does not fit.
    fn parse(text: &str) -> Table {
        let mut entries = BTreeMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let [key, failures, last] = fields[..] else { continue };
            let (Ok(key), Ok(failures), Ok(last_failure_ms)) =
                (u64::from_str_radix(key, 16), failures.parse::<u32>(), last.parse::<u64>())
            else {
                continue;
            };
            entries.insert(key, Entry { failures, last_failure_ms });
        }
        Table { entries }
    }

    /// Drops the entries whose last failure is `window` or longer ago (see
    /// [`age_ms`]), then the oldest ones beyond `MAX_ENTRIES`.
    fn prune(&mut self, now: u64, window: Duration) {
        let window_ms = window.as_millis() as u64;
        self.entries.retain(|_, e| age_ms(e, now, window_ms).is_some_and(|age| age < window_ms));
        if self.entries.len() > MAX_ENTRIES {
            let mut ages: Vec<u64> = self.entries.values().map(|e| e.last_failure_ms).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() - MAX_ENTRIES];
            self.entries.retain(|_, e| e.last_failure_ms >= cutoff);
        }
    }

    /// Writes the table to a temporary file in the same directory, then renames it
    /// over the old one, so that readers never see half a file. Creates the
    /// directory with mode 0700 if it is missing.
    fn write(&self, path: &Path) -> Result<(), String> {
        let mut text = String::new();
        for (key, entry) in &self.entries {
            text.push_str(&format!("{key:016x} {} {}\n", entry.failures, entry.last_failure_ms));
        }
        file(path).write(&text)
    }
}

/// Takes an exclusive `flock` on `PATH.lock`, waiting up to `LOCK_WAIT`. Returns
/// the reason when the lock cannot be had. The lock is released when the returned
/// file is dropped.
fn lock(path: &Path) -> Result<File, String> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let name = PathBuf::from(name);
    let shown = name.display();
    // O_NONBLOCK keeps a FIFO planted under the name from blocking the open.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&name)
        .map_err(|e| format!("cannot open lock file {shown}: {e}; remove it if it is a symbolic link"))?;
    let metadata = file.metadata().map_err(|e| format!("cannot read lock file {shown}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("lock file {shown} is not a regular file; remove it"));
    }
    let started = Instant::now();
    loop {
        // SAFETY: the descriptor is open for as long as `file` lives.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
        if started.elapsed() >= LOCK_WAIT {
            return Err(format!("lock file {shown} is still locked by another process after {} ms", LOCK_WAIT.as_millis()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Counts failed logons in words: "1 failed logon", "2 failed logons".
pub fn failed_logons(count: u32) -> String {
    if count == 1 {
        "1 failed logon".to_string()
    } else {
        format!("{count} failed logons")
    }
}

/// Effect of [`Throttle::record`], for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Nothing changed.
    Nothing,
    /// One more failure; `started` is true when it reached `throttle_failures`.
    Failure { failures: u32, started: bool },
    /// A right password cleared an earlier count.
    Cleared,
}

/// Throttling for one attempt: the settings and the pair.
#[derive(Debug, Clone)]
pub struct Throttle {
    path: PathBuf,
    max_failures: u32,
    window: Duration,
    key: u64,
    /// Whether the caller set `PAM_RHOST`, for the log.
    has_source: bool,
}

impl Throttle {
    /// Builds the throttle of one attempt, or `None` when throttling is off
    /// (`throttle_failures=0`, the default). `user` is the name after
    /// `strip_realm`, `lowercase` and `default_domain`.
    pub fn new(settings: &Settings, user: &str, rhost: Option<&str>) -> Option<Throttle> {
        if settings.throttle_failures == 0 {
            return None;
        }
        let source = rhost.unwrap_or("");
        Some(Throttle {
            path: settings.throttle_file.clone(),
            max_failures: settings.throttle_failures,
            window: settings.throttle_window,
            key: pair_key(user, source),
            has_source: !source.is_empty(),
        })
    }

    /// Returns the reason to reject this attempt without asking the server, or
    /// `None` to go ahead. An unusable file is reported through `warn` and means no
    /// throttling.
    ///
    /// NOTE: checking and counting are separate steps, so attempts that run at
    /// the same time (one per saslauthd worker) can exceed `throttle_failures` by up
    /// to the number of them minus one. Counting in advance would close this gap,
    /// but would reject right passwords sent at the same time by one user.
    pub fn check(&self, warn: &dyn Fn(&str)) -> Option<String> {
        let table = match Table::read(&self.path) {
            Ok(table) => table,
            Err(reason) => {
                warn(&format!("{reason}; throttling is off until it is fixed"));
                return None;
            }
        };
        let entry = table.entries.get(&self.key)?;
        let window_ms = self.window.as_millis() as u64;
        let age = age_ms(entry, now_ms(), window_ms)?;
        if entry.failures < self.max_failures || age >= window_ms {
            return None;
        }
        let wait = (window_ms - age).div_ceil(1000);
        Some(format!(
            "throttled: {} for this user {}within {} s; next attempt allowed in {wait} s",
            failed_logons(entry.failures),
            if self.has_source { "and rhost " } else { "(no rhost set) " },
            self.window.as_secs()
        ))
    }

    /// Counts a failed logon or clears the count after a right password; other
    /// outcomes (server unavailable, input rejected) change nothing. A lock that
    /// cannot be had is reported through `warn`, and the update goes ahead.
    pub fn record(&self, outcome: &Outcome, warn: &dyn Fn(&str)) -> Result<Recorded, String> {
        let failed = match outcome {
            Outcome::LogonFailed(_) => true,
            Outcome::Confirmed | Outcome::FeatureDenied(_) => false,
            Outcome::InputRejected(_) | Outcome::Unavailable(_) | Outcome::ServiceError(_) => {
                return Ok(Recorded::Nothing)
            }
        };
        shared_file::directory(&self.path, "throttle file")?;
        // Checked before the lock file is made next to it, so that a throttle_file=
        // in /dev leaves no lock file there either.
        file(&self.path).replaceable()?;
        let lock = lock(&self.path);
        if let Err(reason) = &lock {
            warn(&format!("{reason}; updating the throttle file without the lock, so a failure counted at the same time by another worker may be lost"));
        }
        // An unusable copy of this file (wrong owner or mode) is replaced by a
        // root-owned one, while the write leaves anything else at the path alone.
        let mut table = Table::read(&self.path).unwrap_or_default();
        let now = now_ms();
        table.prune(now, self.window);
        if !failed {
            if table.entries.remove(&self.key).is_none() {
                return Ok(Recorded::Nothing);
            }
            table.write(&self.path)?;
            return Ok(Recorded::Cleared);
        }
        let entry = table.entries.entry(self.key).or_insert(Entry { failures: 0, last_failure_ms: now });
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure_ms = now;
        let failures = entry.failures;
        table.prune(now, self.window);
        table.write(&self.path)?;
        Ok(Recorded::Failure { failures, started: failures == self.max_failures })
    }

    /// Returns the window, for log lines.
    pub fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pam_mapi-throttle-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("throttle.state")
    }

    fn throttle(path: &Path, failures: &str, rhost: Option<&str>) -> Throttle {
        let args = [format!("throttle_failures={failures}"), format!("throttle_file={}", path.display())];
        let settings = Settings::from_args(&args).unwrap();
        Throttle::new(&settings, "alice", rhost).unwrap()
    }

    /// Writes a throttle file with the header and `lines`, as the module would.
    fn write_lines(path: &Path, lines: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{HEADER}\n{lines}")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn no_warning(message: &str) {
        panic!("unexpected warning: {message}");
    }

    fn failed() -> Outcome {
        Outcome::LogonFailed("logon failed".into())
    }

    #[test]
    fn pair_key_is_stable() {
        // The empty pair hashes the single byte 0, whose FNV-1a 64 value is a
        // published test vector. A change here would orphan every stored entry.
        assert_eq!(pair_key("", ""), 0xaf63_bd4c_8601_b7df);
        assert_eq!(pair_key("alice", "192.0.2.1"), pair_key("ALICE", "192.0.2.1"));
    }

    #[test]
    fn pair_key_separates_user_and_source() {
        assert_ne!(pair_key("ab", "c"), pair_key("a", "bc"));
    }

    #[test]
    fn off_by_default() {
        let settings = Settings::from_args(&[]).unwrap();
        assert!(Throttle::new(&settings, "alice", None).is_none());
    }

    #[test]
    fn rejects_after_limit() {
        let path = scratch("limit");
        let t = throttle(&path, "2", Some("192.0.2.1"));
        assert_eq!(t.record(&failed(), &no_warning), Ok(Recorded::Failure { failures: 1, started: false }));
        assert!(t.check(&no_warning).is_none());
        assert_eq!(t.record(&failed(), &no_warning), Ok(Recorded::Failure { failures: 2, started: true }));
        let reason = t.check(&no_warning).unwrap();
        assert!(reason.starts_with("throttled: 2 failed logons"), "{reason}");
    }

    #[test]
    fn success_clears_count() {
        let path = scratch("clear");
        let t = throttle(&path, "2", None);
        t.record(&failed(), &no_warning).unwrap();
        assert_eq!(t.record(&Outcome::Confirmed, &no_warning), Ok(Recorded::Cleared));
        t.record(&failed(), &no_warning).unwrap();
        assert!(t.check(&no_warning).is_none());
    }

    #[test]
    fn unavailable_is_not_counted() {
        let path = scratch("unavailable");
        let t = throttle(&path, "1", None);
        assert_eq!(t.record(&Outcome::Unavailable("timed out".into()), &no_warning), Ok(Recorded::Nothing));
        assert!(t.check(&no_warning).is_none());
    }

    #[test]
    fn file_holds_no_user_name() {
        let path = scratch("clear-text");
        throttle(&path, "3", Some("192.0.2.1")).record(&failed(), &no_warning).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("alice"), "{text}");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn corrupt_text_reads_as_empty() {
        let table = Table::parse("garbage\n\0\0\u{fffd}\nzz 1 2\n0123 1\n0123 -1 5\n0123 1 2 3\n");
        assert_eq!(table, Table::default());
    }

    #[test]
    fn expired_entries_are_pruned() {
        let mut table = Table::parse("00000000000000aa 5 1000\n");
        table.prune(1000 + 300_000, Duration::from_secs(300));
        assert!(table.entries.is_empty());
    }

    #[test]
    fn prune_keeps_newest_entries() {
        let mut table = Table::default();
        for i in 0..(MAX_ENTRIES as u64 + 5) {
            table.entries.insert(i, Entry { failures: 1, last_failure_ms: 1_000_000 + i });
        }
        table.prune(1_000_000 + MAX_ENTRIES as u64 + 5, Duration::from_secs(300));
        assert_eq!(table.entries.len(), MAX_ENTRIES);
        assert!(!table.entries.contains_key(&0));
    }

    #[test]
    fn pair_key_ignores_surrounding_space() {
        assert_eq!(pair_key(" alice  ", "192.0.2.1"), pair_key("alice", "192.0.2.1"));
    }

    #[test]
    fn clock_set_back_far_drops_entry() {
        let path = scratch("clock-far");
        let t = throttle(&path, "1", None);
        let future = now_ms() + 86_400_000;
        let line = format!("{:016x} 5 {future}\n", pair_key("alice", ""));
        write_lines(&path, &line);
        assert!(t.check(&no_warning).is_none());
    }

    #[test]
    fn clock_set_back_little_counts_as_now() {
        let path = scratch("clock-near");
        let t = throttle(&path, "1", None);
        let future = now_ms() + 10_000;
        let line = format!("{:016x} 5 {future}\n", pair_key("alice", ""));
        write_lines(&path, &line);
        let reason = t.check(&no_warning).expect("throttled");
        assert!(reason.ends_with("next attempt allowed in 300 s"), "{reason}");
    }

    #[test]
    fn symlinked_lock_is_reported() {
        let path = scratch("lock-link");
        let t = throttle(&path, "3", None);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/nonexistent-target", path.with_extension("state.lock")).unwrap();
        let warning = std::cell::RefCell::new(String::new());
        let recorded = t.record(&failed(), &|message| *warning.borrow_mut() = message.to_string());
        assert_eq!(recorded, Ok(Recorded::Failure { failures: 1, started: false }));
        assert!(warning.borrow().contains("cannot open lock file"), "{}", warning.borrow());
    }

    #[test]
    fn file_without_header_is_never_replaced() {
        let path = scratch("foreign-content");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "root:$6$salt$hash:20000:0:99999:7:::\n").unwrap();
        let t = throttle(&path, "1", None);
        let warning = std::cell::RefCell::new(String::new());
        assert!(t.check(&|message| *warning.borrow_mut() = message.to_string()).is_none());
        assert!(warning.borrow().contains("is not pam_mapi's"), "{}", warning.borrow());
        let error = t.record(&failed(), &no_warning).unwrap_err();
        assert!(error.contains("set throttle_file= to a path of its own"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "root:$6$salt$hash:20000:0:99999:7:::\n");
    }

    #[test]
    fn device_is_never_replaced() {
        let path = Path::new("/dev/null");
        let t = throttle(path, "1", None);
        let error = t.record(&failed(), &no_warning).unwrap_err();
        assert!(error.contains("not a regular file"), "{error}");
        let metadata = std::fs::metadata(path).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(&metadata.file_type()));
        assert!(!Path::new("/dev/null.lock").exists());
    }

    #[test]
    fn damaged_file_with_header_is_replaced() {
        let path = scratch("damaged");
        write_lines(&path, "zz 1 2\n\0garbage\n");
        let t = throttle(&path, "3", None);
        assert_eq!(t.record(&failed(), &no_warning), Ok(Recorded::Failure { failures: 1, started: false }));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        assert!(!text.contains("garbage"), "{text}");
    }

    #[test]
    fn world_writable_file_is_ignored() {
        let path = scratch("writable");
        let t = throttle(&path, "1", None);
        t.record(&failed(), &no_warning).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let warned = std::cell::Cell::new(false);
        assert!(t.check(&|_| warned.set(true)).is_none());
        assert!(warned.get());
    }
}
