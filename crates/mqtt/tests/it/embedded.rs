//! The embedded endpoint with real clients (rumqttc, v3.1.1 and v5) and raw
//! bytes where the exact code on the wire matters.

use std::sync::Arc;
use std::time::Duration;

use shuxiang_mqtt::{Limits, SinkError};
use tokio::sync::oneshot;

use crate::support::*;

const TOPIC: &str = "devices/d1/telemetry";

#[tokio::test]
async fn wrong_or_missing_credentials_are_refused_with_the_versions_code() {
    let gw = Gateway::start().await;
    // (version, user, password) → CONNACK return/reason code.
    let cases = [
        (Proto::V3, "d1", "wrong", 4),
        (Proto::V3, "nobody", "t1", 4),
        (Proto::V3, "", "", 4),
        (Proto::V3, "d3", "t3", 5),
        (Proto::V5, "d1", "wrong", 0x86),
        (Proto::V5, "", "", 0x86),
        (Proto::V5, "d3", "t3", 0x87),
        (Proto::V3, "d1", "t1", 0),
        (Proto::V5, "d1", "t1", 0),
    ];
    for (proto, user, password, code) in cases {
        let mut raw = Raw::open(gw.addr).await;
        raw.send(&connect_bytes(proto, user, password, 30)).await;
        let connack = raw.packet().await.expect("a CONNACK");
        assert_eq!(
            (connack[0], connack[3]),
            (0x20, code),
            "{proto:?} {user}/{password}: {connack:?}"
        );
        if code != 0 {
            assert!(raw.assert_closed().await.is_empty(), "refused connection closed");
        }
    }
    assert_eq!(gw.sink.calls(), 0);
}

#[tokio::test]
async fn real_clients_see_the_refusal() {
    let gw = Gateway::start().await;
    for proto in [Proto::V3, Proto::V5] {
        let mut device = Device::connect(proto, gw.addr, "d1", "bad", ONE_SHOT).await;
        let Seen::Ended(why) = device.next().await else {
            panic!("{proto:?} bad password accepted")
        };
        assert!(why.contains("BadUserNamePassword"), "{proto:?}: {why}");
    }
}

#[tokio::test]
async fn unsupported_protocol_level_gets_return_code_1() {
    let gw = Gateway::start().await;
    let mut raw = Raw::open(gw.addr).await;
    // MQTT 3.1: protocol name "MQIsdp", level 3.
    let mut connect = vec![
        0x10, 0, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 30, 0, 1, b'x',
    ];
    connect[1] = (connect.len() - 2) as u8;
    raw.send(&connect).await;
    assert_eq!(raw.packet().await, Some(vec![0x20, 0x02, 0x00, 0x01]));
    assert!(raw.assert_closed().await.is_empty());
}

