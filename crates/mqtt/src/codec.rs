//! MQTT packet framing for the gateway: turns bytes from a device into a
//! version-neutral [`Inbound`] packet and writes the few packets the gateway
//! sends, for v3.1.1 and v5 on the same port.
//!
//! The wire format itself is `rumqttc`'s `mqttbytes` codec (see ADR 0007);
//! this module only picks the version from the CONNECT, covers the corners
//! that codec gets wrong for a server (a v5 DISCONNECT without reason code)
//! and keeps `rumqttc` types out of the rest of the crate.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// The protocol version a connection speaks, fixed by its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5 (protocol level 5).
    V5,
}

/// A decoded CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub version: Version,
    pub client_id: String,
    pub keep_alive_secs: u16,
    /// Clean session (v3.1.1) / clean start (v5).
    pub clean_start: bool,
    pub username: Option<String>,
    pub password: Option<Bytes>,
}

/// A decoded PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub qos: u8,
    pub packet_id: u16,
    pub payload: Bytes,
    /// v5 only: the device used a topic alias, which the gateway never grants.
    pub uses_topic_alias: bool,
}

/// A packet a device sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Connect(Connect),
    Publish(Publish),
    PingReq,
    Subscribe {
        packet_id: u16,
        filters: usize,
    },
    Unsubscribe {
        packet_id: u16,
        filters: usize,
    },
    Disconnect,
    /// A packet type a device has no reason to send to this gateway (PUBACK,
    /// PUBREL, CONNACK, AUTH, ...), named for the log.
    Unexpected(&'static str),
}

/// Why bytes from a device are not a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    /// A CONNECT for a protocol level this gateway does not speak (e.g. 3 =
    /// MQTT 3.1); answered with CONNACK "unacceptable protocol version".
    #[error("unsupported MQTT protocol level {0}")]
    UnsupportedProtocol(u8),
    #[error("first packet must be CONNECT")]
    NotConnect,
    #[error("malformed packet: {0}")]
    Malformed(String),
}

/// Decodes one packet from the front of `buf`, consuming its bytes.
///
/// `version` is `None` until the CONNECT was read: then only a CONNECT is
/// accepted and its protocol level decides the version. `Ok(None)` means
/// more bytes are needed. `max_packet_size` bounds the remaining length,
/// checked before the body is buffered.
pub fn decode(
    buf: &mut BytesMut,
    version: Option<Version>,
    max_packet_size: usize,
) -> Result<Option<Inbound>, DecodeError> {
    let Some((remaining_len, header_len)) = fixed_header(buf)? else {
        return Ok(None);
    };
    if remaining_len > max_packet_size {
        return Err(DecodeError::TooLarge {
            size: remaining_len,
            max: max_packet_size,
        });
    }
    if buf.len() < header_len + remaining_len {
        return Ok(None);
    }
    let version = match version {
        Some(version) => version,
        None => connect_version(buf, header_len)?,
    };
    match version {
        Version::V311 => decode_v311(buf, max_packet_size),
        Version::V5 => decode_v5(buf, max_packet_size),
    }
}

/// Remaining length and fixed-header length, or `None` if incomplete.
fn fixed_header(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut remaining = 0usize;
    for (i, byte) in buf.iter().skip(1).take(4).enumerate() {
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((remaining, i + 2)));
        }
    }
    if buf.len() >= 5 {
        return Err(DecodeError::Malformed("remaining length longer than 4 bytes".into()));
    }
    Ok(None)
}

