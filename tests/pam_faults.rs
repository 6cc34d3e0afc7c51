//! The fault table: reads the rows of docs/faults.md and runs each one through the
//! real libpam against a stand-in server in that fault mode. Each row checks the
//! PAM result and the time it took. Eight workers run the rows, one server each.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kopano_standin::{Config, Fault, Server, TEST_CA_PEM};

const USER: &str = "alice";
/// Gromox accepts only full addresses as user names.
const MAPIHTTP_USER: &str = "alice@example.test";
const RIGHT_PASSWORD: &str = "Fault-Table-Secr3t&<ok>";
const WRONG_PASSWORD: &str = "Fault-Table-Wr0ng&<no>";

/// Rows that run at the same time.
const WORKERS: usize = 8;

/// The module's total deadline in every row, in seconds.
const TIMEOUT_SECONDS: u64 = 2;

/// Fault modes the table must cover, in their `--fault` spelling.
const REQUIRED_FAULTS: &[&str] = &[
    "refuse",
    "stall",
    "trickle",
    "reset-after-request",
    "close-after-headers",
    "tls-handshake-stall",
    "status500",
    "status503-html",
    "empty-ok",
    "truncated",
    "huge-body",
    "chunked-endless",
    "gzip-body",
    "redirect:301",
    "redirect:302",
    "redirect:307",
    "redirect:308",
    "garbage",
    "two-er",
    "no-er",
    "er-in-wrong-element",
    "huge-number",
    "doctype",
    "delay-ms",
];

/// One row of the table.
#[derive(Clone, Debug)]
struct Row {
    fault: String,
    protocol: String,
    transport: String,
    right_password: bool,
    result: String,
    max_ms: u128,
}

impl Row {
    fn label(&self) -> String {
        let password = if self.right_password { "right" } else { "wrong" };
        format!("{} ({} over {}) with the {password} password", self.fault, self.protocol, self.transport)
    }
}

fn table_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/faults.md")
}

/// Splits a markdown table line into trimmed cells without the backticks.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|cell| cell.trim().trim_matches('`').to_string()).collect()
}

/// Reads the table whose header has the columns fault, protocol, transport,
/// password, result and max_ms.
fn read_table() -> Vec<Row> {
    let path = table_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines().skip_while(|line| !(line.starts_with('|') && line.contains("fault")));
    let header = cells(lines.next().unwrap_or_else(|| panic!("no fault table in {}", path.display())));
    let column = |name: &str| {
        header
            .iter()
            .position(|cell| cell == name)
            .unwrap_or_else(|| panic!("the fault table in {} has no column {name:?}", path.display()))
    };
    let (fault, protocol, transport, password) = (column("fault"), column("protocol"), column("transport"), column("password"));
    let (result, max_ms) = (column("result"), column("max_ms"));
    let mut rows = Vec::new();
    for line in lines.skip(1).take_while(|line| line.starts_with('|')) {
        let row = cells(line);
        let right_password = match row[password].as_str() {
            "right" => true,
            "wrong" => false,
            other => panic!("invalid password {other:?} in fault table row {line:?}; use right or wrong"),
        };
        rows.push(Row {
            fault: row[fault].clone(),
            protocol: row[protocol].clone(),
            transport: row[transport].clone(),
            right_password,
            result: row[result].clone(),
            max_ms: row[max_ms].parse().unwrap_or_else(|_| panic!("invalid max_ms in fault table row {line:?}")),
        });
    }
    rows
}

/// Returns the PAM code for a result name in the table.
fn code_named(name: &str) -> i32 {
    match name {
        "PAM_SUCCESS" => PAM_SUCCESS,
        "PAM_AUTH_ERR" => PAM_AUTH_ERR,
        "PAM_AUTHINFO_UNAVAIL" => PAM_AUTHINFO_UNAVAIL,
        "PAM_SERVICE_ERR" => PAM_SERVICE_ERR,
        other => panic!("unknown PAM result {other:?} in the fault table"),
    }
}

/// Returns the symbolic name of a PAM code, for the measured table.
fn symbol(code: i32) -> String {
    match code {
        PAM_SUCCESS => "PAM_SUCCESS".into(),
        PAM_AUTH_ERR => "PAM_AUTH_ERR".into(),
        PAM_AUTHINFO_UNAVAIL => "PAM_AUTHINFO_UNAVAIL".into(),
        PAM_SERVICE_ERR => "PAM_SERVICE_ERR".into(),
        other => format!("PAM code {other}"),
    }
}

/// Returns the stand-in configuration for the row's protocol, on TCP, and the
/// user name to log on with.
fn protocol_config(row: &Row) -> (Config, &'static str) {
    match row.protocol.as_str() {
        "soap" => (Config::soap().user(USER, RIGHT_PASSWORD), USER),
        // Gromox delays every 401 by 1 s; a shorter delay keeps the rows fast.
        "mapihttp" => {
            (Config::mapihttp().user(MAPIHTTP_USER, RIGHT_PASSWORD).failure_delay(Duration::from_millis(100)), MAPIHTTP_USER)
        }
        other => panic!("unknown protocol {other:?} in the fault table; use soap or mapihttp"),
    }
}

fn with_transport(config: Config, row: &Row, dir: &Path) -> Config {
    match row.transport.as_str() {
        "tcp" => config,
        "unix" => config.tcp(None).unix(dir.join("server.sock")),
        "tls" => config.tls_localhost(),
        other => panic!("unknown transport {other:?} in the fault table; use tcp, unix or tls"),
    }
}