#[tokio::test]
async fn qos1_is_acknowledged_only_after_the_sink_committed() {
    for proto in [Proto::V3, Proto::V5] {
        let gw = Gateway::start().await;
        let mut starts = gw.sink.watch_starts();
        let (release, gate) = oneshot::channel();
        gw.sink.plan(Plan::Gate(gate));
        let mut device = Device::connected(proto, gw.addr, "d1", "t1", ONE_SHOT).await;
        device.publish(TOPIC, 1, r#"{"temp":21.5}"#).await;
        let started = tokio::time::timeout(WAIT, starts.recv()).await.unwrap().unwrap();
        assert_eq!(&started[..], br#"{"temp":21.5}"#);
        // The sink holds the commit: no PUBACK may reach the device.
        device.assert_quiet(Duration::from_millis(400)).await;
        assert!(gw.sink.committed().is_empty());
        release.send(()).unwrap();
        let Seen::Acked(_, reason) = device.next_reply().await else {
            panic!("{proto:?}: no PUBACK after commit")
        };
        assert_eq!(reason, "Success");
        assert_eq!(
            gw.sink.committed(),
            vec![("d1".to_owned(), bytes::Bytes::from_static(br#"{"temp":21.5}"#))]
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn qos0_messages_reach_the_sink() {
    for proto in [Proto::V3, Proto::V5] {
        let gw = Gateway::start().await;
        let device = Device::connected(proto, gw.addr, "d2", "t2", ONE_SHOT).await;
        for i in 0..3 {
            device
                .publish("devices/d2/telemetry", 0, format!("{{\"n\":{i}}}"))
                .await;
        }
        let committed = gw.sink.wait_committed(3).await;
        assert!(committed.iter().all(|(device, _)| device == "d2"), "{committed:?}");
        let mut payloads: Vec<_> = committed
            .iter()
            .map(|(_, p)| String::from_utf8(p.to_vec()).unwrap())
            .collect();
        payloads.sort();
        assert_eq!(payloads, [r#"{"n":0}"#, r#"{"n":1}"#, r#"{"n":2}"#]);
    }
}

#[tokio::test]
async fn v5_publish_to_another_devices_topic_gets_puback_not_authorised() {
    let gw = Gateway::start().await;
    let mut device = Device::connected(Proto::V5, gw.addr, "d1", "t1", ONE_SHOT).await;
    device.publish("devices/d2/telemetry", 1, "{}").await;
    let Seen::Acked(_, reason) = device.next_reply().await else {
        panic!("no PUBACK")
    };
    assert_eq!(reason, "NotAuthorized");
    // The session goes on: its own topic still works.
    device.publish(TOPIC, 1, "{}").await;
    let Seen::Acked(_, reason) = device.next_reply().await else {
        panic!("no PUBACK")
    };
    assert_eq!(reason, "Success");
    assert_eq!(gw.sink.committed().len(), 1, "only the own-topic message is stored");
    assert_eq!(gw.sink.calls(), 1, "the foreign message never reached the sink");
}

#[tokio::test]
async fn v3_publish_to_another_devices_topic_closes_the_connection() {
    let gw = Gateway::start().await;
    for qos in [0, 1] {
        let mut device = Device::connected(Proto::V3, gw.addr, "d1", "t1", ONE_SHOT).await;
        device.publish("devices/d2/telemetry", qos, "{}").await;
        let seen = device.next_reply().await;
        assert!(matches!(seen, Seen::Ended(_)), "QoS {qos}: {seen:?}");
    }
    // Raw v5 QoS 0: no PUBACK exists, so DISCONNECT 0x87.
    let (mut raw, _) = raw_session(gw.addr, Proto::V5, 30).await;
    raw.send(&publish_bytes(Proto::V5, "devices/d2/telemetry", 0, 0, b"{}"))
        .await;
    assert_eq!(raw.assert_closed().await, vec![vec![0xE0, 0x01, 0x87]]);
    assert_eq!(gw.sink.calls(), 0);
}

#[tokio::test]
async fn messages_before_a_refusal_are_still_acknowledged_in_order() {
    let gw = Gateway::start().await;
    let (mut raw, _) = raw_session(gw.addr, Proto::V3, 30).await;
    let mut burst = publish_bytes(Proto::V3, TOPIC, 1, 1, b"sleep:150");
    burst.extend(publish_bytes(Proto::V3, "devices/d2/telemetry", 1, 2, b"{}"));
    raw.send(&burst).await;
    // PUBACK 1 arrives after its slow commit, then the socket closes.
    assert_eq!(raw.assert_closed().await, vec![vec![0x40, 0x02, 0x00, 0x01]]);
}

#[tokio::test]
async fn many_in_flight_messages_are_committed_concurrently_and_acked_in_order() {
    for proto in [Proto::V3, Proto::V5] {
        let gw = Gateway::start().await;
        let mut device = Device::connected(proto, gw.addr, "d1", "t1", ONE_SHOT).await;
        let n = 60u64;
        // Earlier messages take longer, so commits finish in reverse order.
        for i in 0..n {
            device.publish(TOPIC, 1, format!("sleep:{}:{i}", 5 * (n - i))).await;
        }
        let (mut sent, mut acked) = (Vec::new(), Vec::new());
        while acked.len() < n as usize {
            match device.next().await {
                Seen::Sent(pkid) => sent.push(pkid),
                Seen::Acked(pkid, reason) => {
                    assert_eq!(reason, "Success");
                    acked.push(pkid);
                }
                other => panic!("{proto:?}: {other:?}"),
            }
        }
        assert_eq!(acked, sent, "{proto:?}: acks in publish order");
        assert!(
            gw.sink.max_concurrent() > 10,
            "{proto:?}: only {} commits at once",
            gw.sink.max_concurrent()
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn store_failure_on_v3_drops_the_connection_and_the_client_resends() {
    let gw = Gateway::start().await;
    gw.sink.plan(Plan::Fail(SinkError::Unavailable("disk full".into())));
    let opts = ClientOpts {
        reconnect: true,
        persistent: true,
    };
    let mut device = Device::connected(Proto::V3, gw.addr, "d1", "t1", opts).await;
    device.publish(TOPIC, 1, "m1").await;
    assert!(
        matches!(device.next_reply().await, Seen::Ended(_)),
        "connection dropped instead of an ack"
    );
    assert_eq!(device.next_reply().await, Seen::Connected { session_present: true });
    let Seen::Acked(..) = device.next_reply().await else {
        panic!("resent message not acked")
    };
    assert_eq!(gw.sink.calls(), 2, "first attempt failed, the resend committed");
    assert_eq!(
        gw.sink.committed(),
        vec![("d1".to_owned(), bytes::Bytes::from_static(b"m1"))]
    );
}

#[tokio::test]
async fn store_failure_and_bad_payload_on_v5_have_their_reason_codes() {
    let gw = Gateway::start().await;
    gw.sink.plan(Plan::Fail(SinkError::Unavailable("disk full".into())));
    gw.sink.plan(Plan::Fail(SinkError::PayloadRejected("not JSON".into())));
    let mut device = Device::connected(Proto::V5, gw.addr, "d1", "t1", ONE_SHOT).await;
    device.publish(TOPIC, 1, "a").await;
    device.publish(TOPIC, 1, "b").await;
    let Seen::Acked(_, first) = device.next_reply().await else {
        panic!()
    };
    let Seen::Acked(_, second) = device.next_reply().await else {
        panic!()
    };
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("UnspecifiedError", "PayloadFormatInvalid")
    );
    // v3.1.1 acknowledges a rejected payload: resending it cannot help.
    gw.sink.plan(Plan::Fail(SinkError::PayloadRejected("not JSON".into())));
    let (mut raw, _) = raw_session(gw.addr, Proto::V3, 30).await;
    raw.send(&publish_bytes(Proto::V3, TOPIC, 1, 5, b"junk")).await;
    assert_eq!(raw.packet().await, Some(vec![0x40, 0x02, 0x00, 0x05]));
}

#[tokio::test]
async fn unacknowledged_message_is_resent_after_the_gateway_dropped_the_connection() {
    for proto in [Proto::V3, Proto::V5] {
        let sink = Arc::new(TestSink::new());
        let gw = Gateway::start_with(sink.clone(), "127.0.0.1:0".parse().unwrap(), test_limits()).await;
        let addr = gw.addr;
        // The first commit hangs until the gateway is gone.
        let (release, gate) = oneshot::channel();
        sink.plan(Plan::Gate(gate));
        let opts = ClientOpts {
            reconnect: true,
            persistent: true,
        };
        let mut device = Device::connected(proto, addr, "d1", "t1", opts).await;
        device.publish(TOPIC, 1, "keep-me").await;
        let mut starts = sink.watch_starts();
        let _ = tokio::time::timeout(Duration::from_millis(300), starts.recv()).await;
        gw.stop().await;
        drop(release);
        assert!(
            matches!(device.next_reply().await, Seen::Ended(_)),
            "{proto:?}: drop seen"
        );
        let gw = Gateway::start_with(sink.clone(), addr, test_limits()).await;
        loop {
            match device.next_reply().await {
                Seen::Ended(_) => {}
                Seen::Connected { session_present } => {
                    assert!(session_present, "{proto:?}: resumed session");
                    break;
                }
                other => panic!("{proto:?}: {other:?}"),
            }
        }
        let Seen::Acked(_, reason) = device.next_reply().await else {
            panic!("{proto:?}: resend not acked")
        };
        assert_eq!(reason, "Success");
        let committed = sink.committed();
        assert!(
            !committed.is_empty() && committed.iter().all(|(_, p)| &p[..] == b"keep-me"),
            "{committed:?}"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn binding_a_taken_port_fails_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let error = shuxiang_mqtt::bind(addr).await.unwrap_err().to_string();
    assert!(error.contains(&addr.to_string()), "{error}");
    assert!(error.contains("already in use"), "{error}");
}

#[tokio::test]
async fn malformed_packets_close_the_connection_and_the_gateway_goes_on() {
    let gw = Gateway::start().await;
    // Not a CONNECT first.
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&[0x30, 0x03, 0x00, 0x01, b'a']).await;
    assert!(raw.assert_closed().await.is_empty());
    // Garbage bytes before any CONNECT.
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&[0xFF; 16]).await;
    assert!(raw.assert_closed().await.is_empty());
    // A PUBLISH whose topic length runs past the packet: v5 says 0x81.
    let (mut raw, _) = raw_session(gw.addr, Proto::V5, 30).await;
    raw.send(&[0x32, 0x04, 0x00, 0x09, b'a', b'b']).await;
    assert_eq!(raw.assert_closed().await, vec![vec![0xE0, 0x01, 0x81]]);
    // v3.1.1: just closed.
    let (mut raw, _) = raw_session(gw.addr, Proto::V3, 30).await;
    raw.send(&[0x82, 0x02, 0x00, 0x01]).await;
    assert!(raw.assert_closed().await.is_empty());
    // Still serving.
    Device::connected(Proto::V5, gw.addr, "d1", "t1", ONE_SHOT).await;
    assert_eq!(gw.sink.calls(), 0);
}

#[tokio::test]
async fn oversized_packets_are_refused_before_they_are_read() {
    let limits = Limits {
        max_packet_size: 1024,
        ..test_limits()
    };
    let gw = Gateway::start_with(Arc::new(TestSink::new()), "127.0.0.1:0".parse().unwrap(), limits).await;
    let (mut raw, connack) = raw_session(gw.addr, Proto::V5, 30).await;
    // CONNACK advertises the limit: property 0x27 = 1024.
    assert!(connack.windows(5).any(|w| w == [0x27, 0, 0, 4, 0]), "{connack:?}");
    raw.send(&publish_bytes(Proto::V5, TOPIC, 1, 1, &vec![b'x'; 2000]))
        .await;
    assert_eq!(raw.assert_closed().await, vec![vec![0xE0, 0x01, 0x95]]);
    assert_eq!(gw.sink.calls(), 0);
}

#[tokio::test]
async fn keep_alive_expiry_closes_a_silent_connection_and_pings_keep_it_open() {
    let gw = Gateway::start().await;
    let (mut pinging, _) = raw_session(gw.addr, Proto::V3, 1).await;
    let (mut silent, _) = raw_session(gw.addr, Proto::V5, 1).await;
    let started = tokio::time::Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        pinging.send(&[0xC0, 0x00]).await;
        assert_eq!(pinging.packet().await, Some(vec![0xD0, 0x00]), "PINGRESP");
    }
    assert_eq!(silent.assert_closed().await, vec![vec![0xE0, 0x01, 0x8D]]);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "closed after {waited:?}, before 1.5 × keep-alive"
    );
}

#[tokio::test]
async fn subscriptions_are_refused_and_qos2_is_not_supported() {
    let gw = Gateway::start().await;
    let mut v3 = Device::connected(Proto::V3, gw.addr, "d1", "t1", ONE_SHOT).await;
    v3.subscribe("devices/d1/#").await;
    assert_eq!(v3.next_reply().await, Seen::SubAck(vec!["Failure".into()]));
    let (mut raw, _) = raw_session(gw.addr, Proto::V5, 30).await;
    let mut subscribe = bytes::BytesMut::new();
    rumqttc::v5::mqttbytes::v5::Packet::Subscribe(rumqttc::v5::mqttbytes::v5::Subscribe::new(
        rumqttc::v5::mqttbytes::v5::Filter::new("devices/d1/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce),
        None,
    ))
    .write(&mut subscribe, None)
    .unwrap();
    raw.send(&subscribe).await;
    let suback = raw.packet().await.unwrap();
    assert_eq!((suback[0], *suback.last().unwrap()), (0x90, 0x87), "{suback:?}");
    raw.send(&publish_bytes(Proto::V5, TOPIC, 2, 3, b"{}")).await;
    assert_eq!(raw.assert_closed().await, vec![vec![0xE0, 0x01, 0x9B]]);
    assert_eq!(gw.sink.calls(), 0);
}

#[tokio::test]
async fn shutdown_finishes_messages_in_hand_and_tells_v5_devices() {
    let gw = Gateway::start().await;
    let (mut raw, _) = raw_session(gw.addr, Proto::V5, 30).await;
    raw.send(&publish_bytes(Proto::V5, TOPIC, 1, 7, b"sleep:100")).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let sink = gw.sink.clone();
    gw.stop().await;
    assert_eq!(sink.committed().len(), 1);
    assert_eq!(
        raw.assert_closed().await,
        vec![vec![0x40, 0x02, 0x00, 0x07], vec![0xE0, 0x01, 0x8B]]
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let limits = Limits {
        max_connections: 1,
        ..test_limits()
    };
    let gw = Gateway::start_with(Arc::new(TestSink::new()), "127.0.0.1:0".parse().unwrap(), limits).await;
    let (_first, _) = raw_session(gw.addr, Proto::V3, 30).await;
    let mut second = Raw::open(gw.addr).await;
    second.send(&connect_bytes(Proto::V3, "d2", "t2", 30)).await;
    assert!(second.assert_closed().await.is_empty(), "no CONNACK beyond the limit");
}

/// Collects everything the gateway logs in this (single-threaded) test.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_name_the_device_but_never_its_token_or_payload() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let gw = Gateway::start().await;
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_bytes(Proto::V5, "d1", "guessed-token-123", 30)).await;
    assert_eq!(raw.packet().await.unwrap()[3], 0x86);
    let (mut raw, _) = raw_session(gw.addr, Proto::V3, 30).await;
    raw.send(&publish_bytes(
        Proto::V3,
        "devices/d2/telemetry",
        1,
        1,
        b"secret-reading-42",
    ))
    .await;
    raw.assert_closed().await;
    gw.stop().await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("MQTT device refused") && text.contains("d1"), "{text}");
    assert!(text.contains("devices/d2/telemetry"), "refused topic is logged: {text}");
    for secret in ["guessed-token-123", "secret-reading-42"] {
        assert!(!text.contains(secret), "log leaks {secret:?}: {text}");
    }
}
