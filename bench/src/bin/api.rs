//! Region read API benchmark: starts the release `shuxiang serve` on a fresh
//! data directory (SQLite, and optionally a fresh PostgreSQL database), signs
//! in as admin, then drives N keep-alive HTTP/1.1 connections for a fixed
//! time against the trivial `/healthz` (the baseline: routing, middleware and
//! HTTP alone) and against `GET /api/v1/regions/{code}` for random Jiangxi
//! codes, in alternating rounds. It prints req/s, p50/p99 latency and server
//! CPU per request for each, and the ratio regions / healthz, the figure of
//! merit. Then it fetches the province page `/regions/36` with and without
//! gzip to report its weight, and last, with the server stopped, times the
//! region request's steps (auth, region, ancestors) in-process on the same
//! database, to show where an uncached request's server time goes.
//!
//! The load generator runs on a single-threaded runtime, so it takes at most
//! one core; on a 2-core machine it competes with the server for the CPU,
//! which depresses both absolute figures alike and leaves the ratio meaningful.
//! Both endpoints get the same headers (including the bearer token), so the
//! difference between them is the server's per-request work alone.
//!
//! The server caches token and region lookups for `cache_ttl_seconds`;
//! `--cache-ttl` sets it (0: every request goes to the database, which is
//! what a cache miss costs). The in-process step timings call the kernel
//! directly and so always show the uncached work.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use futures_util::future::try_join_all;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, COOKIE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sea_query::{Expr, Query};
use shuxiang_bench::{
    DEFAULT_PG, load_average, machine, percentile, process_cpu, self_cpu, shuxiang_bin, with_pg_scratch,
};
use shuxiang_core::auth;
use shuxiang_core::import::{jiangxi_files, parse_region_files};
use shuxiang_core::regions;
use shuxiang_core::{Backend, Db, RegionCode};
use tokio::net::TcpStream;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Parser, Clone)]
#[command(about = "Region read API throughput against the trivial endpoint, and the province page's weight")]
struct Args {
    /// Backends to serve from.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Which,
    /// PostgreSQL server to create the scratch database on.
    #[arg(long, default_value = DEFAULT_PG)]
    pg: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Alternating healthz/regions rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Server's `cache_ttl_seconds` (token and region lookups reused this
    /// long; 0 turns the caches off). Default: the server's own default.
    #[arg(long)]
    cache_ttl: Option<u64>,
    /// The `shuxiang` binary (default: target/release/shuxiang).
    #[arg(long)]
    bin: Option<PathBuf>,
}

/// The server under test; killed (SIGTERM, then reaped) when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(
        bin: &PathBuf,
        data_dir: &str,
        database: Option<&str>,
        cache_ttl: Option<u64>,
        password: &str,
    ) -> Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args([
            "serve",
            "--data-dir",
            data_dir,
            "--listen",
            "127.0.0.1:0",
            "--mqtt",
            "127.0.0.1:0",
        ]);
        if let Some(url) = database {
            cmd.args(["--database", url]);
        }
        if let Some(ttl) = cache_ttl {
            cmd.env("SHUXIANG_CACHE_TTL_SECONDS", ttl.to_string());
        }
        // Logs go to a file next to the data: a terminal would cost the server CPU.
        let log = std::fs::File::create(PathBuf::from(data_dir).join("serve.log"))?;
        let mut child = cmd
            .env("SHUXIANG_ADMIN_PASSWORD", password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting shuxiang serve")?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let addr = loop {
            let Some(line) = lines.next().transpose()? else {
                let _ = child.wait();
                bail!("shuxiang serve exited before listening; see {data_dir}/serve.log");
            };
            if let Some(rest) = line.strip_prefix("Shuxiang listening on http://") {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                break addr
                    .parse()
                    .with_context(|| format!("unexpected listen line {line:?}"))?;
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, addr })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

type Conn = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Conn> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::task::spawn_local(conn);
    Ok(sender)
}

