//! MQTT device gateway benchmark: N concurrent device connections publish
//! QoS 1 messages of 3 values each (`{"ts":…,"values":{…}}`), keeping
//! `--in-flight` messages unacknowledged per connection, for a fixed time;
//! messages/s counted from PUBACKs. Against the embedded gateway
//! (`shuxiang-mqtt`) in this process, which acks after the sink resolved:
//! - `memory`: the sink parses each payload and counts its values;
//! - `sqlite`: the sink parses each payload and commits its 3 points to a
//!   fresh SQLite database through the telemetry slice's group-commit
//!   `PointWriter` (no device lookup, no alarm evaluation).
//!
//! Then, as the baseline, the same clients against the Mosquitto on
//! 127.0.0.1:1883 (QoS 1 acked on receipt, nothing stored). It prints each
//! figure and its ratio to Mosquitto.
//!
//! The load generator is a minimal pipelined MQTT 3.1.1 client (hand-encoded
//! PUBLISH frames written in batches, 4-byte PUBACKs) so that it costs as
//! little CPU as possible: on a 2-core machine it shares the CPU with the system under
//! test in both runs, which lowers both figures alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use hyper::body::Bytes;
use shuxiang_bench::{load_average, machine, process_cpu, self_cpu};
use shuxiang_core::db::CORE_MIGRATIONS;
use shuxiang_core::{Backend, Db};
use shuxiang_mqtt::{AuthRejection, DeviceSink, PublishOutcome, SinkError};
use shuxiang_telemetry::store::{NewPoint, TELEMETRY_MIGRATIONS};
use shuxiang_telemetry::writer::{PointWriter, WriterConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(about = "MQTT QoS 1 messages/s through the embedded gateway vs Mosquitto")]
struct Args {
    /// Concurrent device connections.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Unacknowledged QoS 1 messages each connection keeps in flight.
    #[arg(long, default_value_t = 64)]
    in_flight: u16,
    /// Measured seconds per run (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Baseline broker; "none" skips the baseline.
    #[arg(long, default_value = "127.0.0.1:1883")]
    mosquitto: String,
    /// Sinks behind the gateway, comma-separated: memory, sqlite.
    #[arg(long, value_delimiter = ',', default_value = "memory,sqlite")]
    sinks: Vec<SinkKind>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SinkKind {
    Memory,
    Sqlite,
}

/// Parses each message as the telemetry sink would; with a writer, commits
/// its points before resolving.
struct BenchSink {
    values: AtomicU64,
    writer: Option<PointWriter>,
}

impl DeviceSink for BenchSink {
    async fn authenticate(&self, username: &str, password: &[u8]) -> Result<String, AuthRejection> {
        if password == b"bench-token" {
            Ok(username.to_owned())
        } else {
            Err(AuthRejection::BadCredentials)
        }
    }

    async fn accept_device(&self, _device_id: &str) -> Result<(), AuthRejection> {
        Ok(())
    }

