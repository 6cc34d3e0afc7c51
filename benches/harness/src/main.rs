//! Benchmark of pam_mapi.so against the stand-in Kopano server, side by side in
//! one run. It times a minimal client (the floor), the module through libpam,
//! pam_permit through libpam (libpam's own cost) and pam_exec running curl, each
//! over loopback TCP, a Unix socket and TLS. Then it measures the first call and
//! memory in fresh processes, the stripped size, and saslauthd's logon rate
//! against the stand-in's own.
//!
//! Run it through `benches/run.sh`, which builds the module and makes the test CA.
//! Prints a Markdown report on standard output.

mod floor;
mod pam;
mod sasl;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use floor::{Endpoint, Recorder};
use kopano_standin::{Config, Fault, Server};

const USER: &str = "benchuser";
const PASSWORD: &str = "Bench-pw-4711";

/// Command-line settings, each `--name value`.
struct Options {
    module: PathBuf,
    cafile: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    work: PathBuf,
    rounds: usize,
    curl_rounds: usize,
    repeat: usize,
    rate_seconds: u64,
    rate_threads: usize,
    server_delay_ms: u64,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let value = |name: &str| -> Option<String> {
            args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
        };
        let path = |name: &str| PathBuf::from(value(name).unwrap_or_else(|| panic!("missing {name} PATH")));
        let number = |name: &str, default: usize| {
            value(name).map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number: {v}"))).unwrap_or(default)
        };
        Options {
            module: path("--module"),
            cafile: path("--cafile"),
            cert: path("--cert"),
            key: path("--key"),
            work: path("--work"),
            rounds: number("--rounds", 400),
            curl_rounds: number("--curl-rounds", 30),
            repeat: number("--repeat", 5),
            rate_seconds: number("--rate-seconds", 5) as u64,
            rate_threads: number("--rate-threads", 5),
            server_delay_ms: number("--server-delay-ms", 5) as u64,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("first-call") {
        first_call_child(&args[2..]);
        return;
    }
    let options = Options::parse(&args[1..]);
    std::fs::create_dir_all(&options.work).expect("create work directory");
    run(&options);
}

/// One measured way to authenticate.
struct Variant<'a> {
    label: String,
    rounds: usize,
    logon: Box<dyn Fn() -> bool + 'a>,
}

/// CPU time that the calling thread has used, in microseconds.
fn thread_cpu_us() -> f64 {
    let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    time.tv_sec as f64 * 1e6 + time.tv_nsec as f64 / 1e3
}

/// Times one logon: wall-clock and calling-thread CPU time, in microseconds.
fn time_logon(variant: &Variant) -> (f64, f64) {
    let cpu = thread_cpu_us();
    let started = Instant::now();
    assert!((variant.logon)(), "{}: logon failed", variant.label);
    (started.elapsed().as_secs_f64() * 1e6, thread_cpu_us() - cpu)
}

/// Logons per burst of a fast variant. The first logon of each burst is not
/// timed, because it runs with the caches that the previous variant left.
const BURST: usize = 5;

/// Runs one repetition of cycles. In each cycle every fast variant runs one
/// burst, and a slow variant (fewer rounds, such as pam_exec with curl) runs one
/// logon in every n-th cycle. The order is shuffled anew for each cycle, so all
/// variants get the same share of the other load on the machine. Returns the
/// median wall-clock time and the median thread CPU time per logon of each
/// variant.
fn run_repetition(variants: &[Variant], rounds: usize, seed: &mut u64) -> Vec<(f64, f64)> {
    let cycles = rounds.div_ceil(BURST - 1);
    let mut samples: Vec<Vec<(f64, f64)>> = vec![Vec::new(); variants.len()];
    let mut order: Vec<usize> = (0..variants.len()).collect();
    for cycle in 0..cycles {
        shuffle(&mut order, seed);
        for &index in &order {
            let variant = &variants[index];
            if variant.rounds >= rounds {
                assert!((variant.logon)(), "{}: logon failed", variant.label);
                for _ in 1..BURST {
                    samples[index].push(time_logon(variant));
                }
            } else if cycle % (cycles / variant.rounds).max(1) == 0 && samples[index].len() < variant.rounds {
                samples[index].push(time_logon(variant));
            }
        }
    }
    samples
        .iter()
        .map(|s| {
            let wall: Vec<f64> = s.iter().map(|t| t.0).collect();
            let cpu: Vec<f64> = s.iter().map(|t| t.1).collect();
            (median(&wall), median(&cpu))
        })
        .collect()
}

