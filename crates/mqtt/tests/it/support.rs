//! Test doubles and clients: a [`TestSink`] whose commits the test can gate,
//! delay or fail, a running gateway, real MQTT clients (rumqttc) for both
//! protocol versions, and a raw TCP client for exact bytes on the wire.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use shuxiang_mqtt::{AuthRejection, DeviceSink, GatewayListener, Limits, PublishOutcome, SinkError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub const WAIT: Duration = Duration::from_secs(5);

/// What the sink does with the next publish call.
pub enum Plan {
    /// Wait for the sender before committing (dropped sender = store failure).
    Gate(oneshot::Receiver<()>),
    Fail(SinkError),
}

#[derive(Default)]
pub struct TestSink {
    tokens: HashMap<String, String>,
    disabled: Vec<String>,
    plans: Mutex<VecDeque<Plan>>,
    committed: Mutex<Vec<(String, Bytes)>>,
    calls: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
    started: Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
}

impl TestSink {
    /// Devices `d1`..`d3` with tokens `t1`..`t3`; `d3` is disabled.
    pub fn new() -> Self {
        Self {
            tokens: (1..=3).map(|i| (format!("d{i}"), format!("t{i}"))).collect(),
            disabled: vec!["d3".into()],
            ..Self::default()
        }
    }

    pub fn plan(&self, plan: Plan) {
        self.plans.lock().unwrap().push_back(plan);
    }