/// The version named by the complete CONNECT at the front of `buf`.
fn connect_version(buf: &[u8], header_len: usize) -> Result<Version, DecodeError> {
    if buf[0] != 0x10 {
        return Err(DecodeError::NotConnect);
    }
    // Variable header: protocol name as a length-prefixed string, then level.
    let body = &buf[header_len..];
    let name_len = match body {
        [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => return Err(DecodeError::Malformed("CONNECT without protocol name".into())),
    };
    let level = *body
        .get(2 + name_len)
        .ok_or_else(|| DecodeError::Malformed("CONNECT without protocol level".into()))?;
    match (&body[2..2 + name_len], level) {
        (b"MQTT", 4) => Ok(Version::V311),
        (b"MQTT", 5) => Ok(Version::V5),
        (b"MQTT" | b"MQIsdp", level) => Err(DecodeError::UnsupportedProtocol(level)),
        _ => Err(DecodeError::Malformed("unknown protocol name".into())),
    }
}

fn decode_v311(buf: &mut BytesMut, max_packet_size: usize) -> Result<Option<Inbound>, DecodeError> {
    let packet = v4::Packet::read(buf, max_packet_size).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(Some(match packet {
        v4::Packet::Connect(connect) => Inbound::Connect(Connect {
            version: Version::V311,
            client_id: connect.client_id,
            keep_alive_secs: connect.keep_alive,
            clean_start: connect.clean_session,
            username: connect.login.as_ref().map(|l| l.username.clone()),
            password: connect.login.map(|l| Bytes::from(l.password)),
        }),
        v4::Packet::Publish(publish) => Inbound::Publish(Publish {
            topic: publish.topic,
            qos: publish.qos as u8,
            packet_id: publish.pkid,
            payload: publish.payload,
            uses_topic_alias: false,
        }),
        v4::Packet::PingReq => Inbound::PingReq,
        v4::Packet::Subscribe(s) => Inbound::Subscribe {
            packet_id: s.pkid,
            filters: s.filters.len(),
        },
        v4::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            packet_id: u.pkid,
            filters: u.topics.len(),
        },
        v4::Packet::Disconnect => Inbound::Disconnect,
        other => Inbound::Unexpected(v4_name(&other)),
    }))
}

fn decode_v5(buf: &mut BytesMut, max_packet_size: usize) -> Result<Option<Inbound>, DecodeError> {
    // rumqttc insists on a body for DISCONNECT; v5 allows none (reason 0x00).
    if buf.starts_with(&[0xE0, 0x00]) {
        let _ = buf.split_to(2);
        return Ok(Some(Inbound::Disconnect));
    }
    let max = u32::try_from(max_packet_size).unwrap_or(u32::MAX);
    let packet = v5::Packet::read(buf, Some(max)).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(Some(match packet {
        v5::Packet::Connect(connect, _will, login) => Inbound::Connect(Connect {
            version: Version::V5,
            client_id: connect.client_id,
            keep_alive_secs: connect.keep_alive,
            clean_start: connect.clean_start,
            username: login.as_ref().map(|l| l.username.clone()),
            password: login.map(|l| Bytes::from(l.password)),
        }),
        v5::Packet::Publish(publish) => Inbound::Publish(Publish {
            topic: String::from_utf8(publish.topic.to_vec())
                .map_err(|_| DecodeError::Malformed("topic is not UTF-8".into()))?,
            qos: publish.qos as u8,
            packet_id: publish.pkid,
            payload: publish.payload,
            uses_topic_alias: publish.properties.is_some_and(|p| p.topic_alias.is_some()),
        }),
        v5::Packet::PingReq(_) => Inbound::PingReq,
        v5::Packet::Subscribe(s) => Inbound::Subscribe {
            packet_id: s.pkid,
            filters: s.filters.len(),
        },
        v5::Packet::Unsubscribe(u) => Inbound::Unsubscribe {
            packet_id: u.pkid,
            filters: u.filters.len(),
        },
        v5::Packet::Disconnect(_) => Inbound::Disconnect,
        other => Inbound::Unexpected(v5_name(&other)),
    }))
}

