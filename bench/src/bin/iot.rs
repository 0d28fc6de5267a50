//! IoT end to end through the release `shuxiang serve` on a fresh SQLite data
//! directory (or, with `--backend postgres`, a scratch PostgreSQL database):
//!
//! 1. HTTP batch ingest: N connections each post batches of `--batch`
//!    points (`POST /api/v1/telemetry`, acknowledged after commit) for a
//!    fixed time; points/s. Baseline in the same run: the raw engine limit,
//!    multi-row `INSERT`s of the same number of points per transaction into
//!    a plain `(device, metric, ts, value)` table of a separate database of
//!    the same engine, with the same durability. Prints the ratio.
//! 2. Alarm latency: a device publishes over MQTT QoS 1 a value crossing a
//!    threshold rule, and the time until the alarm is visible through
//!    `GET /api/v1/alarms` (polled every millisecond) is recorded; the value
//!    then drops back to clear it. p50/p99 over `--alarms` crossings.
//!
//! The load generator shares the 2 cores with the server, which depresses
//! the HTTP figure against the in-process baseline; the ratio is therefore a
//! lower bound of the server's own efficiency.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};
use shuxiang_bench::{DEFAULT_PG, machine, percentile, shuxiang_bin, with_pg_scratch};
use shuxiang_core::Db;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Sqlite,
    Postgres,
}

#[derive(Parser)]
#[command(about = "HTTP telemetry ingest against the raw engine, and alarm latency from an MQTT publish")]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Which,
    #[arg(long, default_value = DEFAULT_PG)]
    pg: String,
    /// Concurrent HTTP connections (one device each).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Points per HTTP request.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Seconds of each throughput phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Threshold crossings for the alarm latency.
    #[arg(long, default_value_t = 200)]
    alarms: usize,
    /// The release binary (default: target/release/shuxiang).
    #[arg(long)]
    bin: Option<PathBuf>,
}

const PASSWORD: &str = "bench admin password";
const VILLAGE: &str = "360102002001";

struct Server {
    child: Child,
    base: String,
    mqtt: (String, u16),
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &PathBuf, data_dir: &std::path::Path, database: Option<&str>) -> Result<Server> {
    let mut cmd = Command::new(bin);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--mqtt",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(data_dir);
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    let log = std::fs::File::create(data_dir.join("serve.log"))?;
    let mut child = cmd
        .env("SHUXIANG_ADMIN_PASSWORD", PASSWORD)
        .env("SHUXIANG_TELEMETRY_MAINTENANCE_INTERVAL_SECONDS", "0")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting shuxiang serve")?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut mqtt = None;
    let base = loop {
        let Some(line) = lines.next().transpose()? else {
            bail!(
                "shuxiang serve exited before listening; see {}/serve.log",
                data_dir.display()
            );
        };
        if let Some(rest) = line.strip_prefix("MQTT devices: mqtt://") {
            let (host, port) = rest.trim().rsplit_once(':').context("MQTT address")?;
            mqtt = Some((host.to_owned(), port.parse()?));
        }
        if let Some(rest) = line.strip_prefix("Shuxiang listening on ") {
            break rest.split_whitespace().next().unwrap_or_default().to_owned();
        }
    };
    Ok(Server {
        child,
        base,
        mqtt: mqtt.context("the server printed no MQTT address")?,
    })
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Result<Value> {
    let r = http.post(url).bearer_auth(token).json(&body).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("{status}: {v}");
    }
    Ok(v)
}

/// (id, token) of a new soil-moisture device.
async fn device(http: &reqwest::Client, base: &str, admin: &str, name: &str) -> Result<(i64, String)> {
    let v = post(
        http,
        format!("{base}/api/v1/devices"),
        admin,
        json!({"name": name, "type": "soil_moisture", "village": VILLAGE, "location": {"lon": 115.9, "lat": 28.68}}),
    )
    .await?;
    Ok((
        v["id"].as_i64().context("id")?,
        v["token"].as_str().context("token")?.to_owned(),
    ))
}

/// Points/s of HTTP batches over `seconds`, from `connections` devices.
async fn http_ingest(srv: &Server, admin: &str, args: &Args) -> Result<f64> {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    let start_ms = chrono::Utc::now().timestamp_millis() - 6 * 86_400_000;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    for c in 0..args.connections {
        let (_, token) = device(&http, &srv.base, admin, &format!("bench-http-{c}")).await?;
        let (http, url, batch) = (http.clone(), format!("{}/api/v1/telemetry", srv.base), args.batch);
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut n = 0i64;
            while Instant::now() < deadline {
                // Each point a distinct second, two metrics per message.
                let body: Vec<Value> = (0..batch / 2)
                    .map(|_| {
                        n += 1;
                        json!({"ts": start_ms + n * 1000, "values": {"vwc": 20.0 + (n % 50) as f64 / 10.0, "soil_temperature": 18.0}})
                    })
                    .collect();
                let r = post(&http, url.clone(), &token, Value::Array(body)).await?;
                sent += r["accepted"].as_u64().unwrap_or(0);
            }
            anyhow::Ok(sent)
        }));
    }
    let t0 = Instant::now();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / t0.elapsed().as_secs_f64())
}

