//! Memory of servers found down, shared by saslauthd's worker processes through a
//! small root-owned file (`state_file=`, entries expire after `state_ttl=`).
//!
//! The file only changes the order in which servers are tried: a server marked
//! down is tried after the others, never skipped. A lost, stale, corrupt or
//! foreign file therefore costs at most time, and can never turn a failure into
//! a success.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::server::ServerUrl;
use crate::shared_file::SharedFile;

/// Largest state file read; more than enough for a few hundred servers.
const MAX_STATE_BYTES: u64 = 16 * 1024;

/// The state file's first line.
pub const HEADER: &str = "# pam_mapi state file: servers found down (UNTIL URL); safe to delete";

fn file(path: &Path) -> SharedFile<'_> {
    SharedFile { path, what: "state file", header: HEADER }
}

/// Servers marked down, with the Unix time (seconds) until which the mark holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DownList {
    entries: BTreeMap<String, u64>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl DownList {
    /// Reads the file. A missing file reads as empty. An unreadable, oversized or
    /// foreign file (not owned by root or this process's user, writable by others,
    /// or without the header) returns `Err` with the reason, and malformed lines
    /// are skipped.
    pub fn read(path: &Path) -> Result<DownList, String> {
        match file(path).read(MAX_STATE_BYTES)? {
            Some(bytes) => Ok(DownList::parse(&String::from_utf8_lossy(&bytes))),
            None => Ok(DownList::default()),
        }
    }

    /// Parses `UNTIL URL` lines, skipping any line that does not fit.
    pub fn parse(text: &str) -> DownList {
        let mut entries = BTreeMap::new();
        for line in text.lines() {
            let Some((until, url)) = line.split_once(' ') else { continue };
            let Ok(until) = until.parse::<u64>() else { continue };
            if !url.is_empty() && !url.contains(char::is_whitespace) {
                entries.insert(url.to_string(), until);
            }
        }
        DownList { entries }
    }

    /// Tells whether `server` is marked down now.
    pub fn is_down(&self, server: &ServerUrl) -> bool {
        self.seconds_left(server).is_some()
    }

    /// Returns how many seconds `server` stays marked down, or `None` when it is not.
    pub fn seconds_left(&self, server: &ServerUrl) -> Option<u64> {
        let now = now_secs();
        self.entries.get(&server.to_string()).filter(|until| **until > now).map(|until| until - now)
    }

    /// Marks `server` down for `ttl`.
    pub fn mark_down(&mut self, server: &ServerUrl, ttl: Duration) {
        self.entries.insert(server.to_string(), now_secs() + ttl.as_secs().max(1));
    }

    /// Removes the mark of `server`. Returns whether there was one.
    pub fn clear(&mut self, server: &ServerUrl) -> bool {
        self.entries.remove(&server.to_string()).is_some()
    }

    /// Writes the unexpired entries: to a temporary file in the same directory,
    /// then renamed over the old one, so that readers never see half a file.
    /// The directory is created with mode 0700 if missing.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let now = now_secs();
        let mut text = String::new();
        for (url, until) in &self.entries {
            if *until > now {
                text.push_str(&format!("{until} {url}\n"));
            }
        }
        file(path).write(&text)
    }
}