    /// A channel that receives each payload as the sink starts on it.
    pub fn watch_starts(&self) -> mpsc::UnboundedReceiver<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.started.lock().unwrap() = Some(tx);
        rx
    }

    pub fn committed(&self) -> Vec<(String, Bytes)> {
        self.committed.lock().unwrap().clone()
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn max_concurrent(&self) -> usize {
        self.max_running.load(Ordering::SeqCst)
    }

    pub async fn wait_committed(&self, n: usize) -> Vec<(String, Bytes)> {
        let until = tokio::time::Instant::now() + WAIT;
        loop {
            let committed = self.committed();
            if committed.len() >= n {
                return committed;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "only {} of {n} messages committed",
                committed.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl DeviceSink for TestSink {
    async fn authenticate(&self, username: &str, password: &[u8]) -> Result<String, AuthRejection> {
        match self.tokens.get(username) {
            Some(token) if token.as_bytes() == password => {
                if self.disabled.iter().any(|d| d == username) {
                    Err(AuthRejection::NotAuthorized)
                } else {
                    Ok(username.to_owned())
                }
            }
            _ => Err(AuthRejection::BadCredentials),
        }
    }

    async fn accept_device(&self, device_id: &str) -> Result<(), AuthRejection> {
        if device_id.starts_with("unknown") {
            Err(AuthRejection::BadCredentials)
        } else {
            Ok(())
        }
    }

    async fn publish(
        &self,
        device_id: &str,
        payload: Bytes,
        _received_at_ms: i64,
    ) -> Result<PublishOutcome, SinkError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(running, Ordering::SeqCst);
        if let Some(started) = &*self.started.lock().unwrap() {
            let _ = started.send(payload.clone());
        }
        let plan = self.plans.lock().unwrap().pop_front();
        let result = async {
            match plan {
                Some(Plan::Gate(gate)) => gate.await.map_err(|_| SinkError::Unavailable("gate dropped".into()))?,
                Some(Plan::Fail(error)) => return Err(error),
                None => {}
            }
            // "sleep:N" payloads take N ms to commit, to finish out of order.
            if let Some(ms) = std::str::from_utf8(&payload)
                .ok()
                .and_then(|p| p.strip_prefix("sleep:"))
            {
                let ms: u64 = ms.split(':').next().unwrap().parse().unwrap();
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            self.committed
                .lock()
                .unwrap()
                .push((device_id.to_owned(), payload.clone()));
            Ok(PublishOutcome {
                accepted: 1,
                rejected: 0,
            })
        }
        .await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// A gateway serving a [`TestSink`] on 127.0.0.1:0 (or a given address).
pub struct Gateway {
    pub addr: SocketAddr,
    pub sink: Arc<TestSink>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Gateway {
    pub async fn start() -> Self {
        Self::start_with(Arc::new(TestSink::new()), "127.0.0.1:0".parse().unwrap(), test_limits()).await
    }

    pub async fn start_with(sink: Arc<TestSink>, addr: SocketAddr, limits: Limits) -> Self {
        let listener: GatewayListener = shuxiang_mqtt::bind(addr).await.unwrap().with_limits(limits);
        let addr = listener.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let sink = sink.clone();
            async move {
                shuxiang_mqtt::serve(listener, sink, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            }
        });
        Self {
            addr,
            sink,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the gateway and waits until `serve` returned.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.task.take().unwrap())
            .await
            .expect("serve returns after shutdown")
            .unwrap();
    }
}

pub fn test_limits() -> Limits {
    Limits {
        drain_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    V3,
    V5,
}

/// What a real client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Connected {
        session_present: bool,
    },
    /// Packet id the client gave to its next QoS 1 publish.
    Sent(u16),
    /// PUBACK with its v5 reason (always "Success" in v3.1.1).
    Acked(u16, String),
    SubAck(Vec<String>),
    /// The connection ended; the text names why (refusal, DISCONNECT reason).
    Ended(String),
}

/// A rumqttc client (v3.1.1 or v5) whose event loop runs in a task.
pub struct Device {
    proto: Proto,
    v3: Option<rumqttc::AsyncClient>,
    v5: Option<rumqttc::v5::AsyncClient>,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How the client behaves.
#[derive(Clone, Copy)]
pub struct ClientOpts {
    /// Keep polling (so reconnecting) after the connection ended.
    pub reconnect: bool,
    /// Ask to resume the session, so unacknowledged messages are resent.
    pub persistent: bool,
}

pub const ONE_SHOT: ClientOpts = ClientOpts {
    reconnect: false,
    persistent: false,
};

impl Device {
    pub async fn connect(proto: Proto, addr: SocketAddr, user: &str, password: &str, opts: ClientOpts) -> Self {
        let (tx, seen) = mpsc::unbounded_channel();
        let client_id = format!("test-{user}-{}", rand_suffix());
        match proto {
            Proto::V3 => {
                let mut o = rumqttc::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
                o.set_credentials(user, password)
                    .set_clean_session(!opts.persistent)
                    .set_inflight(100);
                let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 200);
                let task = tokio::spawn(async move {
                    loop {
                        let event = eventloop.poll().await;
                        let seen = match event {
                            Ok(rumqttc::Event::Incoming(v4::Packet::ConnAck(c))) => Some(Seen::Connected {
                                session_present: c.session_present,
                            }),
                            Ok(rumqttc::Event::Incoming(v4::Packet::PubAck(a))) => {
                                Some(Seen::Acked(a.pkid, "Success".into()))
                            }
                            Ok(rumqttc::Event::Incoming(v4::Packet::SubAck(s))) => {
                                Some(Seen::SubAck(s.return_codes.iter().map(|c| format!("{c:?}")).collect()))
                            }
                            Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) if pkid != 0 => {
                                Some(Seen::Sent(pkid))
                            }
                            Ok(_) => None,
                            Err(error) => Some(Seen::Ended(format!("{error:?}"))),
                        };
                        let ended = matches!(seen, Some(Seen::Ended(_)));
                        if let Some(seen) = seen {
                            let _ = tx.send(seen);
                        }
                        if ended {
                            if !opts.reconnect {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                });
                Self {
                    proto,
                    v3: Some(client),
                    v5: None,
                    seen,
                    task,
                }
            }
            Proto::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
                o.set_credentials(user, password).set_clean_start(!opts.persistent);
                if opts.persistent {
                    o.set_session_expiry_interval(Some(60));
                }
                let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(o, 200);
                let task = tokio::spawn(async move {
                    use rumqttc::v5::mqttbytes::v5::Packet;
                    loop {
                        let event = eventloop.poll().await;
                        let seen = match event {
                            Ok(rumqttc::v5::Event::Incoming(Packet::ConnAck(c))) => Some(Seen::Connected {
                                session_present: c.session_present,
                            }),
                            Ok(rumqttc::v5::Event::Incoming(Packet::PubAck(a))) => {
                                Some(Seen::Acked(a.pkid, format!("{:?}", a.reason)))
                            }
                            Ok(rumqttc::v5::Event::Incoming(Packet::SubAck(s))) => {
                                Some(Seen::SubAck(s.return_codes.iter().map(|c| format!("{c:?}")).collect()))
                            }
                            Ok(rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) if pkid != 0 => {
                                Some(Seen::Sent(pkid))
                            }
                            Ok(_) => None,
                            Err(error) => Some(Seen::Ended(format!("{error:?}"))),
                        };
                        let ended = matches!(seen, Some(Seen::Ended(_)));
                        if let Some(seen) = seen {
                            let _ = tx.send(seen);
                        }
                        if ended {
                            if !opts.reconnect {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                });
                Self {
                    proto,
                    v3: None,
                    v5: Some(client),
                    seen,
                    task,
                }
            }
        }
    }

    /// Connects and asserts the CONNACK accepted the device.
    pub async fn connected(proto: Proto, addr: SocketAddr, user: &str, password: &str, opts: ClientOpts) -> Self {
        let mut device = Self::connect(proto, addr, user, password, opts).await;
        match device.next().await {
            Seen::Connected { .. } => device,
            other => panic!("{proto:?} device {user} not connected: {other:?}"),
        }
    }

    pub async fn publish(&self, topic: &str, qos: u8, payload: impl Into<Vec<u8>>) {
        let payload: Vec<u8> = payload.into();
        match self.proto {
            Proto::V3 => {
                let qos = if qos == 0 {
                    rumqttc::QoS::AtMostOnce
                } else {
                    rumqttc::QoS::AtLeastOnce
                };
                self.v3
                    .as_ref()
                    .unwrap()
                    .publish(topic, qos, false, payload)
                    .await
                    .unwrap();
            }
            Proto::V5 => {
                let qos = if qos == 0 {
                    rumqttc::v5::mqttbytes::QoS::AtMostOnce
                } else {
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce
                };
                self.v5
                    .as_ref()
                    .unwrap()
                    .publish(topic, qos, false, payload)
                    .await
                    .unwrap();
            }
        }
    }

    pub async fn subscribe(&self, filter: &str) {
        match self.proto {
            Proto::V3 => self
                .v3
                .as_ref()
                .unwrap()
                .subscribe(filter, rumqttc::QoS::AtLeastOnce)
                .await
                .unwrap(),
            Proto::V5 => self
                .v5
                .as_ref()
                .unwrap()
                .subscribe(filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
                .await
                .unwrap(),
        }
    }

    /// The next thing the client saw (panics after [`WAIT`]).
    pub async fn next(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("client saw nothing in time")
            .expect("client loop ended")
    }

    /// The next event other than [`Seen::Sent`].
    pub async fn next_reply(&mut self) -> Seen {
        loop {
            match self.next().await {
                Seen::Sent(_) => {}
                other => return other,
            }
        }
    }

    /// Asserts the client sees no acknowledgement or end for `wait`.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        while let Ok(Some(seen)) = tokio::time::timeout_at(until, self.seen.recv()).await {
            assert!(
                matches!(seen, Seen::Sent(_)),
                "expected no reply yet, client saw {seen:?}"
            );
        }
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos ^ (N.fetch_add(1, Ordering::SeqCst) as u64) << 32
}

/// A raw TCP client for exact bytes.
pub struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    pub async fn open(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next whole packet, or `None` once the gateway closed the socket.
    pub async fn packet(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(len) = frame_len(&self.buf) {
                    return Some(self.buf.split_to(len).to_vec());
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("gateway neither answered nor closed in time")
    }

    /// Asserts the gateway closes the socket, skipping any packets before.
    pub async fn assert_closed(&mut self) -> Vec<Vec<u8>> {
        let mut before = Vec::new();
        while let Some(packet) = self.packet().await {
            before.push(packet);
        }
        before
    }
}

fn frame_len(buf: &[u8]) -> Option<usize> {
    let mut len = 0usize;
    for (i, byte) in buf.iter().skip(1).take(4).enumerate() {
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let total = 2 + i + len;
            return (buf.len() >= total).then_some(total);
        }
    }
    None
}

pub fn connect_bytes(proto: Proto, user: &str, password: &str, keep_alive: u16) -> Vec<u8> {
    let mut out = BytesMut::new();
    match proto {
        Proto::V3 => {
            let mut c = v4::Connect::new("raw");
            c.keep_alive = keep_alive;
            c.set_login(user, password);
            v4::Packet::Connect(c).write(&mut out, usize::MAX).unwrap();
        }
        Proto::V5 => {
            let c = v5::Connect {
                keep_alive,
                client_id: "raw".into(),
                clean_start: true,
                properties: None,
            };
            v5::Packet::Connect(c, None, Some(v5::Login::new(user, password)))
                .write(&mut out, None)
                .unwrap();
        }
    }
    out.to_vec()
}

pub fn publish_bytes(proto: Proto, topic: &str, qos: u8, pkid: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    match proto {
        Proto::V3 => {
            let qos = rumqttc::mqttbytes::qos(qos).unwrap();
            let mut p = v4::Publish::new(topic, qos, payload.to_vec());
            p.pkid = pkid;
            v4::Packet::Publish(p).write(&mut out, usize::MAX).unwrap();
        }
        Proto::V5 => {
            let qos = rumqttc::v5::mqttbytes::qos(qos).unwrap();
            let mut p = v5::Publish::new(topic, qos, payload.to_vec(), None);
            p.pkid = pkid;
            v5::Packet::Publish(p).write(&mut out, None).unwrap();
        }
    }
    out.to_vec()
}

/// Connects raw and returns the client with the CONNACK bytes.
pub async fn raw_session(addr: SocketAddr, proto: Proto, keep_alive: u16) -> (Raw, Vec<u8>) {
    let mut raw = Raw::open(addr).await;
    raw.send(&connect_bytes(proto, "d1", "t1", keep_alive)).await;
    let connack = raw.packet().await.expect("CONNACK");
    assert_eq!(connack[0], 0x20, "CONNACK expected: {connack:?}");
    // Return code (v3.1.1) and reason code (v5) are both the fourth byte.
    assert_eq!(connack[3], 0, "device d1 accepted: {connack:?}");
    (raw, connack)
}
