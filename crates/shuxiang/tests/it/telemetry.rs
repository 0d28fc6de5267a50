//! Telemetry through the real binary: devices publishing over MQTT (QoS 1)
//! and HTTP, and the promise behind every acknowledgement — the server is
//! killed with SIGKILL in the middle of the stream, restarted, and every
//! point it had acknowledged is still there.

use std::collections::HashMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{Value, json};

use super::{BIN, login, serve};

const ADMIN_PASSWORD: &str = "admin password 1";
const VILLAGE: &str = "360102002001";
/// Messages published without waiting; the server dies part-way through.
const MESSAGES: usize = 3000;
/// Acknowledgements to wait for before killing the server.
const KILL_AFTER_ACKS: usize = 400;

async fn admin(base: &str) -> String {
    let v: Value = login(base, "admin", ADMIN_PASSWORD).await.json().await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// The timestamps (ms) of a device's stored `vwc` points in the window.
async fn stored_times(base: &str, token: &str, device: i64, from_ms: i64, to_ms: i64) -> Vec<i64> {
    let rfc = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339();
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/devices/{device}/series"))
        .query(&[
            ("metric", "vwc"),
            ("from", &rfc(from_ms)),
            ("to", &rfc(to_ms)),
            ("limit", "100000"),
        ])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            chrono::DateTime::parse_from_rfc3339(p["ts"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_points_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), Some(ADMIN_PASSWORD));
    let token = admin(&server.base).await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/api/v1/devices", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "东湖墒情站", "type": "soil_moisture", "village": VILLAGE, "location": {"lon": 115.9, "lat": 28.68}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device = created["id"].as_i64().unwrap();
    let device_token = created["token"].as_str().unwrap().to_string();
    let base_ms = chrono::Utc::now().timestamp_millis() - 3_600_000;

    // HTTP: a batch, acknowledged with 200 only after commit.
    let batch: Vec<Value> = (0..100)
        .map(|i| json!({"ts": base_ms - 200_000 + i * 1000, "values": {"vwc": 30.0}}))
        .collect();
    let r = http
        .post(format!("{}/api/v1/telemetry", server.base))
        .bearer_auth(&device_token)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["accepted"], 100, "{report}");

    // MQTT: a wrong token is refused before anything is published.
    let (host, port) = server.mqtt.rsplit_once(':').unwrap();
    let port: u16 = port.parse().unwrap();
    let mut bad = MqttOptions::new("intruder", host, port);
    bad.set_credentials(device.to_string(), "not the token");
    let (_c, mut bad_loop) = AsyncClient::new(bad, 10);
    let refused = tokio::time::timeout(Duration::from_secs(10), bad_loop.poll())
        .await
        .unwrap();
    assert!(refused.is_err(), "a wrong token must not connect: {refused:?}");

    let mut options = MqttOptions::new("probe-1", host, port);
    options.set_credentials(device.to_string(), device_token.clone());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(200);
    let (client, mut events) = AsyncClient::new(options, MESSAGES + 10);
    let topic = format!("devices/{device}/telemetry");
    for i in 0..MESSAGES as i64 {
        let payload =
            json!({"ts": base_ms + i * 1000, "values": {"vwc": (i % 100) as f64 / 2.0, "soil_temperature": 18.5}});
        client
            .publish(&topic, QoS::AtLeastOnce, false, payload.to_string())
            .await
            .unwrap();
    }
    // Packet ids are handed out in publish order and reused only once acknowledged.
    let mut next = 0i64;
    let mut in_flight: HashMap<u16, i64> = HashMap::new();
    let mut acked: Vec<i64> = Vec::new();
    while acked.len() < KILL_AFTER_ACKS {
        match tokio::time::timeout(Duration::from_secs(30), events.poll())
            .await
            .expect("the server answers")
        {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                in_flight.insert(pkid, base_ms + next * 1000);
                next += 1;
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                acked.push(in_flight.remove(&ack.pkid).expect("an ack for a message sent"));
            }
            Ok(_) => {}
            Err(e) => panic!("connection failed before the kill: {e}"),
        }
    }
    // SIGKILL: no shutdown, no flush.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // Acknowledgements already on the wire count too.
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), events.poll()).await {
        if let Event::Incoming(Packet::PubAck(ack)) = event {
            if let Some(ts) = in_flight.remove(&ack.pkid) {
                acked.push(ts);
            }
        }
    }
    assert!(acked.len() < MESSAGES, "the server died part-way, not after everything");

    let server = serve(dir.path(), Some(ADMIN_PASSWORD));
    let token = admin(&server.base).await;
    let stored = stored_times(
        &server.base,
        &token,
        device,
        base_ms - 300_000,
        base_ms + MESSAGES as i64 * 1000,
    )
    .await;
    let stored: std::collections::HashSet<i64> = stored.into_iter().collect();
    let lost: Vec<&i64> = acked.iter().filter(|ts| !stored.contains(ts)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged points lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    for i in 0..100 {
        assert!(stored.contains(&(base_ms - 200_000 + i * 1000)), "HTTP point {i} lost");
    }
    eprintln!(
        "{} acknowledged before SIGKILL, {} stored after restart, none lost",
        acked.len(),
        stored.len()
    );
}

#[test]
fn a_taken_mqtt_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--mqtt", &addr, "--data-dir"])
        .arg(dir.path())
        .env("SHUXIANG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen for MQTT on {addr}")), "{err}");
    assert!(err.contains("--mqtt"), "{err}");
}
