//! A private saslauthd (`-a pam`) with its own socket directory and a PAM
//! service file in /etc/pam.d that exists only while it runs, and a client of its
//! socket protocol.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running saslauthd. Dropping it stops the daemon and its workers and
/// removes the PAM service file.
pub struct Saslauthd {
    pid: i32,
    socket: PathBuf,
    pam_file: PathBuf,
}

impl Saslauthd {
    /// Writes `/etc/pam.d/SERVICE` and starts `saslauthd -a pam -n WORKERS -m DIR`.
    pub fn start(dir: &Path, service: &str, pam_lines: &str, workers: u32) -> std::io::Result<Saslauthd> {
        let pam_file = Path::new("/etc/pam.d").join(service);
        if pam_file.exists() {
            return Err(std::io::Error::other(format!(
                "{} exists already; remove it or pick another service name",
                pam_file.display()
            )));
        }
        std::fs::create_dir_all(dir)?;
        std::fs::write(&pam_file, pam_lines)?;
        let mut daemon = Saslauthd { pid: 0, socket: dir.join("mux"), pam_file };
        let status = Command::new("saslauthd")
            .args(["-a", "pam", "-n", &workers.to_string(), "-m"])
            .arg(dir)
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!("saslauthd exited with {status}")));
        }
        let pid_file = dir.join("saslauthd.pid");
        let started = Instant::now();
        while !(daemon.socket.exists() && pid_file.exists()) {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(std::io::Error::other("saslauthd did not create its socket within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&pid_file)?;
        daemon.pid = text.trim().parse().map_err(|_| std::io::Error::other(format!("bad pid file: {text:?}")))?;
        Ok(daemon)
    }

    /// Sends one request to saslauthd and returns whether the reply is `OK`.
    pub fn logon(&self, user: &str, password: &str, service: &str) -> std::io::Result<bool> {
        let mut stream = UnixStream::connect(&self.socket)?;
        let mut request = Vec::new();
        for field in [user, password, service, ""] {
            request.extend_from_slice(&(field.len() as u16).to_be_bytes());
            request.extend_from_slice(field.as_bytes());
        }
        stream.write_all(&request)?;
        let mut length = [0u8; 2];
        stream.read_exact(&mut length)?;
        let mut reply = vec![0u8; u16::from_be_bytes(length) as usize];
        stream.read_exact(&mut reply)?;
        Ok(reply.starts_with(b"OK"))
    }

    /// Returns the process ids of the daemon's workers.
    fn workers(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else { return pids };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // The parent pid is the second field after the parenthesised command.
            let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest.to_string()) else { continue };
            if rest.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok()) == Some(self.pid) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Saslauthd {
    fn drop(&mut self) {
        if self.pid > 0 {
            for worker in self.workers() {
                // SAFETY: kill has no memory-safety preconditions; the pid is a
                // child of the daemon started here.
                unsafe { libc::kill(worker, libc::SIGTERM) };
            }
            // SAFETY: as above, for the daemon itself.
            unsafe { libc::kill(self.pid, libc::SIGTERM) };
        }
        let _ = std::fs::remove_file(&self.pam_file);
    }
}

/// Runs `logon` in `threads` threads for `duration` and returns the rate of
/// successful logons per second. Panics on the first failed one, because a
/// benchmark of failures would measure the wrong thing.
pub fn rate(threads: usize, duration: Duration, logon: &(dyn Fn() -> bool + Sync)) -> f64 {
    let started = Instant::now();
    let total: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut count = 0usize;
                    while started.elapsed() < duration {
                        assert!(logon(), "a logon failed during the rate measurement");
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("rate thread")).sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}
