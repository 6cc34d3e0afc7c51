//! Concurrency and lifetime of pam_mapi.so under the real libpam: many threads
//! authenticating at once, and many pam_start/pam_authenticate/pam_end cycles in
//! one process. The cycle tests are slow and marked `#[ignore]`, so that
//! tests/hardening/run.sh runs them with `--ignored`, once plainly and once under
//! valgrind.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use kopano_standin::{Config, Fault, Server};

const THREADS: usize = 32;

/// A small linear congruential generator, so that a failing run can be
/// repeated from the seed it prints.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn thread_user(index: usize) -> String {
    format!("stress-user-{index:02}")
}

fn thread_password(index: usize) -> String {
    format!("Stress-Pass-{index:02}&<{}>", index * 7919)
}

#[test]
fn parallel_threads_keep_own_answers() {
    let seed = std::env::var("PAM_MAPI_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    println!("seed {seed} (set PAM_MAPI_STRESS_SEED to repeat)");
    let mut random = Lcg(seed);

    // Four servers, each sending every reply after its own delay.
    let mut config = Config::soap();
    for index in 0..THREADS {
        config = config.user(&thread_user(index), &thread_password(index));
    }
    let servers: Vec<Server> = (0..4).map(|_| Server::start(config.clone()).unwrap()).collect();
    let mut delays = Vec::new();
    for server in &servers {
        let delay = 200 + random.next(800);
        server.set_fault(Fault::DelayMs(delay));
        delays.push(delay);
    }
    println!("server delays in ms: {delays:?}");

    let barrier = Arc::new(Barrier::new(THREADS));
    let started = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|index| {
            let url = servers[random.next(servers.len() as u64) as usize].url();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let state = scratch_dir("stress").join("state");
                let service = Service::simple(&format!("socket={url} timeout=5 state_file={}", state.display()));
                let right = index.is_multiple_of(2);
                let password = if right { thread_password(index) } else { format!("wrong-{index}") };
                barrier.wait();
                let begun = Instant::now();
                let code = authenticate(&service, &thread_user(index), &password);
                (index, right, code, begun.elapsed())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|handle| handle.join().unwrap()).collect();
    let total = started.elapsed();

    for (index, right, code, _) in &results {
        let expected = if *right { PAM_SUCCESS } else { PAM_AUTH_ERR };
        assert_eq!(name(*code), name(expected), "thread {index} (right password: {right})");
    }

    let logons: Vec<_> = servers.iter().flat_map(|server| server.logons()).collect();
    assert_eq!(logons.len(), THREADS, "one logon request per thread");
    for logon in &logons {
        let index: usize = logon.username.trim_start_matches("stress-user-").parse().unwrap();
        let sent = if index.is_multiple_of(2) { thread_password(index) } else { format!("wrong-{index}") };
        assert_eq!(logon.password, sent.as_bytes(), "password that reached the server for {}", logon.username);
    }

    let slowest = results.iter().map(|(_, _, _, elapsed)| *elapsed).max().unwrap();
    let sum: Duration = results.iter().map(|(_, _, _, elapsed)| *elapsed).sum();
    println!("{THREADS} threads: whole run {total:?}, slowest {slowest:?}, sum {sum:?}");
    assert!(total < slowest + Duration::from_secs(1), "whole run {total:?} against slowest {slowest:?}");
    assert!(total * 4 < sum, "whole run {total:?} is not much shorter than the sum {sum:?}");
}

/// A stand-in server in its own process, so that its threads and sockets do not
/// count in the measurements of this one.
struct StandinProcess {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl StandinProcess {
    fn start(user: &str, password: &str) -> StandinProcess {
        let exe = std::env::current_exe().unwrap();
        let binary = exe.parent().unwrap().parent().unwrap().join("kopano-standin");
        assert!(binary.exists(), "{} not found; run cargo build --workspace first", binary.display());
        let dir = scratch_dir("standin");
        let socket = dir.join("server.sock");
        let mut child = Command::new(&binary)
            .args(["--quiet", "--unix"])
            .arg(&socket)
            .args(["--user", &format!("{user}:{password}")])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let url = loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "the stand-in exited before listening");
            if let Some(url) = line.trim().strip_prefix("listening on file://") {
                break format!("file://{url}");
            }
        };
        StandinProcess { child, url, dir }
    }
}