    async fn publish(
        &self,
        device_id: &str,
        payload: Bytes,
        _received_at_ms: i64,
    ) -> Result<PublishOutcome, SinkError> {
        let rejected = |why: &str| SinkError::PayloadRejected(why.to_owned());
        let mut message: serde_json::Value = serde_json::from_slice(&payload).map_err(|e| rejected(&e.to_string()))?;
        let ts = message["ts"].as_i64().ok_or_else(|| rejected("no ts"))?;
        let serde_json::Value::Object(values) = message["values"].take() else {
            return Err(rejected("no values"));
        };
        let n = values.len();
        if let Some(writer) = &self.writer {
            let device: i64 = device_id.trim_start_matches("bench-").parse().unwrap_or(0);
            let points = values
                .into_iter()
                .map(|(metric, value)| NewPoint {
                    device_id: device,
                    metric,
                    ts_ms: ts,
                    value: value.as_f64().unwrap_or(0.0),
                })
                .collect();
            writer
                .write(points)
                .await
                .map_err(|e| SinkError::Unavailable(e.to_string()))?;
        }
        self.values.fetch_add(n as u64, Ordering::Relaxed);
        Ok(PublishOutcome {
            accepted: n,
            rejected: 0,
        })
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!("{}", machine());
    println!(
        "MQTT 3.1.1 QoS 1, {} connections × {} in flight, payload of 3 values, {} s per run",
        args.connections, args.in_flight, args.seconds
    );

    let mut figures = Vec::new();
    for kind in args.sinks.clone() {
        let dir = tempfile::tempdir()?;
        let (writer, db) = match kind {
            SinkKind::Memory => (None, None),
            SinkKind::Sqlite => {
                let db = Db::open_sqlite_dir(dir.path()).await?;
                db.migrate(&[&CORE_MIGRATIONS, &TELEMETRY_MIGRATIONS]).await?;
                (
                    Some(PointWriter::spawn(
                        db.clone(),
                        WriterConfig::for_backend(Backend::Sqlite),
                    )),
                    Some(db),
                )
            }
        };
        let sink = Arc::new(BenchSink {
            values: AtomicU64::new(0),
            writer,
        });
        let (rate, cpu) = run_gateway(&args, sink.clone()).await?;
        let label = match kind {
            SinkKind::Memory => "gateway + in-memory sink",
            SinkKind::Sqlite => "gateway + SQLite group commit",
        };
        println!(
            "{label:<32} {rate:>9.0} msg/s  ({} values accepted, process CPU {:.1} s incl. load generator)",
            sink.values.load(Ordering::Relaxed),
            cpu.as_secs_f64()
        );
        drop(sink);
        if let Some(db) = db {
            db.close().await;
        }
        figures.push((label, rate));
    }

    if args.mosquitto != "none" {
        let broker: SocketAddr = args.mosquitto.parse().context("--mosquitto must be HOST:PORT")?;
        let pid = mosquitto_pid();
        let broker_cpu_before = pid.and_then(|p| process_cpu(p).ok());
        let cpu_before = self_cpu();
        let baseline = drive(broker, &args)
            .await
            .context("Mosquitto run (is it running on --mosquitto?)")?;
        let load_cpu = self_cpu() - cpu_before;
        let broker_cpu = match (pid, broker_cpu_before) {
            (Some(p), Some(before)) => process_cpu(p).ok().map(|after| after - before),
            _ => None,
        };
        println!(
            "{:<32} {:>9.0} msg/s  (load generator CPU {:.1} s, broker CPU {})",
            "Mosquitto, acks on receipt",
            baseline,
            load_cpu.as_secs_f64(),
            broker_cpu.map_or("unknown".into(), |c| format!("{:.1} s", c.as_secs_f64()))
        );
        for (label, rate) in figures {
            println!("ratio {label} / Mosquitto: {:.2}", rate / baseline);
        }
    }
    println!("{}", load_average());
    Ok(())
}

/// Serves the gateway with `sink` in this process and drives it; returns
/// messages/s and the process CPU time the run took.
async fn run_gateway(args: &Args, sink: Arc<BenchSink>) -> Result<(f64, Duration)> {
    let limits = shuxiang_mqtt::Limits {
        max_in_flight: args.in_flight.max(1),
        max_connections: args.connections + 16,
        ..shuxiang_mqtt::Limits::default()
    };
    let listener = shuxiang_mqtt::bind("127.0.0.1:0".parse()?).await?.with_limits(limits);
    let addr = listener.local_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(shuxiang_mqtt::serve(listener, sink, async {
        let _ = stop_rx.await;
    }));
    let cpu_before = self_cpu();
    let rate = drive(addr, args).await.context("gateway run")?;
    let cpu = self_cpu() - cpu_before;
    let _ = stop_tx.send(());
    server.await??;
    Ok((rate, cpu))
}

/// Runs all connections against `addr`; returns acknowledged messages/s in
/// the measured window.
async fn drive(addr: SocketAddr, args: &Args) -> Result<f64> {
    let acked = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    for i in 0..args.connections {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        clients.push(tokio::spawn(device(
            stream,
            i,
            args.in_flight.max(1),
            acked.clone(),
            running.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start_count = acked.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let count = acked.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed();
    running.store(false, Ordering::Relaxed);
    for client in clients {
        client.await??;
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// One device: CONNECT, then keep `in_flight` QoS 1 PUBLISHes outstanding.
async fn device(
    mut stream: TcpStream,
    index: usize,
    in_flight: u16,
    acked: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
) -> Result<()> {
    stream.set_nodelay(true)?;
    let device_id = format!("bench-{index}");
    stream.write_all(&connect_frame(&device_id, "bench-token")).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    while have < 4 {
        let n = stream.read(&mut buf[have..]).await?;
        if n == 0 {
            bail!("connection closed before CONNACK");
        }
        have += n;
    }
    if buf[..4] != [0x20, 0x02, 0x00, 0x00] {
        bail!("CONNACK refused: {:?}", &buf[..4]);
    }
    have -= 4;
    buf.copy_within(4..4 + have, 0);
    let topic = format!("devices/{device_id}/telemetry");
    let mut next_id: u16 = 1;
    let mut outstanding = 0u32;
    let mut out = Vec::with_capacity(usize::from(in_flight) * 96);
    let mut seq = 0u64;
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        - 86_400_000;
    loop {
        let more = running.load(Ordering::Relaxed);
        if more {
            while outstanding < u32::from(in_flight) {
                seq += 1;
                // One reading a second per device, from a day ago on.
                let ts = start_ms + seq as i64 * 1000;
                let payload = format!(
                    r#"{{"ts":{ts},"values":{{"temperature":{:.1},"humidity":{:.1},"vwc":{:.1}}}}}"#,
                    20.0 + (seq % 50) as f64 / 10.0,
                    60.5,
                    31.2
                );
                publish_frame(&mut out, &topic, next_id, payload.as_bytes());
                next_id = if next_id == u16::MAX { 1 } else { next_id + 1 };
                outstanding += 1;
            }
            stream.write_all(&out).await?;
            out.clear();
        } else if outstanding == 0 {
            stream.write_all(&[0xE0, 0x00]).await?;
            return Ok(());
        }
        let n = stream.read(&mut buf[have..]).await?;
        if n == 0 {
            bail!("connection closed with {outstanding} messages unacknowledged");
        }
        have += n;
        // PUBACKs of v3.1.1 are 4 bytes: 0x40 0x02 id id.
        let whole = have / 4 * 4;
        if buf[..whole].chunks(4).any(|ack| ack[0] != 0x40) {
            bail!("unexpected packet from the server: {:?}", &buf[..whole.min(16)]);
        }
        let acks = (whole / 4) as u32;
        outstanding -= acks;
        acked.fetch_add(u64::from(acks), Ordering::Relaxed);
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
}

fn connect_frame(user: &str, password: &str) -> Vec<u8> {
    let mut body = Vec::new();
    push_str(&mut body, b"MQTT");
    body.push(4); // protocol level 3.1.1
    body.push(0b1100_0010); // username, password, clean session
    body.extend_from_slice(&60u16.to_be_bytes());
    push_str(&mut body, user.as_bytes()); // client id
    push_str(&mut body, user.as_bytes());
    push_str(&mut body, password.as_bytes());
    let mut frame = vec![0x10];
    push_len(&mut frame, body.len());
    frame.extend(body);
    frame
}

fn publish_frame(out: &mut Vec<u8>, topic: &str, packet_id: u16, payload: &[u8]) {
    out.push(0x32); // PUBLISH, QoS 1
    push_len(out, 2 + topic.len() + 2 + payload.len());
    push_str(out, topic.as_bytes());
    out.extend_from_slice(&packet_id.to_be_bytes());
    out.extend_from_slice(payload);
}

fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn push_len(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            return;
        }
    }
}

/// Mosquitto's pid, to report the broker's CPU time beside our own.
fn mosquitto_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (comm.trim() == "mosquitto").then_some(pid)
    })
}