/// A response's status, headers of interest and body as received on the wire.
struct Fetched {
    status: StatusCode,
    content_type: String,
    encoding: String,
    body: Bytes,
}

async fn fetch(
    conn: &mut Conn,
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(hyper::header::HeaderName, &str)],
    body: Bytes,
) -> Result<Fetched> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string());
    for (k, v) in headers {
        req = req.header(k, *v);
    }
    conn.ready().await?;
    let resp = conn.send_request(req.body(Full::new(body))?).await?;
    let header = |h| {
        resp.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, encoding) = (header(CONTENT_TYPE), header(CONTENT_ENCODING));
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Fetched {
        status,
        content_type,
        encoding,
        body,
    })
}

async fn login(addr: SocketAddr, password: &str) -> Result<String> {
    let mut conn = connect(addr).await?;
    let body = serde_json::json!({"username": "admin", "password": password}).to_string();
    let r = fetch(
        &mut conn,
        addr,
        Method::POST,
        "/api/v1/auth/login",
        &[(CONTENT_TYPE, "application/json")],
        body.into(),
    )
    .await?;
    if r.status != StatusCode::OK {
        bail!("sign-in failed: {} {}", r.status, String::from_utf8_lossy(&r.body));
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    Ok(v["token"]
        .as_str()
        .context("no token in the sign-in response")?
        .to_string())
}

/// What one load phase measured.
struct Phase {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50_us: u32,
    p99_us: u32,
    server_cpu: Duration,
    client_cpu: Duration,
}

impl Phase {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn server_us_per_req(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }

    fn client_us_per_req(&self) -> f64 {
        self.client_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

/// Which endpoint a phase hits.
#[derive(Clone, Copy)]
enum Target {
    Healthz,
    Region,
}

/// Runs `connections` loops, each on its own keep-alive connection, sending
/// requests back to back until `duration` is up.
async fn load(
    addr: SocketAddr,
    server_pid: u32,
    token: &str,
    codes: Rc<Vec<String>>,
    target: Target,
    connections: usize,
    duration: Duration,
) -> Result<Phase> {
    let bearer = Rc::new(format!("Bearer {token}"));
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(connect(addr).await?);
    }
    let (cpu0, self0) = (process_cpu(server_pid)?, self_cpu());
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let (bearer, codes) = (bearer.clone(), codes.clone());
            tokio::task::spawn_local(async move {
                let mut rng = SmallRng::seed_from_u64(i as u64);
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0;
                while Instant::now() < deadline {
                    let path = match target {
                        Target::Healthz => "/healthz".to_string(),
                        Target::Region => format!("/api/v1/regions/{}", codes[rng.random_range(0..codes.len())]),
                    };
                    let sent = Instant::now();
                    let r = fetch(
                        &mut conn,
                        addr,
                        Method::GET,
                        &path,
                        &[(AUTHORIZATION, &bearer)],
                        Bytes::new(),
                    )
                    .await?;
                    latencies.push(sent.elapsed().as_micros() as u32);
                    if r.status != StatusCode::OK {
                        errors += 1;
                    }
                }
                anyhow::Ok((latencies, errors))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    let (server_cpu, client_cpu) = (process_cpu(server_pid)? - cpu0, self_cpu() - self0);
    all.sort_unstable();
    Ok(Phase {
        requests: all.len(),
        errors,
        elapsed,
        p50_us: percentile(&all, 50.0),
        p99_us: percentile(&all, 99.0),
        server_cpu,
        client_cpu,
    })
}

fn row(name: &str, p: &Phase) {
    println!(
        "| {name} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} |",
        p.requests,
        p.errors,
        p.rps(),
        p.p50_us as f64 / 1000.0,
        p.p99_us as f64 / 1000.0,
        p.server_us_per_req(),
        p.client_us_per_req()
    );
}

/// Same-origin assets a page pulls in (stylesheets, scripts, images, icons):
/// they count towards what a visitor downloads.
fn assets(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (tag, attr) in [("<link", "href=\""), ("<script", "src=\""), ("<img", "src=\"")] {
        for (i, _) in html.match_indices(tag) {
            let Some(end) = html[i..].find('>') else { continue };
            let el = &html[i..i + end];
            if tag == "<link"
                && !["stylesheet", "icon", "preload", "modulepreload"]
                    .iter()
                    .any(|r| el.contains(r))
            {
                continue;
            }
            let Some(start) = el.find(attr) else { continue };
            let v = &el[start + attr.len()..];
            let v = &v[..v.find('"').unwrap_or(v.len())];
            if v.starts_with('/') && !v.starts_with("//") && !out.iter().any(|o| o == v) {
                out.push(v.to_string());
            }
        }
    }
    out
}

async fn page_weight(addr: SocketAddr, token: &str) -> Result<()> {
    let mut conn = connect(addr).await?;
    let cookie = format!("sx_session={token}");
    let plain = fetch(
        &mut conn,
        addr,
        Method::GET,
        "/regions/36",
        &[(COOKIE, &cookie)],
        Bytes::new(),
    )
    .await?;
    println!("\n#### Province page GET /regions/36\n");
    if plain.status != StatusCode::OK {
        println!(
            "not measured: the server answered {} (the page does not exist yet?)",
            plain.status
        );
        return Ok(());
    }
    let html = String::from_utf8_lossy(&plain.body).into_owned();
    let mut paths = vec!["/regions/36".to_string()];
    paths.extend(assets(&html));
    println!("| resource | type | identity bytes | gzip bytes | encoding sent |");
    println!("|---|---|---:|---:|---|");
    let (mut total_plain, mut total_gz) = (0, 0);
    for path in &paths {
        let plain = fetch(&mut conn, addr, Method::GET, path, &[(COOKIE, &cookie)], Bytes::new()).await?;
        let gz = fetch(
            &mut conn,
            addr,
            Method::GET,
            path,
            &[(COOKIE, &cookie), (ACCEPT_ENCODING, "gzip")],
            Bytes::new(),
        )
        .await?;
        if plain.status != StatusCode::OK {
            println!("| {path} | {} | | | |", plain.status);
            continue;
        }
        total_plain += plain.body.len();
        total_gz += gz.body.len();
        println!(
            "| {path} | {} | {} | {} | {} |",
            plain.content_type,
            plain.body.len(),
            gz.body.len(),
            if gz.encoding.is_empty() {
                "none"
            } else {
                gz.encoding.as_str()
            }
        );
    }
    println!("| **total** | | **{total_plain}** | **{total_gz}** | |");
    let mut times = Vec::new();
    for _ in 0..50 {
        let sent = Instant::now();
        fetch(
            &mut conn,
            addr,
            Method::GET,
            "/regions/36",
            &[(COOKIE, &cookie), (ACCEPT_ENCODING, "gzip")],
            Bytes::new(),
        )
        .await?;
        times.push(sent.elapsed().as_micros() as u32);
    }
    times.sort_unstable();
    println!(
        "\nserved with gzip in p50 {:.2} ms, p99 {:.2} ms over 50 sequential requests (response bodies only; headers not counted)",
        percentile(&times, 50.0) as f64 / 1000.0,
        percentile(&times, 99.0) as f64 / 1000.0
    );
    Ok(())
}

async fn bench(args: &Args, bin: &PathBuf, database: Option<&str>, codes: Rc<Vec<String>>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let password = format!("bench-{:016x}", rand::random::<u64>());
    let started = Instant::now();
    let server = Server::start(
        bin,
        dir.path().to_str().context("temp dir path is not UTF-8")?,
        database,
        args.cache_ttl,
        &password,
    )?;
    println!(
        "server up on {} in {:.1} s (first start: migrations + shipped Jiangxi)",
        server.addr,
        started.elapsed().as_secs_f64()
    );
    let token = login(server.addr, &password).await?;
    let pid = server.child.id();
    let (addr, n, d) = (server.addr, args.connections, Duration::from_secs(args.seconds));
    // Warm-up: connection setup, SQLite page cache, prepared statements.
    load(
        addr,
        pid,
        &token,
        codes.clone(),
        Target::Region,
        n,
        Duration::from_secs(2),
    )
    .await?;
    load(
        addr,
        pid,
        &token,
        codes.clone(),
        Target::Healthz,
        n,
        Duration::from_secs(1),
    )
    .await?;
    println!("\n| phase | requests | non-200 | req/s | p50 ms | p99 ms | server CPU µs/req | client CPU µs/req |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let (mut health_rps, mut region_rps) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let h = load(addr, pid, &token, codes.clone(), Target::Healthz, n, d).await?;
        row(&format!("round {round}: GET /healthz (baseline)"), &h);
        let r = load(addr, pid, &token, codes.clone(), Target::Region, n, d).await?;
        row(&format!("round {round}: GET /api/v1/regions/{{code}}"), &r);
        health_rps.push(h.rps());
        region_rps.push(r.rps());
    }
    let ratios: Vec<String> = health_rps
        .iter()
        .zip(&region_rps)
        .map(|(h, r)| format!("{:.1} %", 100.0 * r / h))
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let ratio = mean(&region_rps) / mean(&health_rps);
    println!(
        "\nratio regions / healthz: {:.1} % (mean {:.0} / {:.0} req/s; per round {}); target ≥ 50 %: {}",
        100.0 * ratio,
        mean(&region_rps),
        mean(&health_rps),
        ratios.join(", "),
        if ratio >= 0.5 { "met" } else { "MISSED" }
    );
    page_weight(addr, &token).await?;
    drop(server);
    let db = match database {
        Some(url) => Db::open(url).await?,
        None => Db::open_sqlite_dir(dir.path()).await?,
    };
    breakdown(&db, &token, &codes).await?;
    db.close().await;
    Ok(())
}

/// Callers per step in the breakdown, as many as the load's connections: one
/// caller at a time would measure thread wake-up latency of idle cores, not
/// the work, and the server never runs one request at a time either.
const CALLERS: usize = 32;

/// Runs `step` for `n` distinct inputs spread over [`CALLERS`] concurrent
/// callers, in five timed batches after an untimed one that warms the page
/// and statement caches; returns the median batch's calls per second and this
/// process's CPU time per call (the database driver's threads included). The
/// median keeps a burst of other work on a shared machine from skewing a step.
async fn per_call(n: usize, step: impl AsyncFn(usize) -> Result<()>) -> Result<(f64, f64)> {
    let batch = n / 6;
    let run = async |b: usize| {
        let callers = (0..CALLERS).map(|c| {
            let step = &step;
            async move {
                for i in (b * batch + c..(b + 1) * batch).step_by(CALLERS) {
                    step(i).await?;
                }
                anyhow::Ok(())
            }
        });
        // FuturesOrdered inside polls only the callers that were woken.
        try_join_all(callers).await.map(drop)
    };
    run(0).await?;
    let mut batches = Vec::with_capacity(5);
    for b in 1..6 {
        let (start, cpu0) = (Instant::now(), self_cpu());
        run(b).await?;
        let (wall, cpu) = (start.elapsed().as_secs_f64(), (self_cpu() - cpu0).as_secs_f64());
        batches.push((batch as f64 / wall, cpu * 1e6 / batch as f64));
    }
    batches.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(batches[2])
}

/// Where an uncached region request's server time goes: its steps timed one
/// by one in this process, on the database the server used (stopped by then,
/// so nothing competes).
async fn breakdown(db: &Db, token: &str, codes: &[String]) -> Result<()> {
    const N: usize = 30_000;
    let codes: Vec<RegionCode> = codes.iter().map(|c| RegionCode::parse(c)).collect::<Result<_, _>>()?;
    let code = |i: usize| &codes[i * 7919 % codes.len()];
    println!(
        "\n#### Per-request work without caches, in-process, {CALLERS} concurrent callers, median of 5 batches of {} calls\n",
        N / 6
    );
    println!("| step | queries | calls/s | CPU µs/call |");
    println!("|---|---:|---:|---:|");
    let steps: [(&str, usize, (f64, f64)); 4] = [
        (
            "one prepared `SELECT ?` with one bind: the driver's floor per query",
            1,
            per_call(N, async |i| {
                let q = Query::select().expr(Expr::val(i as i64)).to_owned();
                db.fetch_one::<(i64,)>(&q).await?;
                Ok(())
            })
            .await?,
        ),
        (
            "bearer token → session, user, grants (`auth::authenticate`)",
            3,
            per_call(N, async |_| {
                auth::authenticate(db, token).await?.context("the session expired")?;
                Ok(())
            })
            .await?,
        ),
        (
            "region by code (`regions::resolve`)",
            1,
            per_call(N, async |i| Ok(regions::resolve(db, code(i)).await.map(drop)?)).await?,
        ),
        (
            "ancestors' names (`regions::names`)",
            1,
            per_call(N, async |i| {
                Ok(regions::names(db, &code(i).ancestors()).await.map(drop)?)
            })
            .await?,
        ),
    ];
    // Not part of the request: the same row as `resolve` fetched with
    // `fetch_optional`, which returns at the first row instead of waiting for
    // the driver's end-of-results message.
    let (get_rate, get_cpu) = per_call(N, async |i| Ok(regions::get(db, code(i)).await.map(drop)?)).await?;
    for (name, queries, (rate, cpu)) in &steps {
        println!("| {name} | {queries} | {rate:.0} | {cpu:.1} |");
    }
    let cpu: f64 = steps[1..].iter().map(|(_, _, (_, c))| c).sum();
    println!("| **request total (without HTTP)** | 5 | | **{cpu:.1}** |");
    println!(
        "| for comparison, not in the request: region by exact code (`regions::get`, fetch_optional) | 1 | {get_rate:.0} | {get_cpu:.1} |"
    );
    if db.backend() == Backend::Postgres {
        println!("\n(CPU is this process only; the PostgreSQL server's own work per query is not counted)");
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bin = shuxiang_bin(args.bin.clone())?;
    // The codes the server loads on first start, all five levels.
    let records =
        parse_region_files(&jiangxi_files()).map_err(|e| anyhow::anyhow!("shipped Jiangxi files: {}", e[0]))?;
    let codes = Rc::new(records.iter().map(|r| r.code.to_string()).collect::<Vec<_>>());
    println!("{}", machine());
    println!(
        "binary: {}\nserver cache_ttl_seconds: {}\nload: {} keep-alive HTTP/1.1 connections, {} s per phase, {} rounds, {} Jiangxi codes drawn at random; \
         load generator on one thread, sharing the machine with the server",
        bin.display(),
        args.cache_ttl
            .map_or_else(|| "server default".to_string(), |t| t.to_string()),
        args.connections,
        args.seconds,
        args.rounds,
        codes.len()
    );
    // One thread: the generator never takes more than one core from the server.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        if matches!(args.backend, Which::Sqlite | Which::Both) {
            println!("\n### SQLite backend");
            bench(&args, &bin, None, codes.clone()).await?;
        }
        if matches!(args.backend, Which::Postgres | Which::Both) {
            println!("\n### PostgreSQL backend (server CPU below is shuxiang's only, not PostgreSQL's)");
            with_pg_scratch(&args.pg, async |db| {
                bench(&args, &bin, Some(&db.url), codes.clone()).await
            })
            .await?;
        }
        println!("\nat the end: {}", load_average());
        Ok(())
    })
}