fn v4_name(packet: &v4::Packet) -> &'static str {
    match packet {
        v4::Packet::ConnAck(_) => "CONNACK",
        v4::Packet::PubAck(_) => "PUBACK",
        v4::Packet::PubRec(_) => "PUBREC",
        v4::Packet::PubRel(_) => "PUBREL",
        v4::Packet::PubComp(_) => "PUBCOMP",
        v4::Packet::SubAck(_) => "SUBACK",
        v4::Packet::UnsubAck(_) => "UNSUBACK",
        v4::Packet::PingResp => "PINGRESP",
        _ => "unexpected packet",
    }
}

fn v5_name(packet: &v5::Packet) -> &'static str {
    match packet {
        v5::Packet::Auth(_) => "AUTH",
        v5::Packet::ConnAck(_) => "CONNACK",
        v5::Packet::PubAck(_) => "PUBACK",
        v5::Packet::PubRec(_) => "PUBREC",
        v5::Packet::PubRel(_) => "PUBREL",
        v5::Packet::PubComp(_) => "PUBCOMP",
        v5::Packet::SubAck(_) => "SUBACK",
        v5::Packet::UnsubAck(_) => "UNSUBACK",
        v5::Packet::PingResp(_) => "PINGRESP",
        _ => "unexpected packet",
    }
}

/// How a CONNECT is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCode {
    Accepted,
    UnsupportedProtocol,
    BadCredentials,
    NotAuthorized,
    ServerUnavailable,
}

/// What the gateway grants a v5 session, told in the CONNACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// A device session holds no state on the gateway (no subscriptions, no
    /// messages queued for the device, no QoS 2), so a session the device
    /// asks to resume is always present, and resuming it makes MQTT clients
    /// resend their unacknowledged messages after a reconnect.
    pub session_present: bool,
    pub receive_maximum: u16,
    pub max_packet_size: u32,
    /// Set when the device sent an empty client id.
    pub assigned_client_id: Option<String>,
}

/// Outcome of one QoS 1 PUBLISH, as told in the PUBACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    Success,
    /// v5 0x80: the sink failed to commit.
    UnspecifiedError,
    /// v5 0x87: the topic is not the device's own.
    NotAuthorized,
    /// v5 0x99: the sink refused the whole payload.
    PayloadFormatInvalid,
}

/// Why the gateway closes a v5 connection (v3.1.1 has no such packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectCode {
    MalformedPacket,
    ProtocolError,
    NotAuthorized,
    ServerShuttingDown,
    KeepAliveTimeout,
    TopicAliasInvalid,
    PacketTooLarge,
    QosNotSupported,
    UnspecifiedError,
}

pub fn write_connack(out: &mut BytesMut, version: Version, code: ConnectCode, grant: &Grant) {
    match version {
        Version::V311 => {
            let code = match code {
                ConnectCode::Accepted => v4::ConnectReturnCode::Success,
                ConnectCode::UnsupportedProtocol => v4::ConnectReturnCode::RefusedProtocolVersion,
                ConnectCode::BadCredentials => v4::ConnectReturnCode::BadUserNamePassword,
                ConnectCode::NotAuthorized => v4::ConnectReturnCode::NotAuthorized,
                ConnectCode::ServerUnavailable => v4::ConnectReturnCode::ServiceUnavailable,
            };
            let session_present = grant.session_present && code == v4::ConnectReturnCode::Success;
            write_v4(out, v4::Packet::ConnAck(v4::ConnAck::new(code, session_present)));
        }
        Version::V5 => {
            let accepted = code == ConnectCode::Accepted;
            let code = match code {
                ConnectCode::Accepted => v5::ConnectReturnCode::Success,
                ConnectCode::UnsupportedProtocol => v5::ConnectReturnCode::UnsupportedProtocolVersion,
                ConnectCode::BadCredentials => v5::ConnectReturnCode::BadUserNamePassword,
                ConnectCode::NotAuthorized => v5::ConnectReturnCode::NotAuthorized,
                ConnectCode::ServerUnavailable => v5::ConnectReturnCode::ServerUnavailable,
            };
            let properties = accepted.then(|| v5::ConnAckProperties {
                session_expiry_interval: None,
                receive_max: Some(grant.receive_maximum),
                max_qos: Some(1),
                retain_available: Some(0),
                max_packet_size: Some(grant.max_packet_size),
                assigned_client_identifier: grant.assigned_client_id.clone(),
                topic_alias_max: None,
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: Some(0),
                subscription_identifiers_available: Some(0),
                shared_subscription_available: Some(0),
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            });
            write_v5(
                out,
                v5::Packet::ConnAck(v5::ConnAck {
                    session_present: accepted && grant.session_present,
                    code,
                    properties,
                }),
            );
        }
    }
}