/// Shuffles with xorshift64, which is good enough to vary an order.
fn shuffle(order: &mut [usize], state: &mut u64) {
    for i in (1..order.len()).rev() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        order.swap(i, (*state % (i as u64 + 1)) as usize);
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

/// Returns the body of an HTTP message.
fn body_of(message: &[u8]) -> &[u8] {
    let end = message.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP head");
    &message[end + 4..]
}

/// Writes the script an administrator might use with pam_exec: it builds the
/// same SOAP body from a template with sed and posts it with curl.
fn write_curl_script(work: &Path, label: &str, template: &[u8], curl_target: &str) -> PathBuf {
    let template_path = work.join(format!("logon-{label}.xml"));
    std::fs::write(&template_path, template).expect("write template");
    let script = work.join(format!("curl-logon-{label}.sh"));
    let text = format!(
        "#!/bin/sh\n\
         # pam_exec expose_authtok writes the password to standard input.\n\
         password=$(tr -d '\\000')\n\
         sed -e \"s/@USER@/$PAM_USER/\" -e \"s/@PASSWORD@/$password/\" {template} |\n\
         curl -s --max-time 10 -H 'Content-Type: text/xml; charset=utf-8' --data-binary @- {curl_target} |\n\
         grep -q '<er>0</er>'\n",
        template = template_path.display()
    );
    std::fs::write(&script, text).expect("write curl script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod script");
    script
}

fn run(options: &Options) {
    let work = &options.work;
    let user = CString::new(USER).unwrap();
    let password = CString::new(PASSWORD).unwrap();
    let empty = CString::new("").unwrap();
    let module = options.module.display().to_string();

    let plain = Server::start(Config::soap().user(USER, PASSWORD)).expect("start TCP stand-in");
    let unix_path = work.join("standin.sock");
    let unix = Server::start(Config::soap().user(USER, PASSWORD).tcp(None).unix(&unix_path)).expect("start Unix stand-in");
    let cert = std::fs::read(&options.cert).expect("read certificate");
    let key = std::fs::read(&options.key).expect("read key");
    let tls = Server::start(Config::soap().user(USER, PASSWORD).tls(&cert, &key)).expect("start TLS stand-in");
    let plain_addr = plain.tcp_addr().unwrap();
    let tls_addr = tls.tcp_addr().unwrap();

    // Record the module's own request bytes for the floor client.
    let record = |upstream: Endpoint, socket: Option<&Path>| {
        let recorder = Recorder::start(upstream, socket);
        let service = pam::Service::new(work, "record", &format!("auth required {module} socket={}\n", recorder.url));
        assert_eq!(service.authenticate(&user, &password), pam::PAM_SUCCESS, "logon through the recorder failed");
        recorder.request()
    };
    let tcp_request = record(Endpoint::Tcp(plain_addr), None);
    let unix_request = record(Endpoint::Unix(unix_path.clone()), Some(&work.join("recorder.sock")));
    let template = String::from_utf8_lossy(body_of(&tcp_request)).replace(USER, "@USER@").replace(PASSWORD, "@PASSWORD@");
    assert!(template.contains("@PASSWORD@"), "password not found in the recorded body");

    let services = [
        ("tcp", plain.url(), String::new(), format!("http://{plain_addr}/kopano")),
        ("unix", unix.unix_url().unwrap(), String::new(), format!("--unix-socket {} http://localhost/kopano", unix_path.display())),
        (
            "tls",
            tls.url(),
            format!(" cafile={}", options.cafile.display()),
            format!("--cacert {} https://{tls_addr}/kopano", options.cafile.display()),
        ),
    ];
    let permit = pam::Service::new(work, "permit", "auth required pam_permit.so\n");
    // libpam loads every module of a service file in pam_start_confdir, so this
    // stack loads and unloads pam_mapi.so without calling it.
    let load_only = pam::Service::new(
        work,
        "load-only",
        &format!("auth required pam_permit.so\naccount required {module} socket={}\n", plain.url()),
    );
    let mut mapi_services = Vec::new();
    let mut curl_services = Vec::new();
    for (label, url, extra, curl_target) in &services {
        mapi_services.push(pam::Service::new(work, &format!("mapi-{label}"), &format!("auth required {module} socket={url}{extra}\n")));
        let script = write_curl_script(work, label, template.as_bytes(), curl_target);
        curl_services.push(pam::Service::new(
            work,
            &format!("curl-{label}"),
            &format!("auth required pam_exec.so expose_authtok quiet {}\n", script.display()),
        ));
    }

    let unix_endpoint = Endpoint::Unix(unix_path.clone());
    let tcp_endpoint = Endpoint::Tcp(plain_addr);
    let mut variants: Vec<Variant> = Vec::new();
    variants.push(Variant { label: "floor tcp".into(), rounds: options.rounds, logon: Box::new(|| floor::logon_plain(&tcp_endpoint, &tcp_request).unwrap()) });
    variants.push(Variant { label: "floor unix".into(), rounds: options.rounds, logon: Box::new(|| floor::logon_plain(&unix_endpoint, &unix_request).unwrap()) });
    variants.push(Variant {
        label: "floor tcp, two writes".into(),
        rounds: options.rounds,
        logon: Box::new(|| floor::logon_plain_two_writes(&tcp_endpoint, &tcp_request).unwrap()),
    });
    variants.push(Variant {
        label: "floor unix, two writes".into(),
        rounds: options.rounds,
        logon: Box::new(|| floor::logon_plain_two_writes(&unix_endpoint, &unix_request).unwrap()),
    });
    variants.push(Variant {
        label: "floor tcp, ureq's system calls".into(),
        rounds: options.rounds,
        logon: Box::new(|| floor::logon_tcp_like_ureq(plain_addr, &tcp_request).unwrap()),
    });
    variants.push(Variant {
        label: "floor tls".into(),
        rounds: options.rounds,
        logon: Box::new(|| floor::logon_tls(tls_addr, &options.cafile, &tcp_request).unwrap()),
    });
    variants.push(Variant { label: "pam_permit".into(), rounds: options.rounds, logon: Box::new(|| permit.authenticate(&user, &password) == pam::PAM_SUCCESS) });
    // An empty password is rejected inside the module before any connection,
    // which leaves the module's local work: settings, PAM items, input checks.
    let mapi_tcp = &mapi_services[0];
    variants.push(Variant {
        label: "pam_mapi, empty password (no request)".into(),
        rounds: options.rounds,
        logon: Box::new(|| mapi_tcp.authenticate(&user, &empty) == pam::PAM_AUTH_ERR),
    });
    variants.push(Variant {
        label: "pam_permit + pam_mapi loaded, not called".into(),
        rounds: options.rounds,
        logon: Box::new(|| load_only.authenticate(&user, &password) == pam::PAM_SUCCESS),
    });
    for (i, (label, ..)) in services.iter().enumerate() {
        let mapi = &mapi_services[i];
        let curl = &curl_services[i];
        let (user, password) = (&user, &password);
        variants.push(Variant { label: format!("pam_mapi {label}"), rounds: options.rounds, logon: Box::new(move || mapi.authenticate(user, password) == pam::PAM_SUCCESS) });
        variants.push(Variant { label: format!("pam_exec+curl {label}"), rounds: options.curl_rounds, logon: Box::new(move || curl.authenticate(user, password) == pam::PAM_SUCCESS) });
    }

    for variant in &variants {
        for _ in 0..3 {
            assert!((variant.logon)(), "{}: warm-up logon failed", variant.label);
        }
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut cpu_results: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for repetition in 0..options.repeat {
        for (index, (time, cpu)) in run_repetition(&variants, options.rounds, &mut seed).into_iter().enumerate() {
            results[index].push(time);
            cpu_results[index].push(cpu);
        }
        eprintln!("repetition {} of {} done", repetition + 1, options.repeat);
    }
    let by_label = |label: &str| -> &Vec<f64> {
        &results[variants.iter().position(|v| v.label == label).unwrap_or_else(|| panic!("no variant {label}"))]
    };

    println!("### Time per logon (µs)\n");
    println!(
        "Each repetition interleaves all variants in bursts of {BURST} logons (the first untimed) in shuffled order and takes the median logon time of each; the table gives the median, minimum and maximum of those over {} repetitions.\n",
        options.repeat
    );
    println!("The last column is the CPU time of the calling thread (user and system), which leaves out the stand-in's threads and pam_exec's child processes.\n");
    println!("| variant | logons per repetition | median | min | max | spread | thread CPU, median |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for ((variant, values), cpu) in variants.iter().zip(&results).zip(&cpu_results) {
        let m = median(values);
        let (lo, hi) = min_max(values);
        println!(
            "| {} | {} | {m:.0} | {lo:.0} | {hi:.0} | {:.0} % | {:.0} |",
            variant.label,
            variant.rounds,
            (hi - lo) / m * 100.0,
            median(cpu)
        );
    }
    let cpu_of = |label: &str| -> f64 {
        median(&cpu_results[variants.iter().position(|v| v.label == label).unwrap_or_else(|| panic!("no variant {label}"))])
    };

    println!("\n### Ratios\n");
    println!("Module's own cost = pam_mapi round − pam_permit round. Per-repetition ratios show the noise.\n");
    println!("| transport | own cost (µs) | floor (µs) | own cost / floor | per repetition | target | pam_exec+curl / pam_mapi (full rounds) | curl own cost / module own cost |");
    println!("|---|---:|---:|---:|---|---:|---:|---:|");
    let permit_times = by_label("pam_permit");
    for (label, target) in [("tcp", 1.1), ("unix", 1.1), ("tls", 1.2)] {
        let mapi_times = by_label(&format!("pam_mapi {label}"));
        let floor_times = by_label(&format!("floor {label}"));
        let curl_times = by_label(&format!("pam_exec+curl {label}"));
        let per_rep: Vec<f64> =
            (0..options.repeat).map(|r| (mapi_times[r] - permit_times[r]) / floor_times[r]).collect();
        let (lo, hi) = min_max(&per_rep);
        let own = median(mapi_times) - median(permit_times);
        let curl_own = median(curl_times) - median(permit_times);
        println!(
            "| {label} | {own:.0} | {:.0} | {:.2} | {lo:.2} – {hi:.2} | ≤ {target} | {:.1} | {:.1} |",
            median(floor_times),
            own / median(floor_times),
            median(curl_times) / median(mapi_times),
            curl_own / own
        );
    }

    println!();
    for label in ["tcp", "unix"] {
        let own = median(by_label(&format!("pam_mapi {label}"))) - median(permit_times);
        let two_writes = median(by_label(&format!("floor {label}, two writes")));
        println!("- {label}: own cost / floor with head and body in two writes = {:.2}", own / two_writes);
    }
    for label in ["tcp", "unix", "tls"] {
        let own_cpu = cpu_of(&format!("pam_mapi {label}")) - cpu_of("pam_permit");
        println!(
            "- {label}: CPU of the calling thread, module's own = {own_cpu:.0} µs, floor = {:.0} µs",
            cpu_of(&format!("floor {label}"))
        );
    }
    let like_ureq = median(by_label("floor tcp, ureq's system calls"));
    let own_tcp = median(by_label("pam_mapi tcp")) - median(permit_times);
    println!("- tcp: own cost / floor with ureq's system calls = {:.2}", own_tcp / like_ureq);
    let load = median(by_label("pam_permit + pam_mapi loaded, not called")) - median(permit_times);
    let local = median(by_label("pam_mapi, empty password (no request)")) - median(permit_times);
    println!("- loading and unloading pam_mapi.so: {load:.0} µs; loading plus the work before any request: {local:.0} µs");

    println!("\n### Requests per logon\n");
    for (label, server) in [("tcp", &plain), ("unix", &unix), ("tls", &tls)] {
        let before = (server.request_count("logon"), server.request_count("logoff"));
        let index = services.iter().position(|s| s.0 == label).unwrap();
        assert_eq!(mapi_services[index].authenticate(&user, &password), pam::PAM_SUCCESS);
        println!(
            "- {label}: {} logon, {} logoff",
            server.request_count("logon") - before.0,
            server.request_count("logoff") - before.1
        );
    }

    first_calls(options, &plain.url());
    stripped_size(&options.module);
    saslauthd_rate(options, &module, &plain, &tcp_request);
}

/// Runs `first-call` children for pam_mapi and pam_permit and reports the
/// medians of their first transaction and their memory.
fn first_calls(options: &Options, url: &str) {
    const PROCESSES: usize = 15;
    let exe = std::env::current_exe().unwrap();
    let module_line = format!("auth required {} socket={url}", options.module.display());
    let measure = |line: &str, i: usize| -> [f64; 3] {
        let work = options.work.join(format!("first-call-{i}"));
        let output = Command::new(&exe).args(["first-call", line]).arg(&work).output().expect("run child");
        assert!(output.status.success(), "first-call child failed: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<f64> = text.split_whitespace().map(|f| f.parse().unwrap()).collect();
        [fields[0], fields[1], fields[2]]
    };

    // Alternate the two stacks so that both see the same load.
    let mut mapi = Vec::new();
    let mut permit = Vec::new();
    for i in 0..PROCESSES {
        mapi.push(measure(&module_line, i));
        permit.push(measure("auth required pam_permit.so", i));
    }

    let column = |rows: &[[f64; 3]], i: usize| rows.iter().map(|r| r[i]).collect::<Vec<_>>();
    let time_min = |rows: &[[f64; 3]]| min_max(&column(rows, 0)).0;
    println!("\n### First transaction in a fresh process ({PROCESSES} processes per stack, alternating)\n");
    println!("| stack | pam_start … pam_end, median (µs) | fastest (µs) | peak RSS added, median (KiB) | RSS after pam_end, added (KiB) |");
    println!("|---|---:|---:|---:|---:|");
    for (label, rows) in [("pam_mapi", &mapi), ("pam_permit", &permit)] {
        println!(
            "| {label} | {:.0} | {:.0} | {:.0} | {:.0} |",
            median(&column(rows, 0)),
            time_min(rows),
            median(&column(rows, 1)),
            median(&column(rows, 2))
        );
    }
    println!(
        "| difference (the module) | {:.0} | {:.0} | {:.0} | {:.0} |",
        median(&column(&mapi, 0)) - median(&column(&permit, 0)),
        time_min(&mapi) - time_min(&permit),
        median(&column(&mapi, 1)) - median(&column(&permit, 1)),
        median(&column(&mapi, 2)) - median(&column(&permit, 2))
    );
}

/// Reads a `Vm…:` value in KiB from /proc/self/status.
fn status_kib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Child: one transaction with the given auth line. Prints its time in µs, the
/// peak RSS above the RSS before it, and the RSS after it above the RSS before,
/// both in KiB.
fn first_call_child(args: &[String]) {
    let line = &args[0];
    let work = PathBuf::from(&args[1]);
    let service = pam::Service::new(&work, "first", &format!("{line}\n"));
    let user = CString::new(USER).unwrap();
    let password = CString::new(PASSWORD).unwrap();
    // Reset the peak to the current RSS so that VmHWM measures this call only.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let rc = service.authenticate(&user, &password);
    let elapsed = started.elapsed().as_secs_f64() * 1e6;
    let peak = status_kib("VmHWM:");
    let after = status_kib("VmRSS:");
    assert_eq!(rc, pam::PAM_SUCCESS, "first call failed");
    drop(service);
    let _ = std::fs::remove_dir_all(&work);
    println!("{elapsed:.0} {:.0} {:.0}", peak - before, after - before);
}

/// Reports the size of a stripped copy of the module.
fn stripped_size(module: &Path) {
    let copy = std::env::temp_dir().join(format!("pam_mapi-bench-{}.so", std::process::id()));
    std::fs::copy(module, &copy).expect("copy module");
    let status = Command::new("strip").arg(&copy).status().expect("run strip");
    assert!(status.success(), "strip failed");
    let size = std::fs::metadata(&copy).unwrap().len();
    let unstripped = std::fs::metadata(module).unwrap().len();
    let _ = std::fs::remove_file(&copy);
    println!("\n### Size\n");
    println!("| file | bytes | MiB |");
    println!("|---|---:|---:|");
    println!("| {} (as built) | {unstripped} | {:.2} |", module.display(), unstripped as f64 / 1048576.0);
    println!("| stripped copy | {size} | {:.2} |", size as f64 / 1048576.0);
}

/// Compares saslauthd's logon rate with 5 workers against the stand-in's own
/// rate with the floor client, both with the same number of client threads.
/// The stand-in first replies at once, then after `--server-delay-ms`, which
/// imitates a server that does real work per logon.
fn saslauthd_rate(options: &Options, module: &str, plain: &Server, request: &[u8]) {
    let service = format!("pam_mapi_bench_{}", std::process::id());
    let lines = format!("auth required {module} socket={}\naccount required {module}\n", plain.url());
    let daemon = match sasl::Saslauthd::start(&options.work.join("saslauthd"), &service, &lines, 5) {
        Ok(daemon) => daemon,
        Err(e) => {
            println!("\n### saslauthd\n\nnot measured: cannot start saslauthd: {e}");
            return;
        }
    };
    // The same daemon setup with pam_permit shows saslauthd's own ceiling.
    let permit_service = format!("{service}_permit");
    let permit_daemon = sasl::Saslauthd::start(
        &options.work.join("saslauthd-permit"),
        &permit_service,
        "auth required pam_permit.so\naccount required pam_permit.so\n",
        5,
    )
    .expect("start saslauthd with pam_permit");
    assert!(daemon.logon(USER, PASSWORD, &service).expect("ask saslauthd"), "saslauthd rejected the right password");
    assert!(!daemon.logon(USER, "wrong", &service).expect("ask saslauthd"), "saslauthd accepted a wrong password");

    let endpoint = Endpoint::Tcp(plain.tcp_addr().unwrap());
    let duration = Duration::from_secs(options.rate_seconds);
    let threads = options.rate_threads;
    println!("\n### saslauthd -a pam -n 5 (3 alternating runs of {} s each, {threads} client threads)", options.rate_seconds);
    for delay in [0u64, options.server_delay_ms] {
        plain.set_fault(if delay == 0 { Fault::None } else { Fault::DelayMs(delay) });
        let mut standin_rates = Vec::new();
        let mut sasl_rates = Vec::new();
        let mut permit_rates = Vec::new();
        for _ in 0..3 {
            standin_rates.push(sasl::rate(threads, duration, &|| floor::logon_plain(&endpoint, request).unwrap()));
            sasl_rates.push(sasl::rate(threads, duration, &|| daemon.logon(USER, PASSWORD, &service).unwrap()));
            if delay == 0 {
                permit_rates.push(sasl::rate(threads, duration, &|| {
                    permit_daemon.logon(USER, PASSWORD, &permit_service).unwrap()
                }));
            }
        }
        let per_run: Vec<f64> = sasl_rates.iter().zip(&standin_rates).map(|(s, r)| s / r).collect();
        let (lo, hi) = min_max(&per_run);
        println!("\nStand-in answering each logon after {delay} ms:\n");
        println!("| client | logons/s (median) | runs |");
        println!("|---|---:|---|");
        let list = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
        println!("| floor client straight to the stand-in | {:.0} | {} |", median(&standin_rates), list(&standin_rates));
        println!("| saslauthd + pam_mapi | {:.0} | {} |", median(&sasl_rates), list(&sasl_rates));
        if !permit_rates.is_empty() {
            println!("| saslauthd + pam_permit (no server) | {:.0} | {} |", median(&permit_rates), list(&permit_rates));
        }
        println!(
            "\nsaslauthd / stand-in: {:.2} (per run {lo:.2} – {hi:.2}); target ≥ 0.90",
            median(&sasl_rates) / median(&standin_rates)
        );
    }
    plain.set_fault(Fault::None);
    drop(daemon);
    drop(permit_daemon);
}
