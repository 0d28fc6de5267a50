//! The embedded MQTT endpoint (内置 MQTT 接入点) devices connect to:
//! v3.1.1 and v5 on one port, authentication through the [`DeviceSink`],
//! and QoS 1 acknowledgements sent only after the sink committed, in order,
//! with many messages of one connection in flight at once.
//!
//! Behaviour a device sees (ADR 0007 gives the reasons):
//! - CONNECT: username = device id, password = token. Refused with v3.1.1
//!   return code 4 (bad credentials), 5 (not authorised), 3 (registry
//!   unavailable); v5 reason 0x86, 0x87, 0x88. A protocol level other than
//!   4 or 5 gets the v3.1.1 answer 1 (unacceptable protocol version). The gateway keeps no session state (devices do not
//!   subscribe), so a device asking to resume its session is told it is
//!   present and resends what was not acknowledged. Wills and retain flags
//!   are ignored.
//! - PUBLISH only on `devices/{own id}/telemetry`. Elsewhere: v5 QoS 1 gets
//!   PUBACK 0x87, v5 QoS 0 a DISCONNECT 0x87, v3.1.1 a closed connection
//!   (the only refusal that protocol has). QoS 2 is refused: v5 CONNACK says
//!   maximum QoS 1 and a QoS 2 PUBLISH gets DISCONNECT 0x9B; v3.1.1 closes.
//! - QoS 1 outcome from the sink: committed → PUBACK; whole payload rejected
//!   → v5 PUBACK 0x99, v3.1.1 PUBACK (resending cannot help; the sink has
//!   recorded the rejection for the device's owner); store unavailable → v5
//!   PUBACK 0x80, v3.1.1 the connection is closed after the earlier acks so
//!   the client resends everything unacknowledged when it reconnects.
//! - SUBSCRIBE is refused per filter (v3.1.1 0x80, v5 0x87): devices only
//!   publish. UNSUBSCRIBE is acknowledged.
//! - Keep-alive: closed after 1.5 × the keep-alive without a packet.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{debug, info, warn};

use crate::codec::{self, AckCode, ConnectCode, DecodeError, DisconnectCode, Grant, Inbound, Version};
use crate::error::GatewayError;
use crate::sink::{AuthRejection, DeviceSink, SinkError};

/// Limits of the embedded endpoint.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest packet accepted (remaining length, bytes); larger ones close
    /// the connection (v5 DISCONNECT 0x95).
    pub max_packet_size: usize,
    /// Concurrent device connections; further ones are closed at once.
    pub max_connections: usize,
    /// Messages of one connection handed to the sink and not yet answered;
    /// reading pauses beyond it (v5 CONNACK receive maximum).
    pub max_in_flight: u16,
    /// Time a new connection has to send its CONNECT.
    pub connect_timeout: Duration,
    /// Time to wait for a stalled device to take our packets.
    pub write_timeout: Duration,
    /// On shutdown or disconnect, time the sink gets to finish messages
    /// already received so their acknowledgements can still be sent.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_packet_size: 256 * 1024,
            max_connections: 10_000,
            max_in_flight: 256,
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// A bound, not yet serving, MQTT endpoint.
#[derive(Debug)]
pub struct GatewayListener {
    listener: TcpListener,
    limits: Limits,
}

impl GatewayListener {
    /// The address actually bound (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound TCP listener has an address")
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// Binds the device endpoint; fails with a message naming the address when
/// it is taken (typically a Mosquitto already on 1883).
pub async fn bind(addr: SocketAddr) -> Result<GatewayListener, GatewayError> {
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(GatewayListener {
            listener,
            limits: Limits::default(),
        }),
        Err(source) => Err(GatewayError::bind(addr, source)),
    }
}