/// The raw engine: the same points as plain rows in multi-row INSERTs, one
/// transaction per batch, on a database of its own.
async fn raw_engine(db: &Db, args: &Args) -> Result<f64> {
    db.execute_raw(
        "CREATE TABLE raw_points (device_id BIGINT NOT NULL, metric_id INTEGER NOT NULL, ts BIGINT NOT NULL, \
         value DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, metric_id, ts))",
    )
    .await?;
    let rows_per_statement = 1000;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let t0 = Instant::now();
    let mut n = 0i64;
    while Instant::now() < deadline {
        let mut tx = db.begin().await?;
        for _ in 0..args.batch / rows_per_statement {
            let mut sql = String::from("INSERT INTO raw_points VALUES ");
            for i in 0..rows_per_statement {
                n += 1;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("(1,{},{},{})", n % 2, n / 2, 20.0 + (n % 50) as f64 / 10.0));
            }
            tx.execute_raw(&sql).await?;
        }
        tx.commit().await?;
    }
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

/// Milliseconds from an MQTT publish crossing the threshold to the alarm
/// being listed, for each crossing.
async fn alarm_latency(srv: &Server, admin: &str, args: &Args) -> Result<Vec<u32>> {
    let http = reqwest::Client::new();
    let (id, token) = device(&http, &srv.base, admin, "bench-alarm").await?;
    post(
        &http,
        format!("{}/api/v1/alarm-rules", srv.base),
        admin,
        json!({"name": "bench", "region": "36", "device_id": id, "severity": "major",
               "condition": {"kind": "threshold", "metric": "vwc", "direction": "above", "limit": 50.0, "hysteresis": 5.0}}),
    )
    .await?;
    let mut options = MqttOptions::new("bench-alarm", srv.mqtt.0.clone(), srv.mqtt.1);
    options.set_credentials(id.to_string(), token);
    let (client, mut events) = AsyncClient::new(options, 100);
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let topic = format!("devices/{id}/telemetry");
    let active = |http: reqwest::Client, base: String, admin: String| async move {
        let v: Value = http
            .get(format!("{base}/api/v1/alarms"))
            .query(&[("status", "active"), ("device", &id.to_string())])
            .bearer_auth(admin)
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(v["alarms"].as_array().map_or(0, Vec::len))
    };
    let mut latencies = Vec::with_capacity(args.alarms);
    for _ in 0..args.alarms {
        for (value, want) in [(60.0, 1), (30.0, 0)] {
            let t0 = Instant::now();
            client
                .publish(&topic, QoS::AtLeastOnce, false, json!({"vwc": value}).to_string())
                .await?;
            loop {
                if active(http.clone(), srv.base.clone(), admin.to_owned()).await? == want {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(10) {
                    bail!("no alarm change within 10 s");
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if want == 1 {
                latencies.push(t0.elapsed().as_micros() as u32);
            }
        }
    }
    latencies.sort_unstable();
    Ok(latencies)
}

async fn run(args: &Args, database: Option<&str>) -> Result<()> {
    let bin = shuxiang_bin(args.bin.clone())?;
    let dir = tempfile::tempdir()?;
    let srv = start(&bin, dir.path(), database)?;
    let login: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", srv.base))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let admin = login["token"].as_str().context("admin token")?.to_owned();

    let http = http_ingest(&srv, &admin, args).await?;
    let raw_dir = tempfile::tempdir()?;
    let raw_db = match database {
        None => Db::open_sqlite_file(&raw_dir.path().join("raw.db")).await?,
        Some(url) => Db::open_postgres(url, None).await?,
    };
    let raw = raw_engine(&raw_db, args).await?;
    println!(
        "HTTP batch ingest ({} conn × {} points/request): {http:.0} points/s; raw engine batched insert: {raw:.0} points/s; ratio {:.1} %",
        args.connections,
        args.batch,
        100.0 * http / raw
    );
    let lat = alarm_latency(&srv, &admin, args).await?;
    println!(
        "alarm latency, MQTT publish → alarm listed ({} crossings): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        f64::from(percentile(&lat, 50.0)) / 1000.0,
        f64::from(percentile(&lat, 99.0)) / 1000.0,
        f64::from(*lat.last().unwrap_or(&0)) / 1000.0
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!("machine: {}", machine());
    match args.backend {
        Which::Sqlite => run(&args, None).await,
        Which::Postgres => with_pg_scratch(&args.pg, async |pg| run(&args, Some(&pg.url)).await).await,
    }
}