impl Drop for StandinProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Counts the entries of a /proc/self directory (open files, threads).
fn count_entries(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Tells whether pam_mapi.so is mapped into this process right now.
fn module_mapped() -> bool {
    std::fs::read_to_string("/proc/self/maps").unwrap().contains("libpam_mapi.so")
}

/// Returns the resident set size of this process in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Runs `count` pam_start/pam_authenticate/pam_end cycles. libpam opens the module
/// in pam_start and closes it in pam_end; the loader keeps it mapped because it
/// is linked with -z nodelete. The cycles take turns between the right password, a wrong one and a server
/// that does not exist.
fn cycle(count: usize, good: &Service, down: &Service) {
    const PASSWORD: &str = "Cycle-Secr3t&<x>";
    for index in 0..count {
        let (service, password, expected) = match index % 3 {
            0 => (good, PASSWORD, PAM_SUCCESS),
            1 => (good, "wrong-password", PAM_AUTH_ERR),
            _ => (down, PASSWORD, PAM_AUTHINFO_UNAVAIL),
        };
        let code = authenticate(service, "alice", password);
        assert_eq!(name(code), name(expected), "cycle {index}");
    }
}

fn cycle_services(standin: &StandinProcess) -> (Service, Service) {
    let state = scratch_dir("cycles").join("state");
    let good = Service::simple(&format!("socket={} state_file={}", standin.url, state.display()));
    let down = Service::simple(&format!("socket=file:///nonexistent/pam_mapi.sock state_file={}", state.display()));
    (good, down)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

#[test]
fn module_stays_mapped_after_pam_end() {
    // Linked with -z nodelete (build.rs), so statics that dependencies allocate
    // on first use live once per process instead of leaking on every unload.
    let service = Service::simple("socket=file:///nonexistent/pam_mapi.sock");
    assert_eq!(authenticate(&service, "alice", "any-password"), PAM_AUTHINFO_UNAVAIL);
    assert!(module_mapped(), "pam_mapi.so was unmapped by pam_end");
}

#[test]
#[ignore = "slow: 10,000 load/unload cycles; tests/hardening/run.sh runs it"]
fn module_cycles_leak_no_resources() {
    let warmup = env_number("PAM_MAPI_WARMUP_CYCLES", 300);
    let cycles = env_number("PAM_MAPI_CYCLES", 10_000);
    let standin = StandinProcess::start("alice", "Cycle-Secr3t&<x>");
    let (good, down) = cycle_services(&standin);

    cycle(warmup, &good, &down);
    let files_before = count_entries("/proc/self/fd");
    let threads_before = count_entries("/proc/self/task");
    let rss_before = resident_kib();

    let started = Instant::now();
    cycle(cycles, &good, &down);
    let elapsed = started.elapsed();

    let files_after = count_entries("/proc/self/fd");
    let threads_after = count_entries("/proc/self/task");
    let rss_after = resident_kib();
    println!("pam_mapi.so mapped after the last pam_end: {}", module_mapped());
    println!(
        "{cycles} cycles after {warmup} warm-up cycles in {elapsed:?}: open files {files_before} -> {files_after}, \
         threads {threads_before} -> {threads_after}, VmRSS {rss_before} KiB -> {rss_after} KiB"
    );
    assert_eq!(files_after, files_before, "open files in /proc/self/fd");
    assert_eq!(threads_after, threads_before, "threads in /proc/self/task");
    assert!(rss_after < rss_before + 1024, "VmRSS grew from {rss_before} KiB to {rss_after} KiB");
}

#[test]
#[ignore = "run under valgrind by tests/hardening/run.sh"]
fn module_cycles_for_valgrind() {
    let cycles = env_number("PAM_MAPI_CYCLES", 50);
    let standin = StandinProcess::start("alice", "Cycle-Secr3t&<x>");
    let (good, down) = cycle_services(&standin);
    cycle(cycles, &good, &down);
}