pub fn write_puback(out: &mut BytesMut, version: Version, packet_id: u16, code: AckCode) {
    match version {
        Version::V311 => write_v4(out, v4::Packet::PubAck(v4::PubAck::new(packet_id))),
        Version::V5 => {
            let reason = match code {
                AckCode::Success => v5::PubAckReason::Success,
                AckCode::UnspecifiedError => v5::PubAckReason::UnspecifiedError,
                AckCode::NotAuthorized => v5::PubAckReason::NotAuthorized,
                AckCode::PayloadFormatInvalid => v5::PubAckReason::PayloadFormatInvalid,
            };
            write_v5(
                out,
                v5::Packet::PubAck(v5::PubAck {
                    pkid: packet_id,
                    reason,
                    properties: None,
                }),
            );
        }
    }
}

/// Refuses every filter of a SUBSCRIBE: devices only publish.
pub fn write_suback_refused(out: &mut BytesMut, version: Version, packet_id: u16, filters: usize) {
    match version {
        Version::V311 => write_v4(
            out,
            v4::Packet::SubAck(v4::SubAck::new(
                packet_id,
                vec![v4::SubscribeReasonCode::Failure; filters],
            )),
        ),
        Version::V5 => write_v5(
            out,
            v5::Packet::SubAck(v5::SubAck {
                pkid: packet_id,
                return_codes: vec![v5::SubscribeReasonCode::NotAuthorized; filters],
                properties: None,
            }),
        ),
    }
}

pub fn write_unsuback(out: &mut BytesMut, version: Version, packet_id: u16, filters: usize) {
    match version {
        Version::V311 => write_v4(out, v4::Packet::UnsubAck(v4::UnsubAck::new(packet_id))),
        Version::V5 => write_v5(
            out,
            v5::Packet::UnsubAck(v5::UnsubAck {
                pkid: packet_id,
                reasons: vec![v5::UnsubAckReason::NoSubscriptionExisted; filters],
                properties: None,
            }),
        ),
    }
}

pub fn write_pingresp(out: &mut BytesMut, version: Version) {
    match version {
        Version::V311 => write_v4(out, v4::Packet::PingResp),
        Version::V5 => write_v5(out, v5::Packet::PingResp(v5::PingResp)),
    }
}

/// Writes a v5 DISCONNECT; v3.1.1 servers just close the socket.
pub fn write_disconnect(out: &mut BytesMut, version: Version, code: DisconnectCode) {
    if version == Version::V311 {
        return;
    }
    let reason = match code {
        DisconnectCode::MalformedPacket => v5::DisconnectReasonCode::MalformedPacket,
        DisconnectCode::ProtocolError => v5::DisconnectReasonCode::ProtocolError,
        DisconnectCode::NotAuthorized => v5::DisconnectReasonCode::NotAuthorized,
        DisconnectCode::ServerShuttingDown => v5::DisconnectReasonCode::ServerShuttingDown,
        DisconnectCode::KeepAliveTimeout => v5::DisconnectReasonCode::KeepAliveTimeout,
        DisconnectCode::TopicAliasInvalid => v5::DisconnectReasonCode::TopicAliasInvalid,
        DisconnectCode::PacketTooLarge => v5::DisconnectReasonCode::PacketTooLarge,
        DisconnectCode::QosNotSupported => v5::DisconnectReasonCode::QoSNotSupported,
        DisconnectCode::UnspecifiedError => v5::DisconnectReasonCode::UnspecifiedError,
    };
    write_v5(out, v5::Packet::Disconnect(v5::Disconnect::new(reason)));
}

