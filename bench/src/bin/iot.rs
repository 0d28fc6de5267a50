//! IoT end to end through the release `shuxiang serve` on a fresh SQLite data
//! directory (or, with `--backend postgres`, a scratch PostgreSQL database):
//!
//! 1. HTTP batch ingest: N connections each post batches of `--batch`
//!    points (`POST /api/v1/telemetry`, acknowledged after commit) for a
//!    fixed time; points/s. Baseline in the same run: the raw engine limit,
//!    multi-row `INSERT`s of the same number of points per transaction into
//!    a plain `(device, metric, ts, value)` table of a separate database of
//!    the same engine, with the same durability. Prints the ratio.
//! 2. MQTT QoS 1 through the whole device path (authentication, payload
//!    validation, group commit, alarm evaluation, PUBACK after commit):
//!    `--mqtt-clients` weather stations each keep `--in-flight` messages of
//!    3 values outstanding; messages/s acknowledged. Baseline in the same
//!    run: the same clients against Mosquitto on `--broker`, which
//!    acknowledges on receipt. Prints the ratio.
//! 3. Alarm latency: a device publishes over MQTT QoS 1 a value crossing a
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
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
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
    /// MQTT client connections (one device each).
    #[arg(long, default_value_t = 100)]
    mqtt_clients: usize,
    /// QoS 1 messages each client keeps unacknowledged.
    #[arg(long, default_value_t = 64)]
    in_flight: u16,
    /// The external broker of the baseline.
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
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
/// The request bodies are serialised before the clock starts, so the
/// client's JSON work does not take the cores from the server.
async fn http_ingest(srv: &Server, admin: &str, args: &Args) -> Result<f64> {
    /// Requests per connection and second prepared: more than a connection
    /// can send.
    const BODIES_PER_SECOND: u64 = 30;
    let http = reqwest::Client::new();
    // Far enough back that every prepared body lies in the past: a point
    // past the accepted window would be refused, costing the server a
    // rejection message instead of a stored point (the first version of
    // this benchmark started 6 days back and so capped itself near 415k
    // points/s).
    let start_ms = chrono::Utc::now().timestamp_millis() - 60 * 86_400_000;
    let mut prepared = Vec::new();
    for c in 0..args.connections {
        let (id, token) = device(&http, &srv.base, admin, &format!("bench-http-{c}")).await?;
        let mut n = 0i64;
        let bodies: Vec<Vec<u8>> = (0..args.seconds * BODIES_PER_SECOND)
            .map(|_| {
                // Each message a distinct second, two metrics per message.
                let body: Vec<Value> = (0..args.batch / 2)
                    .map(|_| {
                        n += 1;
                        json!({"ts": start_ms + n * 1000, "values": {"vwc": 20.0 + (n % 50) as f64 / 10.0, "soil_temperature": 18.0}})
                    })
                    .collect();
                serde_json::to_vec(&body).expect("JSON serialises")
            })
            .collect();
        prepared.push((id, token, bodies));
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    let ids: Vec<i64> = prepared.iter().map(|p| p.0).collect();
    for (_, token, bodies) in prepared {
        let (http, url) = (http.clone(), format!("{}/api/v1/telemetry", srv.base));
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            for body in bodies {
                if Instant::now() >= deadline {
                    break;
                }
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("{}: {}", r.status(), r.text().await?);
                }
                let v: Value = r.json().await?;
                if v["rejected"].as_array().is_some_and(|r| !r.is_empty()) {
                    bail!("the server refused points: {}", v["rejected"][0]);
                }
                sent += v["accepted"].as_u64().unwrap_or(0);
            }
            anyhow::Ok(sent)
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.push(t.await??);
    }
    let rate = accepted.iter().sum::<u64>() as f64 / t0.elapsed().as_secs_f64();
    // Every acknowledged point must be readable: daily roll-ups of one of
    // the two metrics count half of each device's points.
    let (from, to) = (
        chrono::DateTime::from_timestamp_millis(start_ms).context("start")?,
        chrono::Utc::now() + chrono::Duration::days(1),
    );
    for (id, sent) in ids.iter().zip(&accepted) {
        let v: Value = http
            .get(format!("{}/api/v1/devices/{id}/series", srv.base))
            .bearer_auth(admin)
            .query(&[
                ("metric", "vwc".to_string()),
                ("from", from.to_rfc3339()),
                ("to", to.to_rfc3339()),
                ("step", "1d".to_string()),
            ])
            .send()
            .await?
            .json()
            .await?;
        let stored: u64 = v["points"]
            .as_array()
            .context("series points")?
            .iter()
            .filter_map(|p| p["count"].as_u64())
            .sum();
        if stored * 2 != *sent {
            bail!("device {id}: {sent} points acknowledged but {} stored", stored * 2);
        }
    }
    Ok(rate)
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

/// One MQTT client: its id, credentials and topic.
struct Publisher {
    client_id: String,
    credentials: Option<(String, String)>,
    topic: String,
}

/// QoS 1 messages/s acknowledged by the broker at `host:port` from
/// `publishers`, each keeping `in_flight` messages outstanding.
async fn mqtt_rate(host: &str, port: u16, publishers: Vec<Publisher>, seconds: u64, in_flight: u16) -> Result<f64> {
    let start_ms = chrono::Utc::now().timestamp_millis() - 300 * 86_400_000;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for p in publishers {
        let mut options = MqttOptions::new(p.client_id, host, port);
        if let Some((user, password)) = p.credentials {
            options.set_credentials(user, password);
        }
        options.set_inflight(in_flight).set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(options, usize::from(in_flight) * 2);
        let topic = p.topic;
        tasks.push(tokio::spawn(async move {
            let publisher = tokio::spawn(async move {
                let mut n = 0i64;
                while Instant::now() < deadline {
                    n += 1;
                    let payload = json!({"ts": start_ms + n * 1000,
                        "values": {"air_temperature": 21.5, "humidity": 60.0 + (n % 10) as f64, "wind_speed": 2.5}});
                    if client
                        .publish(&topic, QoS::AtLeastOnce, false, payload.to_string())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
            let mut acks = 0u64;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match tokio::time::timeout(left, events.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acks += 1,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => bail!("MQTT connection failed: {e}"),
                    Err(_) => break,
                }
            }
            publisher.abort();
            anyhow::Ok(acks)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / seconds as f64)
}

/// Messages/s through Shuxiang's gateway and through the baseline broker.
async fn mqtt_throughput(srv: &Server, admin: &str, args: &Args) -> Result<(f64, f64)> {
    let http = reqwest::Client::new();
    post(
        &http,
        format!("{}/api/v1/alarm-rules", srv.base),
        admin,
        json!({"name": "bench heat", "region": "36", "device_type": "weather", "severity": "minor",
               "condition": {"kind": "threshold", "metric": "air_temperature", "direction": "above", "limit": 40.0, "hysteresis": 1.0}}),
    )
    .await?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for c in 0..args.mqtt_clients {
        let v = post(
            &http,
            format!("{}/api/v1/devices", srv.base),
            admin,
            json!({"name": format!("bench-mqtt-{c}"), "type": "weather", "village": VILLAGE, "location": {"lon": 115.9, "lat": 28.68}}),
        )
        .await?;
        let id = v["id"].as_i64().context("id")?.to_string();
        let topic = format!("devices/{id}/telemetry");
        theirs.push(Publisher {
            client_id: format!("bench-baseline-{c}"),
            credentials: None,
            topic: topic.clone(),
        });
        ours.push(Publisher {
            client_id: format!("bench-{c}"),
            credentials: Some((id, v["token"].as_str().context("token")?.to_owned())),
            topic,
        });
    }
    let first = ours
        .first()
        .and_then(|p| p.credentials.as_ref())
        .map(|(id, _)| id.clone());
    let shuxiang = mqtt_rate(&srv.mqtt.0, srv.mqtt.1, ours, args.seconds, args.in_flight).await?;
    // An acknowledgement also answers a refused message: check that the
    // points were stored, not refused.
    if let Some(id) = first {
        let device: Value = http
            .get(format!("{}/api/v1/devices/{id}", srv.base))
            .bearer_auth(admin)
            .send()
            .await?
            .json()
            .await?;
        let stored = device["latest"].as_array().map_or(0, Vec::len);
        if stored != 3 || device["rejections"].as_array().is_some_and(|r| !r.is_empty()) {
            bail!("the benchmark's messages were not stored as sent: {device}");
        }
    }
    let (host, port) = args.broker.rsplit_once(':').context("--broker is host:port")?;
    let broker = mqtt_rate(host, port.parse()?, theirs, args.seconds, args.in_flight).await?;
    Ok((shuxiang, broker))
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
    let (mqtt, broker) = mqtt_throughput(&srv, &admin, args).await?;
    println!(
        "MQTT QoS 1, 3 values/message, {} clients × {} in flight: Shuxiang (auth, validation, commit, alarms, ack after commit) {mqtt:.0} msg/s; Mosquitto at {} (ack on receipt) {broker:.0} msg/s; ratio {:.1} %",
        args.mqtt_clients,
        args.in_flight,
        args.broker,
        100.0 * mqtt / broker
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