/// The outcome of one row.
struct Measured {
    row: Row,
    code: i32,
    elapsed: Duration,
    /// Requests that reached the redirect target.
    redirect_target_logons: usize,
}

fn run_row(row: Row) -> Measured {
    let dir = scratch_dir("fault");
    let (config, user) = protocol_config(&row);
    let healthy = Server::start(config.clone()).unwrap();
    let server = Server::start(with_transport(config, &row, &dir)).unwrap();
    let fault: Fault = row
        .fault
        .replace("{healthy}", &healthy.url())
        .parse()
        .unwrap_or_else(|e| panic!("fault table row {}: {e}", row.label()));
    server.set_fault(fault);

    let url = match row.transport.as_str() {
        "unix" => server.unix_url().unwrap(),
        _ => server.url(),
    };
    let mut args = format!(
        "protocol={} socket={url} timeout={TIMEOUT_SECONDS} state_file={}",
        row.protocol,
        dir.join("state").display()
    );
    if row.transport == "tls" {
        let cafile = dir.join("ca.pem");
        std::fs::write(&cafile, TEST_CA_PEM).unwrap();
        args.push_str(&format!(" cafile={}", cafile.display()));
    }
    let service = Service::simple(&args);
    let password = if row.right_password { RIGHT_PASSWORD } else { WRONG_PASSWORD };

    let started = Instant::now();
    let code = authenticate(&service, user, password);
    let elapsed = started.elapsed();
    let redirect_target_logons = healthy.logons().len();
    let _ = std::fs::remove_dir_all(&dir);
    Measured { row, code, elapsed, redirect_target_logons }
}

#[test]
fn fault_table_covers_every_fault_mode() {
    let rows = read_table();
    for required in REQUIRED_FAULTS {
        assert!(
            rows.iter().any(|row| row.fault.starts_with(required)),
            "docs/faults.md has no row for the fault {required}"
        );
    }
}

#[test]
fn fault_rows_never_expect_success() {
    // PAM_SUCCESS needs the right password and a reply whose status line and
    // headers are intact. Over MAPI over HTTP those headers alone decide, so a
    // fault that only replaces the body may still succeed there.
    let body_only = ["garbage", "empty-ok", "gzip-body"];
    for row in read_table().iter().filter(|row| row.result == "PAM_SUCCESS") {
        let harmless = row.fault == "none"
            || row.fault.starts_with("delay-ms")
            || (row.protocol == "mapihttp" && body_only.contains(&row.fault.as_str()));
        assert!(row.right_password, "row {} expects PAM_SUCCESS for a wrong password", row.label());
        assert!(harmless, "row {} expects PAM_SUCCESS from a broken server", row.label());
    }
}

#[test]
fn fault_bounds_within_deadline_margin() {
    let limit = u128::from(TIMEOUT_SECONDS) * 1000 + 300;
    for row in read_table() {
        assert!(row.max_ms <= limit, "row {} allows {} ms, more than {limit} ms", row.label(), row.max_ms);
    }
}

#[test]
fn fault_table_rows_through_libpam() {
    let rows = read_table();
    assert!(rows.len() >= REQUIRED_FAULTS.len(), "the fault table has only {} rows", rows.len());
    // The rows that wait for the deadline start first, and eight workers share
    // the rest, so that start-up work of many rows at once does not count
    // against the deadline of one.
    let mut queue = rows;
    queue.sort_by_key(|row| row.max_ms);
    let queue = Arc::new(Mutex::new(queue));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let mut measured = Vec::new();
                loop {
                    // A statement of its own, so that the lock is released before the row runs.
                    let next = queue.lock().unwrap().pop();
                    let Some(row) = next else { break };
                    measured.push(run_row(row));
                }
                measured
            })
        })
        .collect();
    let results: Vec<Measured> = workers.into_iter().flat_map(|worker| worker.join().unwrap()).collect();
    let total = started.elapsed();

    println!("| fault | protocol | transport | password | result | elapsed_ms |");
    for measured in &results {
        let row = &measured.row;
        let password = if row.right_password { "right" } else { "wrong" };
        println!(
            "| `{}` | {} | {} | {password} | {} | {} |",
            row.fault,
            row.protocol,
            row.transport,
            symbol(measured.code),
            measured.elapsed.as_millis()
        );
    }
    println!("all rows with {WORKERS} workers: {} ms", total.as_millis());

    for measured in &results {
        let row = &measured.row;
        assert_eq!(name(measured.code), name(code_named(&row.result)), "PAM result for {}", row.label());
        assert!(
            measured.elapsed.as_millis() <= row.max_ms,
            "{} took {} ms, the bound is {} ms",
            row.label(),
            measured.elapsed.as_millis(),
            row.max_ms
        );
        if row.fault.starts_with("redirect") {
            assert_eq!(measured.redirect_target_logons, 0, "{} reached the redirect target", row.label());
        }
    }
}

/// A broken configuration file is a fault on the administrator's side: the
/// module must reject it with PAM_SERVICE_ERR and leave the process running.
#[test]
fn config_key_with_huge_index_is_service_err() {
    use std::os::unix::fs::PermissionsExt;

    let dir = scratch_dir("conf");
    let conf = dir.join("pam_mapi.conf");
    std::fs::write(&conf, "socket = http://127.0.0.1:9/kopano\nsocket[99999999999] = x\n").unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let service = Service::simple(&format!("config={}", conf.display()));
    assert_eq!(name(authenticate(&service, USER, RIGHT_PASSWORD)), name(PAM_SERVICE_ERR));
    let _ = std::fs::remove_dir_all(&dir);
}
