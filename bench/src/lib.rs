//! Shared pieces of the benchmarks: the machine description printed with every
//! result, finding the release `shuxiang` binary, running it as a child while
//! measuring wall time, CPU time and peak RSS, and throwaway PostgreSQL
//! databases.
//!
//! The benchmarks drive the real binary rather than library calls so that what
//! is measured is what an operator runs: process start, migrations, parsing
//! and the database work together.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// Where PostgreSQL runs on the development machines (trust auth).
pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Date, core count, CPU model and kernel: the context every figure needs.
pub fn machine() -> String {
    let date = Command::new("date")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")
                .map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap_or(0))
        })
        .unwrap_or(0);
    format!(
        "date: {date}\nmachine: nproc {nproc}, CPU {cpu}, {:.1} GiB RAM, Linux {}\n{}",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim(),
        load_average()
    )
}

/// The 1/5/15-minute load averages: other work on the machine skews every
/// figure, so each report says how busy the machine was.
pub fn load_average() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "load average (1/5/15 min): {}",
        l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

/// The workspace root (this crate lives in `bench/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// The release binary to measure: `explicit`, else `$CARGO_TARGET_DIR` or
/// `target/` under the workspace. A debug build would make every figure
/// meaningless, so its absence is an error, not a fallback.
pub fn shuxiang_bin(explicit: Option<PathBuf>) -> Result<PathBuf> {
    let path = explicit.unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        target.join("release").join("shuxiang")
    });
    if !path.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release -p shuxiang`",
            path.display()
        );
    }
    Ok(path)
}

/// What one child process took.
pub struct ChildRun {
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
    pub peak_rss_kib: u64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion and measures it. The child is reaped with
/// `wait4`, whose `rusage` is the child's own (not every child's so far, as
/// `RUSAGE_CHILDREN` would be), so runs in one benchmark do not blend.
pub fn run_measured(cmd: &mut Command) -> Result<ChildRun> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the child")?;
    // Drained on threads so a chatty child never blocks on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unreaped child; both pointers are valid for the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if rc != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{cmd:?} failed (wait status {status})\nstdout:\n{stdout}\nstderr:\n{stderr}");
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Ok(ChildRun {
        wall,
        user: tv(usage.ru_utime),
        sys: tv(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        peak_rss_kib: usage.ru_maxrss as u64,
        stdout,
        stderr,
    })
}

/// User plus system CPU time of a running process, from `/proc/PID/stat`
/// (all its threads together).
pub fn process_cpu(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is parenthesised and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// CPU time this process has used so far (the load generator's own cost).
pub fn self_cpu() -> Duration {
    // SAFETY: rusage is plain old data that getrusage fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is valid for the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A PostgreSQL database created for one benchmark and dropped after it.
pub struct PgScratch {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgScratch {
    pub async fn create(admin_url: &str) -> Result<Self> {
        let name = format!("shuxiang_bench_{:08x}", rand::random::<u32>());
        let mut conn = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to {admin_url}"))?;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(&name);
        Ok(Self {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
        })
    }

    /// Drops the database, ending any connection still open on it.
    pub async fn drop_db(self) -> Result<()> {
        let mut conn = PgConnection::connect(&self.admin_url).await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }
}

/// Runs `f` on a fresh database and drops the database whether `f` succeeded
/// or not, so a failed run leaves nothing behind.
pub async fn with_pg_scratch<T>(admin_url: &str, f: impl AsyncFnOnce(&PgScratch) -> Result<T>) -> Result<T> {
    let db = PgScratch::create(admin_url).await?;
    let result = f(&db).await;
    let dropped = db.drop_db().await;
    let value = result?;
    dropped?;
    Ok(value)
}

/// The `p`-th percentile (0–100) of sorted samples.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
