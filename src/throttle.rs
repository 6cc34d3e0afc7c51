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
use crate::shared_file;
use crate::options::Settings;

/// Largest throttle file read: about 10,000 entries of up to 48 bytes.
const MAX_FILE_BYTES: u64 = 480 * 1024;
/// Maximum number of pairs kept. When more are failing at once, the pairs whose
/// last failure is oldest are dropped first.
const MAX_ENTRIES: usize = 10_000;
/// Maximum wait for the lock of another worker process. After it the update goes
/// ahead unlocked, so a concurrent update may lose one failure.
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

/// Hashes the lower-cased user name and the source with 64-bit FNV-1a, which is
/// stable across processes and versions. Lower-casing makes `Alice` and `alice`
/// one pair, because Kopano and Gromox compare user names without case.
pub fn pair_key(user: &str, source: &str) -> u64 {
    const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let user = user.to_lowercase();
    let mut hash = FNV_OFFSET_BASIS;
    for byte in user.as_bytes().iter().chain(&[0u8]).chain(source.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

impl Table {
    /// Reads the file; see the module documentation for what reads as empty.
    /// `Err` carries the reason for a log line.
    fn read(path: &Path) -> Result<Table, String> {
        match shared_file::read(path, "throttle file", MAX_FILE_BYTES)? {
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

    /// Drops the entries whose last failure is `window` or longer ago, then the
    /// oldest ones beyond `MAX_ENTRIES`.
    fn prune(&mut self, now: u64, window: Duration) {
        let window_ms = window.as_millis() as u64;
        self.entries.retain(|_, e| now.saturating_sub(e.last_failure_ms) < window_ms);
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
        shared_file::write(path, "throttle file", text.as_bytes())
    }
}

/// Takes an exclusive `flock` on `PATH.lock`, waiting up to `LOCK_WAIT`. Returns
/// `None` when the lock cannot be had; the caller then goes on without it. The lock
/// is released when the returned file is dropped.
fn lock(path: &Path) -> Option<File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(PathBuf::from(name))
        .ok()?;
    let started = Instant::now();
    loop {
        // SAFETY: the descriptor is open for as long as `file` lives.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Some(file);
        }
        if started.elapsed() >= LOCK_WAIT {
            return None;
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
    /// The server gave no verdict, so the count from [`Throttle::admit`] was taken back.
    TakenBack,
}

/// Decision of [`Throttle::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Rejected without asking the server, with the reason for the log.
    Rejected(String),
    /// Allowed to ask the server. `counted` is the pair's failure count including
    /// this attempt when it was counted in advance, and `None` when the file could
    /// not be used.
    Admitted { counted: Option<u32> },
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

    /// Decides whether this attempt may ask the server. An admitted attempt is
    /// counted as a failure before it is sent, under the file's lock, so that
    /// attempts running at the same time (one per saslauthd worker) see each other
    /// and no more than `throttle_failures` of them reach the server. [`record`]
    /// then keeps, clears or takes back that count. An unusable file is reported
    /// through `warn` and means no throttling.
    ///
    /// NOTE: an attempt whose process dies before [`record`] stays counted as a
    /// failure until the window passes.
    ///
    /// [`record`]: Throttle::record
    pub fn admit(&self, warn: &dyn Fn(&str)) -> Admission {
        if let Err(reason) = shared_file::directory(&self.path, "throttle file") {
            warn(&format!("{reason}; throttling is off until it is fixed"));
            return Admission::Admitted { counted: None };
        }
        let _lock = lock(&self.path);
        let mut table = match Table::read(&self.path) {
            Ok(table) => table,
            Err(reason) => {
                warn(&format!("{reason}; throttling is off until it is fixed"));
                return Admission::Admitted { counted: None };
            }
        };
        let now = now_ms();
        if let Some(reason) = self.rejection(&table, now) {
            return Admission::Rejected(reason);
        }
        table.prune(now, self.window);
        let entry = table.entries.entry(self.key).or_insert(Entry { failures: 0, last_failure_ms: now });
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure_ms = now;
        let failures = entry.failures;
        match table.write(&self.path) {
            Ok(()) => Admission::Admitted { counted: Some(failures) },
            Err(reason) => {
                warn(&format!("{reason}; throttling is off until it is fixed"));
                Admission::Admitted { counted: None }
            }
        }
    }

    /// Returns the reason to reject the pair when it has `throttle_failures`
    /// failures and the last one is within the window.
    fn rejection(&self, table: &Table, now: u64) -> Option<String> {
        let entry = table.entries.get(&self.key)?;
        let window_ms = self.window.as_millis() as u64;
        // A last failure in the future (the clock went back) counts as now.
        let age = now.saturating_sub(entry.last_failure_ms);
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

    /// Records the outcome of an admitted attempt. `counted` is what [`admit`]
    /// returned. A failed logon is counted (or keeps its count from `admit`), a
    /// right password clears the pair, and any other outcome (server unavailable,
    /// input rejected) takes back the count from `admit`.
    ///
    /// [`admit`]: Throttle::admit
    pub fn record(&self, outcome: &Outcome, counted: Option<u32>) -> Result<Recorded, String> {
        let failed = match outcome {
            Outcome::LogonFailed(_) => true,
            Outcome::Confirmed | Outcome::FeatureDenied(_) => false,
            Outcome::InputRejected(_) | Outcome::Unavailable(_) | Outcome::ServiceError(_) => {
                if counted.is_none() {
                    return Ok(Recorded::Nothing);
                }
                return self.take_back();
            }
        };
        shared_file::directory(&self.path, "throttle file")?;
        let _lock = lock(&self.path);
        // An unusable file is replaced: the rename below puts a root-owned one in
        // its place.
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
        // An attempt counted by `admit` is counted again only when a right password
        // or the window cleared the pair in the meantime.
        if counted.is_none() || entry.failures == 0 {
            entry.failures = entry.failures.saturating_add(1);
        }
        entry.last_failure_ms = now;
        let failures = counted.unwrap_or(entry.failures);
        table.write(&self.path)?;
        Ok(Recorded::Failure { failures, started: failures == self.max_failures })
    }

    /// Takes back the failure that [`admit`] counted in advance, for an attempt
    /// whose server gave no verdict.
    ///
    /// [`admit`]: Throttle::admit
    fn take_back(&self) -> Result<Recorded, String> {
        let _lock = lock(&self.path);
        let mut table = Table::read(&self.path).unwrap_or_default();
        let Some(entry) = table.entries.get_mut(&self.key) else { return Ok(Recorded::Nothing) };
        entry.failures = entry.failures.saturating_sub(1);
        if entry.failures == 0 {
            table.entries.remove(&self.key);
        }
        table.write(&self.path)?;
        Ok(Recorded::TakenBack)
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

    fn no_warning(message: &str) {
        panic!("unexpected warning: {message}");
    }

    fn failed() -> Outcome {
        Outcome::LogonFailed("logon failed".into())
    }

    /// Admits one attempt and returns its count from `admit`.
    fn admitted(t: &Throttle) -> Option<u32> {
        match t.admit(&no_warning) {
            Admission::Admitted { counted } => counted,
            Admission::Rejected(reason) => panic!("rejected: {reason}"),
        }
    }

    /// Runs one attempt that ends with `outcome`.
    fn attempt(t: &Throttle, outcome: &Outcome) -> Recorded {
        let counted = admitted(t);
        t.record(outcome, counted).unwrap()
    }

    fn is_rejected(t: &Throttle) -> bool {
        matches!(t.admit(&no_warning), Admission::Rejected(_))
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
        assert_eq!(attempt(&t, &failed()), Recorded::Failure { failures: 1, started: false });
        assert_eq!(attempt(&t, &failed()), Recorded::Failure { failures: 2, started: true });
        let Admission::Rejected(reason) = t.admit(&no_warning) else { panic!("admitted after the limit") };
        assert!(reason.starts_with("throttled: 2 failed logons"), "{reason}");
    }

    #[test]
    fn concurrent_attempts_count_in_advance() {
        let path = scratch("concurrent");
        let t = throttle(&path, "2", Some("192.0.2.1"));
        let first = admitted(&t);
        let second = admitted(&t);
        assert_eq!((first, second), (Some(1), Some(2)));
        assert!(is_rejected(&t), "a third attempt was admitted while two were open");
        assert_eq!(t.record(&failed(), first), Ok(Recorded::Failure { failures: 1, started: false }));
        assert_eq!(t.record(&failed(), second), Ok(Recorded::Failure { failures: 2, started: true }));
        assert!(is_rejected(&t));
    }

    #[test]
    fn success_clears_count() {
        let path = scratch("clear");
        let t = throttle(&path, "2", None);
        attempt(&t, &failed());
        assert_eq!(attempt(&t, &Outcome::Confirmed), Recorded::Cleared);
        attempt(&t, &failed());
        assert!(!is_rejected(&t));
    }

    #[test]
    fn unavailable_takes_count_back() {
        let path = scratch("unavailable");
        let t = throttle(&path, "1", None);
        assert_eq!(attempt(&t, &Outcome::Unavailable("timed out".into())), Recorded::TakenBack);
        assert!(!is_rejected(&t));
    }

    #[test]
    fn unavailable_keeps_earlier_failures() {
        let path = scratch("unavailable-kept");
        let t = throttle(&path, "2", None);
        attempt(&t, &failed());
        attempt(&t, &Outcome::Unavailable("timed out".into()));
        assert_eq!(attempt(&t, &failed()), Recorded::Failure { failures: 2, started: true });
        assert!(is_rejected(&t));
    }

    #[test]
    fn failure_after_clear_is_counted() {
        let path = scratch("cleared-meanwhile");
        let t = throttle(&path, "3", None);
        let counted = admitted(&t);
        attempt(&t, &Outcome::Confirmed);
        assert_eq!(t.record(&failed(), counted), Ok(Recorded::Failure { failures: 1, started: false }));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(" 1 "), "{text}");
    }

    #[test]
    fn file_holds_no_user_name() {
        let path = scratch("clear-text");
        attempt(&throttle(&path, "3", Some("192.0.2.1")), &failed());
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
    fn world_writable_file_is_ignored() {
        let path = scratch("writable");
        let t = throttle(&path, "1", None);
        attempt(&t, &failed());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let warned = std::cell::Cell::new(false);
        assert_eq!(t.admit(&|_| warned.set(true)), Admission::Admitted { counted: None });
        assert!(warned.get());
    }
}