/// Serves devices until `shutdown` resolves, then stops accepting, lets each
/// connection finish the messages it already received (acknowledging them)
/// and returns once all connections are closed.
pub async fn serve<S: DeviceSink>(
    listener: GatewayListener,
    sink: Arc<S>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    let GatewayListener { listener, limits } = listener;
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    info!(addr = %listener.local_addr()?, "MQTT device gateway listening");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off
                        // instead of spinning on the same error.
                        warn!(%error, "MQTT accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    warn!(%peer, limit = limits.max_connections, "MQTT connection limit reached; closing new connection");
                    continue;
                };
                let connection = Connection::new(stream, peer, sink.clone(), limits.clone(), stop_rx.clone());
                connections.spawn(async move {
                    connection.run().await;
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    info!(connections = connections.len(), "MQTT device gateway shutting down");
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// What a finished message asks the connection to send, in message order.
enum Reply {
    None,
    Ack(u16, AckCode),
    Close(DisconnectCode, &'static str),
}

type PendingReply = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Why a session ended.
enum End {
    /// The device sent DISCONNECT.
    Client,
    /// The device broke a rule; messages received before are still answered.
    Closed(DisconnectCode, String),
    /// A message was refused by closing (v3.1.1); acks of later messages
    /// would break the in-order rule, so none follow.
    Refused(DisconnectCode, String),
    /// The gateway shuts down.
    Stop,
    Io(String),
}

struct Connection<S> {
    stream: TcpStream,
    peer: SocketAddr,
    sink: Arc<S>,
    limits: Arc<Limits>,
    stop: watch::Receiver<bool>,
}

/// The authenticated part of a connection.
struct Session<S> {
    reader: tokio::net::tcp::OwnedReadHalf,
    writer: OwnedWriteHalf,
    inbound: BytesMut,
    outbound: BytesMut,
    version: Version,
    device_id: String,
    topic: String,
    keep_alive: Option<Duration>,
    pending: FuturesOrdered<PendingReply>,
    sink: Arc<S>,
    limits: Arc<Limits>,
}

impl<S: DeviceSink> Connection<S> {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        sink: Arc<S>,
        limits: Arc<Limits>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            stream,
            peer,
            sink,
            limits,
            stop,
        }
    }

    async fn run(self) {
        let Self {
            stream,
            peer,
            sink,
            limits,
            mut stop,
        } = self;
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let mut inbound = BytesMut::with_capacity(4096);
        let first = tokio::select! {
            first = timeout(limits.connect_timeout, read_connect(&mut reader, &mut inbound, &limits)) => first,
            _ = stop.changed() => return,
        };
        let connect = match first {
            Ok(Ok(connect)) => connect,
            Ok(Err(ConnectFailure::Unsupported(level))) => {
                debug!(%peer, level, "MQTT CONNECT with unsupported protocol level");
                let mut out = BytesMut::new();
                codec::write_connack(&mut out, Version::V311, ConnectCode::UnsupportedProtocol, &no_grant());
                let _ = timeout(limits.write_timeout, writer.write_all(&out)).await;
                return;
            }
            Ok(Err(ConnectFailure::Other(reason))) => {
                debug!(%peer, %reason, "MQTT connection closed before CONNECT");
                return;
            }
            Err(_) => {
                debug!(%peer, "MQTT connection sent no CONNECT in time");
                return;
            }
        };
        let version = connect.version;
        let username = connect.username.unwrap_or_default();
        let auth = if username.is_empty() {
            Err(AuthRejection::BadCredentials)
        } else {
            sink.authenticate(&username, connect.password.as_deref().unwrap_or_default())
                .await
        };
        let device_id = match auth {
            Ok(device_id) => device_id,
            Err(rejection) => {
                info!(%peer, device = %username, %rejection, "MQTT device refused");
                let code = match rejection {
                    AuthRejection::BadCredentials => ConnectCode::BadCredentials,
                    AuthRejection::NotAuthorized => ConnectCode::NotAuthorized,
                    AuthRejection::Unavailable => ConnectCode::ServerUnavailable,
                };
                let mut out = BytesMut::new();
                codec::write_connack(&mut out, version, code, &no_grant());
                let _ = timeout(limits.write_timeout, writer.write_all(&out)).await;
                return;
            }
        };
        let grant = Grant {
            session_present: !connect.clean_start,
            receive_maximum: limits.max_in_flight,
            max_packet_size: u32::try_from(limits.max_packet_size).unwrap_or(u32::MAX),
            assigned_client_id: connect
                .client_id
                .is_empty()
                .then(|| format!("device-{device_id}-{}", peer.port())),
        };
        let mut outbound = BytesMut::with_capacity(4096);
        codec::write_connack(&mut outbound, version, ConnectCode::Accepted, &grant);
        info!(%peer, device = %device_id, client_id = %connect.client_id, ?version, "MQTT device connected");
        let keep_alive =
            (connect.keep_alive_secs > 0).then(|| Duration::from_millis(u64::from(connect.keep_alive_secs) * 1500));
        let mut session = Session {
            reader,
            writer,
            inbound,
            outbound,
            version,
            topic: format!("devices/{device_id}/telemetry"),
            device_id,
            keep_alive,
            pending: FuturesOrdered::new(),
            sink,
            limits,
        };
        let end = session.run(&mut stop).await;
        session.finish(end, peer).await;
    }
}

enum ConnectFailure {
    Unsupported(u8),
    Other(String),
}

async fn read_connect(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    inbound: &mut BytesMut,
    limits: &Limits,
) -> Result<codec::Connect, ConnectFailure> {
    loop {
        match codec::decode(inbound, None, limits.max_packet_size) {
            Ok(Some(Inbound::Connect(connect))) => return Ok(connect),
            Ok(Some(other)) => return Err(ConnectFailure::Other(format!("expected CONNECT, got {other:?}"))),
            Ok(None) => {}
            Err(DecodeError::UnsupportedProtocol(level)) => return Err(ConnectFailure::Unsupported(level)),
            Err(error) => return Err(ConnectFailure::Other(error.to_string())),
        }
        match reader.read_buf(inbound).await {
            Ok(0) => return Err(ConnectFailure::Other("closed".into())),
            Ok(_) => {}
            Err(error) => return Err(ConnectFailure::Other(error.to_string())),
        }
    }
}

fn no_grant() -> Grant {
    Grant {
        session_present: false,
        receive_maximum: 1,
        max_packet_size: 1,
        assigned_client_id: None,
    }
}

impl<S: DeviceSink> Session<S> {
    async fn run(&mut self, stop: &mut watch::Receiver<bool>) -> End {
        let mut deadline = self.keep_alive.map(|k| Instant::now() + k);
        // Set when a refusal is queued behind earlier messages: read nothing
        // more, let their acks out, then close.
        let mut closing = false;
        loop {
            if let Err(error) = self.flush().await {
                return End::Io(error);
            }
            let can_read = !closing && self.pending.len() < usize::from(self.limits.max_in_flight);
            tokio::select! {
                biased;
                _ = stop.changed() => return End::Stop,
                Some(reply) = self.pending.next(), if !self.pending.is_empty() => {
                    if let Some(end) = self.answer(reply) {
                        return end;
                    }
                    // Answer every other message already finished in one write.
                    while let Some(Some(reply)) = futures_util::FutureExt::now_or_never(self.pending.next()) {
                        if let Some(end) = self.answer(reply) {
                            return end;
                        }
                    }
                    // A device waiting for acks sends nothing; the clock
                    // restarts when the gateway is the one that was slow.
                    deadline = self.keep_alive.map(|k| Instant::now() + k);
                }
                read = self.reader.read_buf(&mut self.inbound), if can_read => {
                    match read {
                        Ok(0) => return End::Io("closed by device".into()),
                        Err(error) => return End::Io(error.to_string()),
                        Ok(_) => {}
                    }
                    deadline = self.keep_alive.map(|k| Instant::now() + k);
                    loop {
                        match codec::decode(&mut self.inbound, Some(self.version), self.limits.max_packet_size) {
                            Ok(None) => break,
                            Ok(Some(packet)) => match self.handle(packet) {
                                Step::Continue => {}
                                Step::Closing => { closing = true; break; }
                                Step::End(end) => return end,
                            },
                            Err(DecodeError::TooLarge { size, max }) => {
                                return End::Closed(DisconnectCode::PacketTooLarge, format!("packet of {size} bytes exceeds {max}"));
                            }
                            Err(error) => return End::Closed(DisconnectCode::MalformedPacket, error.to_string()),
                        }
                    }
                }
                () = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() && can_read => {
                    return End::Closed(DisconnectCode::KeepAliveTimeout, "keep-alive expired".into());
                }
            }
        }
    }

    fn handle(&mut self, packet: Inbound) -> Step {
        match packet {
            Inbound::Publish(publish) => self.publish(publish),
            Inbound::PingReq => {
                codec::write_pingresp(&mut self.outbound, self.version);
                Step::Continue
            }
            Inbound::Subscribe { packet_id, filters } => {
                debug!(device = %self.device_id, "MQTT SUBSCRIBE refused: devices only publish");
                codec::write_suback_refused(&mut self.outbound, self.version, packet_id, filters);
                Step::Continue
            }
            Inbound::Unsubscribe { packet_id, filters } => {
                codec::write_unsuback(&mut self.outbound, self.version, packet_id, filters);
                Step::Continue
            }
            Inbound::Disconnect => Step::End(End::Client),
            Inbound::Connect(_) => Step::End(End::Closed(DisconnectCode::ProtocolError, "second CONNECT".into())),
            Inbound::Unexpected(name) => {
                Step::End(End::Closed(DisconnectCode::ProtocolError, format!("unexpected {name}")))
            }
        }
    }

    fn publish(&mut self, publish: codec::Publish) -> Step {
        if publish.uses_topic_alias {
            return Step::End(End::Closed(
                DisconnectCode::TopicAliasInvalid,
                "topic alias not granted".into(),
            ));
        }
        if publish.qos > 1 {
            return Step::End(End::Closed(
                DisconnectCode::QosNotSupported,
                "QoS 2 is not supported".into(),
            ));
        }
        if publish.topic != self.topic {
            warn!(device = %self.device_id, topic = %publish.topic, "MQTT publish outside the device's own topic");
            let refusal = if self.version == Version::V5 && publish.qos == 1 {
                Reply::Ack(publish.packet_id, AckCode::NotAuthorized)
            } else {
                Reply::Close(DisconnectCode::NotAuthorized, "publish outside the device's own topic")
            };
            let closes = matches!(refusal, Reply::Close(..));
            self.pending.push_back(Box::pin(std::future::ready(refusal)));
            return if closes { Step::Closing } else { Step::Continue };
        }
        let received_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let sink = self.sink.clone();
        let device_id = self.device_id.clone();
        let version = self.version;
        let (qos, packet_id) = (publish.qos, publish.packet_id);
        // A task of its own, so a device that drops its connection does not
        // cancel a commit half-way, and sink work spreads over all cores.
        let commit = tokio::spawn(async move {
            let outcome = sink.publish(&device_id, publish.payload, received_at_ms).await;
            if let Err(error) = &outcome {
                warn!(device = %device_id, %error, qos, "MQTT telemetry not committed");
            }
            reply_for(version, qos, packet_id, outcome.map(|_| ()))
        });
        self.pending.push_back(Box::pin(async move {
            commit.await.unwrap_or(Reply::Close(
                DisconnectCode::UnspecifiedError,
                "telemetry sink panicked",
            ))
        }));
        Step::Continue
    }

    /// Queues the packet a finished message asks for; `Some` ends the session.
    fn answer(&mut self, reply: Reply) -> Option<End> {
        match reply {
            Reply::None => None,
            Reply::Ack(packet_id, code) => {
                codec::write_puback(&mut self.outbound, self.version, packet_id, code);
                None
            }
            Reply::Close(code, reason) => Some(End::Refused(code, reason.into())),
        }
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.outbound.is_empty() {
            return Ok(());
        }
        match timeout(self.limits.write_timeout, self.writer.write_all(&self.outbound)).await {
            Ok(Ok(())) => {
                self.outbound.clear();
                Ok(())
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("device does not read its acknowledgements".into()),
        }
    }

    /// Lets messages already received finish (acknowledging them while the
    /// socket is usable), says why the connection ends, and closes it.
    async fn finish(mut self, end: End, peer: SocketAddr) {
        let mut acking = matches!(end, End::Client | End::Closed(..) | End::Stop);
        let drain_until = Instant::now() + self.limits.drain_timeout;
        while !self.pending.is_empty() {
            let Ok(Some(reply)) = tokio::time::timeout_at(drain_until, self.pending.next()).await else {
                break;
            };
            if acking && self.answer(reply).is_some() {
                acking = false;
            }
        }
        let device = &self.device_id;
        match &end {
            End::Client => debug!(%peer, %device, "MQTT device disconnected"),
            End::Stop => codec::write_disconnect(&mut self.outbound, self.version, DisconnectCode::ServerShuttingDown),
            End::Closed(code, reason) | End::Refused(code, reason) => {
                warn!(%peer, %device, %reason, "MQTT connection closed by the gateway");
                codec::write_disconnect(&mut self.outbound, self.version, *code);
            }
            End::Io(reason) => debug!(%peer, %device, %reason, "MQTT connection lost"),
        }
        if !matches!(end, End::Io(_)) {
            let _ = self.flush().await;
            let _ = self.writer.shutdown().await;
        }
    }
}

enum Step {
    Continue,
    Closing,
    End(End),
}

fn reply_for(version: Version, qos: u8, packet_id: u16, outcome: Result<(), SinkError>) -> Reply {
    match (qos, version, outcome) {
        (0, _, _) => Reply::None,
        (_, _, Ok(())) => Reply::Ack(packet_id, AckCode::Success),
        (_, Version::V5, Err(SinkError::PayloadRejected(_))) => Reply::Ack(packet_id, AckCode::PayloadFormatInvalid),
        (_, Version::V311, Err(SinkError::PayloadRejected(_))) => Reply::Ack(packet_id, AckCode::Success),
        (_, Version::V5, Err(SinkError::Unavailable(_))) => Reply::Ack(packet_id, AckCode::UnspecifiedError),
        (_, Version::V311, Err(SinkError::Unavailable(_))) => Reply::Close(
            DisconnectCode::UnspecifiedError,
            "telemetry store unavailable; device will resend",
        ),
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
