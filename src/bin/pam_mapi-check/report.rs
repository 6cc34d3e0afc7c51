//! Step lines on standard output, and the exit status of the first failed step.

use std::process::ExitCode;
use std::time::Instant;

/// Exit statuses, one per kind of step; `--help` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Usage = 2,
    Configuration = 3,
    Dns = 4,
    Connect = 5,
    Tls = 6,
    ServerAnswer = 7,
    AuthFailed = 8,
    PermissionDenied = 9,
    NoServerAnswered = 10,
    OtherPamResult = 11,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// Collects the outcome of the steps and prints one line per step:
/// `NAME: ok, DETAIL (T ms)`, `NAME: FAILED, DETAIL (T ms)` or
/// `NAME: warning, DETAIL`. Detail lines that belong to a step are indented
/// under it.
pub struct Report {
    first_failure: Option<Exit>,
    indent: &'static str,
}

impl Report {
    pub fn new() -> Report {
        Report { first_failure: None, indent: "" }
    }

    /// Sets the indentation for the steps of one server.
    pub fn set_indent(&mut self, indent: &'static str) {
        self.indent = indent;
    }

    pub fn pass(&mut self, step: &str, started: Instant, detail: &str) {
        println!("{}{step}: ok, {detail} ({})", self.indent, elapsed(started));
    }

    /// Prints a failed step and records its exit status unless an earlier step
    /// already failed.
    pub fn fail(&mut self, exit: Exit, step: &str, started: Instant, detail: &str) {
        println!("{}{step}: FAILED, {detail} ({})", self.indent, elapsed(started));
        self.first_failure.get_or_insert(exit);
    }

    /// Records a failure whose line the caller printed.
    pub fn record(&mut self, exit: Exit) {
        self.first_failure.get_or_insert(exit);
    }

    /// Prints a problem that does not change what the module does.
    pub fn warn(&mut self, step: &str, detail: &str) {
        println!("{}{step}: warning, {detail}", self.indent);
    }

    /// Prints a detail line under the current step.
    pub fn detail(&self, text: &str) {
        println!("{}  {text}", self.indent);
    }

    pub fn failed(&self) -> bool {
        self.first_failure.is_some()
    }

    /// Prints the summary line and returns the exit status.
    pub fn finish(self) -> Exit {
        let exit = self.first_failure.unwrap_or(Exit::Success);
        match exit {
            Exit::Success => println!("summary: every step passed (exit status 0)"),
            other => println!("summary: a step failed (exit status {})", other as u8),
        }
        exit
    }
}

/// Formats the time since `started` in milliseconds with one decimal.
pub fn elapsed(started: Instant) -> String {
    format!("{:.1} ms", started.elapsed().as_secs_f64() * 1000.0)
}