// The gateway's own packets are small and well-formed; the codec can only
// fail on sizes beyond the protocol's limits, so there is no size cap here.
fn write_v4(out: &mut BytesMut, packet: v4::Packet) {
    packet
        .write(out, usize::MAX)
        .expect("gateway packets are within MQTT size limits");
}

fn write_v5(out: &mut BytesMut, packet: v5::Packet) {
    packet
        .write(out, None)
        .expect("gateway packets are within MQTT size limits");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: &[u8]) -> BytesMut {
        BytesMut::from(bytes)
    }

    #[test]
    fn picks_the_version_from_the_connect_and_reads_credentials() {
        let mut out = BytesMut::new();
        let mut c = v4::Connect::new("c1");
        c.set_login("dev-1", "tok");
        v4::Packet::Connect(c).write(&mut out, usize::MAX).unwrap();
        let packet = decode(&mut out, None, 1024).unwrap().unwrap();
        let Inbound::Connect(connect) = packet else {
            panic!("not a connect: {packet:?}")
        };
        assert_eq!(connect.version, Version::V311);
        assert_eq!(connect.username.as_deref(), Some("dev-1"));
        assert_eq!(connect.password.as_deref(), Some(&b"tok"[..]));
        assert!(out.is_empty(), "the whole frame is consumed");
    }

    #[test]
    fn incomplete_frames_wait_for_more_bytes() {
        let mut whole = BytesMut::new();
        let mut publish = v4::Publish::new("devices/a/telemetry", rumqttc::QoS::AtLeastOnce, vec![1, 2, 3]);
        publish.pkid = 9;
        v4::Packet::Publish(publish).write(&mut whole, usize::MAX).unwrap();
        for cut in 0..whole.len() {
            let mut part = frame(&whole[..cut]);
            assert_eq!(decode(&mut part, Some(Version::V311), 1024), Ok(None), "cut at {cut}");
            assert_eq!(part.len(), cut, "nothing consumed from an incomplete frame");
        }
        let Some(Inbound::Publish(publish)) = decode(&mut whole, Some(Version::V311), 1024).unwrap() else {
            panic!("the complete frame is a PUBLISH");
        };
        assert_eq!(
            (publish.packet_id, publish.qos, &publish.payload[..]),
            (9, 1, &[1u8, 2, 3][..])
        );
    }

    #[test]
    fn refuses_oversized_packets_before_buffering_them() {
        // PUBLISH announcing 16,384 bytes of which none have arrived yet.
        let mut buf = frame(&[0x30, 0x80, 0x80, 0x01]);
        assert_eq!(
            decode(&mut buf, Some(Version::V5), 1024),
            Err(DecodeError::TooLarge {
                size: 16_384,
                max: 1024
            })
        );
    }

    #[test]
    fn first_packet_must_be_a_connect_of_a_known_level() {
        assert_eq!(
            decode(&mut frame(&[0xC0, 0x00]), None, 1024),
            Err(DecodeError::NotConnect)
        );
        // MQTT 3.1: "MQIsdp" level 3.
        let mut v31 = frame(&[
            0x10, 0x0c, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 10, 0, 0,
        ]);
        v31[1] = (v31.len() - 2) as u8;
        assert_eq!(decode(&mut v31, None, 1024), Err(DecodeError::UnsupportedProtocol(3)));
    }

    #[test]
    fn v5_disconnect_without_reason_code_is_accepted() {
        let mut buf = frame(&[0xE0, 0x00, 0xC0, 0x00]);
        assert_eq!(decode(&mut buf, Some(Version::V5), 1024), Ok(Some(Inbound::Disconnect)));
        assert_eq!(decode(&mut buf, Some(Version::V5), 1024), Ok(Some(Inbound::PingReq)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &[0x30, 0x01, 0x00][..],
            &[0x82, 0x02, 0x00, 0x01],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        ] {
            let result = decode(&mut frame(bytes), Some(Version::V311), 1024);
            assert!(
                matches!(result, Err(DecodeError::Malformed(_))),
                "{bytes:?} → {result:?}"
            );
        }
    }

    #[test]
    fn puback_carries_the_reason_code_only_in_v5() {
        let mut v5_ack = BytesMut::new();
        write_puback(&mut v5_ack, Version::V5, 7, AckCode::NotAuthorized);
        assert_eq!(&v5_ack[..], &[0x40, 0x04, 0x00, 0x07, 0x87, 0x00]);
        let mut v3_ack = BytesMut::new();
        write_puback(&mut v3_ack, Version::V311, 7, AckCode::NotAuthorized);
        assert_eq!(&v3_ack[..], &[0x40, 0x02, 0x00, 0x07]);
    }

    /// Valid frames of every kind a device sends, cut and with bytes
    /// changed: decoding must end (packet, error or "need more") without
    /// panicking and never consume a partial frame. The fuzz target in
    /// crates/mqtt/fuzz explores further.
    #[test]
    fn mutated_frames_never_panic() {
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for (version, level) in [(Version::V311, 4u8), (Version::V5, 5u8)] {
            let mut out = BytesMut::new();
            if version == Version::V311 {
                let mut c = v4::Connect::new("c");
                c.set_login("d1", "t1");
                v4::Packet::Connect(c).write(&mut out, usize::MAX).unwrap();
                let mut p = v4::Publish::new("devices/d1/telemetry", rumqttc::QoS::AtLeastOnce, b"{\"t\":1}".to_vec());
                p.pkid = 3;
                v4::Packet::Publish(p).write(&mut out, usize::MAX).unwrap();
                v4::Packet::Subscribe(v4::Subscribe::new("a/#", rumqttc::QoS::AtMostOnce))
                    .write(&mut out, usize::MAX)
                    .unwrap();
            } else {
                let c = v5::Connect {
                    keep_alive: 5,
                    client_id: "c".into(),
                    clean_start: true,
                    properties: None,
                };
                v5::Packet::Connect(c, None, Some(v5::Login::new("d1", "t1")))
                    .write(&mut out, None)
                    .unwrap();
                let props = v5::PublishProperties {
                    payload_format_indicator: Some(1),
                    message_expiry_interval: None,
                    topic_alias: Some(2),
                    response_topic: None,
                    correlation_data: None,
                    user_properties: vec![("k".into(), "v".into())],
                    subscription_identifiers: Vec::new(),
                    content_type: Some("json".into()),
                };
                let mut p = v5::Publish::new(
                    "devices/d1/telemetry",
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    b"{}".to_vec(),
                    Some(props),
                );
                p.pkid = 4;
                v5::Packet::Publish(p).write(&mut out, None).unwrap();
                v5::Packet::Disconnect(v5::Disconnect::new(v5::DisconnectReasonCode::NormalDisconnection))
                    .write(&mut out, None)
                    .unwrap();
            }
            assert_eq!(out[8], level);
            frames.push(out.to_vec());
        }
        // xorshift: deterministic, so a failure reproduces.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = frames[(next() % 2) as usize].clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            bytes.truncate(1 + (next() as usize) % bytes.len());
            for version in [None, Some(Version::V311), Some(Version::V5)] {
                let mut buf = BytesMut::from(&bytes[..]);
                for _ in 0..8 {
                    let before = buf.len();
                    match decode(&mut buf, version, 1024) {
                        Ok(Some(_)) => assert!(buf.len() < before),
                        Ok(None) => {
                            assert_eq!(buf.len(), before);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
    }
}