/// Orders servers for trying: those not marked down first, in configured order,
/// then the marked ones, in configured order.
pub fn order<'a>(servers: &'a [ServerUrl], down: &DownList) -> Vec<&'a ServerUrl> {
    let (marked, fine): (Vec<&ServerUrl>, Vec<&ServerUrl>) = servers.iter().partition(|s| down.is_down(s));
    fine.into_iter().chain(marked).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn url(text: &str) -> ServerUrl {
        ServerUrl::parse(text).unwrap()
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pam_mapi-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("servers.state")
    }

    #[test]
    fn marked_server_goes_last() {
        let a = url("http://127.0.0.1:1/");
        let b = url("http://127.0.0.1:2/");
        let mut down = DownList::default();
        down.mark_down(&a, Duration::from_secs(30));
        let servers = [a.clone(), b.clone()];
        assert_eq!(order(&servers, &down), vec![&b, &a]);
    }

    #[test]
    fn expired_mark_is_ignored() {
        let a = url("http://127.0.0.1:1/");
        let down = DownList::parse(&format!("{} http://127.0.0.1:1/\n", now_secs() - 1));
        assert!(!down.is_down(&a));
    }

    #[test]
    fn corrupt_text_reads_as_empty() {
        let down = DownList::parse("garbage\n\0\0\u{fffd}\n99999999999999999999999 x\n");
        assert_eq!(down, DownList::default());
    }

    #[test]
    fn write_then_read_round_trips() {
        let path = scratch("round-trip");
        let a = url("http://127.0.0.1:1/");
        let mut down = DownList::default();
        down.mark_down(&a, Duration::from_secs(30));
        down.write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(DownList::read(&path).unwrap().is_down(&a));
    }

    #[test]
    fn foreign_owner_is_ignored() {
        let path = scratch("foreign");
        let a = url("http://127.0.0.1:1/");
        let mut down = DownList::default();
        down.mark_down(&a, Duration::from_secs(30));
        down.write(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        assert!(DownList::read(&path).is_err());
    }

    #[test]
    fn world_writable_file_is_ignored() {
        let path = scratch("writable");
        DownList::default().write(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(DownList::read(&path).is_err());
    }

    #[test]
    fn write_never_follows_planted_symlinks() {
        let path = scratch("symlink");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let victim = path.parent().unwrap().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        // Plant a symlink at every temporary name the next writes could choose.
        for call in 0..1024 {
            let name = format!(".servers.state.{}.{call}", std::process::id());
            let _ = std::os::unix::fs::symlink(&victim, path.parent().unwrap().join(name));
        }
        let mut down = DownList::default();
        down.mark_down(&url("http://127.0.0.1:1/"), Duration::from_secs(30));
        let _ = down.write(&path);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    }

    #[test]
    fn file_without_header_is_never_replaced() {
        let path = scratch("foreign-content");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "keep me\n").unwrap();
        assert!(DownList::read(&path).unwrap_err().contains("is not pam_mapi's"));
        let mut down = DownList::default();
        down.mark_down(&url("http://127.0.0.1:1/"), Duration::from_secs(30));
        assert!(down.write(&path).unwrap_err().contains("set state_file= to a path of its own"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me\n");
    }

    #[test]
    fn foreign_paths_are_kept() {
        let path = scratch("kept");
        let dir = path.parent().unwrap().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("target"), "keep me\n").unwrap();
        let mut down = DownList::default();
        down.mark_down(&url("http://127.0.0.1:1/"), Duration::from_secs(30));

        std::os::unix::fs::symlink(dir.join("target"), &path).unwrap();
        assert!(DownList::read(&path).unwrap_err().contains("symbolic link"));
        assert!(down.write(&path).unwrap_err().contains("symbolic link"));
        assert!(std::fs::symlink_metadata(&path).unwrap().is_symlink());
        std::fs::remove_file(&path).unwrap();

        for content in ["".to_string(), format!("{HEADER} and more\n")] {
            std::fs::write(&path, &content).unwrap();
            assert!(DownList::read(&path).unwrap_err().contains("is not pam_mapi's"), "{content:?}");
            assert!(down.write(&path).unwrap_err().contains("is not pam_mapi's"), "{content:?}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
        }
        assert_eq!(std::fs::read_to_string(dir.join("target")).unwrap(), "keep me\n");
    }

    #[test]
    fn directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;

        let outer = scratch("open-dir").parent().unwrap().to_path_buf();
        let dir = outer.join("inner");
        let path = dir.join("servers.state");
        std::fs::create_dir_all(&dir).unwrap();
        DownList::default().write(&path).unwrap();
        let mode = |path: &Path, mode: u32| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();

        mode(&dir, 0o777);
        assert!(DownList::read(&path).unwrap_err().contains("another user could replace it"));
        assert!(DownList::default().write(&path).unwrap_err().contains("another user could replace it"));
        mode(&dir, 0o1777);
        assert!(DownList::read(&path).is_err(), "the file's own directory may not be open, even sticky");
        mode(&dir, 0o700);
        mode(&outer, 0o1777);
        assert!(DownList::read(&path).is_ok(), "a sticky directory above is allowed");
        mode(&outer, 0o777);
        assert!(DownList::read(&path).is_err(), "an open directory above is refused");
        mode(&outer, 0o755);
    }

    #[test]
    fn nothing_is_created_under_foreign_link() {
        let path = scratch("create-under-link");
        let dir = path.parent().unwrap();
        std::fs::create_dir_all(dir.join("victim")).unwrap();
        let link = dir.join("planted");
        std::os::unix::fs::symlink(dir.join("victim"), &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
        let target = link.join("nologin/servers.state");
        assert!(DownList::default().write(&target).is_err());
        assert!(!dir.join("victim/nologin").exists(), "a directory was created through the link");
    }

    #[test]
    fn link_owned_by_other_user_is_refused() {
        let path = scratch("foreign-link");
        let dir = path.parent().unwrap();
        std::fs::create_dir_all(dir.join("real")).unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(dir.join("real"), &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
        let error = DownList::default().write(&link.join("servers.state")).unwrap_err();
        assert!(error.contains("symbolic link owned by uid 65534"), "{error}");
    }

    #[test]
    fn written_file_starts_with_header() {
        let path = scratch("header");
        DownList::default().write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{HEADER}\n"));
    }

    #[test]
    fn missing_file_reads_as_empty() {
        assert_eq!(DownList::read(Path::new("/nonexistent/pam_mapi.state")), Ok(DownList::default()));
    }
}
