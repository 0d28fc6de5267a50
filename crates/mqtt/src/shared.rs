//! Scale-out consumer (集群消费): in the scale-out deployment devices
//! connect to an MQTT broker cluster (EMQX, Mosquitto) and every Shuxiang
//! node subscribes to `$share/{group}/devices/+/telemetry`, so the broker
//! splits the devices' messages between the nodes.
//!
//! The broker authenticated the device, so the sink is only asked whether
//! the device named in the topic is accepted. Each message is acknowledged
//! to the broker only after the sink committed it; when the store is
//! unavailable the consumer drops its connection and resumes its persistent
//! session, so the broker redelivers everything unacknowledged (at least
//! once). Messages the sink refuses for good (unknown device, unusable
//! payload) are acknowledged, as resending them cannot help.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::error::GatewayError;
use crate::sink::{AuthRejection, DeviceSink, SinkError};

/// Settings of the scale-out consumer beyond the broker URL.
#[derive(Debug, Clone)]
pub struct SharedOptions {
    /// Share group: nodes in the same group split the messages.
    pub group: String,
    /// Messages the broker may have outstanding with this node (MQTT v5
    /// receive maximum); also bounds concurrent sink calls.
    pub max_in_flight: u16,
    /// How long the broker keeps this node's session, and the messages
    /// in flight to it, while the node reconnects.
    pub session_expiry: Duration,
    pub max_packet_size: u32,
    /// First wait before reconnecting; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl SharedOptions {
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            max_in_flight: 256,
            session_expiry: Duration::from_secs(300),
            max_packet_size: 256 * 1024,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Consumes `$share/{group}/devices/+/telemetry` from the broker at
/// `broker_url` (`mqtt://[user:password@]host[:port][?client_id=ID]`) until
/// `shutdown` resolves. Give each node a stable `client_id` so a restarted
/// node resumes its session; without one a random id is used.
pub async fn consume_shared<S: DeviceSink>(
    broker_url: &str,
    group: &str,
    sink: Arc<S>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    consume_shared_with(broker_url, SharedOptions::new(group), sink, shutdown).await
}

/// [`consume_shared`] with explicit options.
pub async fn consume_shared_with<S: DeviceSink>(
    broker_url: &str,
    options: SharedOptions,
    sink: Arc<S>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    let mqtt_options = mqtt_options(broker_url, &options)?;
    let filter = format!("$share/{}/devices/+/telemetry", options.group);
    info!(client_id = %mqtt_options.client_id(), %filter, "MQTT shared consumer starting");
    let (client, mut eventloop) = AsyncClient::new(mqtt_options.clone(), usize::from(options.max_in_flight) + 16);
    let mut client = client;
    // Handlers report a store failure here; the consumer then reconnects so
    // the broker redelivers what was not acknowledged.
    let (failure_tx, mut failure_rx) = mpsc::channel::<()>(1);
    let mut handlers = JoinSet::new();
    let mut backoff = options.min_backoff;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(()) = failure_rx.recv() => {
                warn!("telemetry store unavailable; reconnecting to the broker for redelivery");
                (client, eventloop) = AsyncClient::new(mqtt_options.clone(), usize::from(options.max_in_flight) + 16);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(options.max_backoff);
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                    info!(session_present = connack.session_present, "connected to MQTT broker");
                    backoff = options.min_backoff;
                    if let Err(error) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        warn!(%error, "cannot queue shared subscription");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(suback))) => debug!(codes = ?suback.return_codes, "shared subscription answered"),
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    handlers.spawn(handle(publish, sink.clone(), client.clone(), failure_tx.clone()));
                }
                Ok(_) => {}
                Err(error) => {
                    warn!(%error, retry_in_ms = backoff.as_millis() as u64, "MQTT broker connection failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(options.max_backoff);
                }
            },
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
        }
    }
    shut_down(client, eventloop, handlers, &filter).await;
    Ok(())
}

/// Finishes messages in hand (their acks need the event loop polled), then
/// leaves the share group so the broker stops routing messages to this node.
async fn shut_down(client: AsyncClient, mut eventloop: EventLoop, mut handlers: JoinSet<()>, filter: &str) {
    let grace = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(grace);
    while !handlers.is_empty() {
        tokio::select! {
            () = &mut grace => break,
            Some(_) = handlers.join_next() => {}
            event = eventloop.poll() => if event.is_err() { break },
        }
    }
    let _ = client.try_unsubscribe(filter.to_owned());
    let _ = client.try_disconnect();
    let deadline = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            event = eventloop.poll() => if event.is_err() { break },
        }
    }
    info!("MQTT shared consumer stopped");
}

async fn handle<S: DeviceSink>(publish: Publish, sink: Arc<S>, client: AsyncClient, failure: mpsc::Sender<()>) {
    let topic = String::from_utf8_lossy(&publish.topic).into_owned();
    let Some(device_id) = crate::device_of_topic(&topic) else {
        warn!(%topic, "message on a topic that names no device; acknowledged and dropped");
        ack(&client, &publish).await;
        return;
    };
    match sink.accept_device(device_id).await {
        Ok(()) => {}
        Err(AuthRejection::Unavailable) => {
            let _ = failure.try_send(());
            return;
        }
        Err(rejection) => {
            warn!(device = %device_id, %rejection, "message of a refused device; acknowledged and dropped");
            ack(&client, &publish).await;
            return;
        }
    }
    let received_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    match sink.publish(device_id, publish.payload.clone(), received_at_ms).await {
        Ok(_) => ack(&client, &publish).await,
        Err(SinkError::PayloadRejected(reason)) => {
            debug!(device = %device_id, %reason, "payload rejected");
            ack(&client, &publish).await;
        }
        Err(SinkError::Unavailable(reason)) => {
            warn!(device = %device_id, %reason, "telemetry not committed; leaving it to the broker to redeliver");
            let _ = failure.try_send(());
        }
    }
}

async fn ack(client: &AsyncClient, publish: &Publish) {
    if publish.qos == QoS::AtMostOnce {
        return;
    }
    // Fails only when this connection was replaced; the broker then
    // redelivers the message on the new one.
    if let Err(error) = client.ack(publish).await {
        debug!(%error, "acknowledgement not sent");
    }
}

fn mqtt_options(broker_url: &str, options: &SharedOptions) -> Result<MqttOptions, GatewayError> {
    let invalid = |reason: &str| GatewayError::BrokerUrl {
        url: redact(broker_url),
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(broker_url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "mqtt" | "tcp") {
        return Err(invalid(
            "scheme must be mqtt:// or tcp:// (TLS to the broker is not supported yet)",
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("no host"))?;
    let port = url.port().unwrap_or(1883);
    let mut client_id = None;
    for (key, value) in url.query_pairs() {
        match &*key {
            "client_id" if !value.is_empty() => client_id = Some(value.into_owned()),
            _ => return Err(invalid(&format!("unknown query parameter {key:?} (only client_id)"))),
        }
    }
    let client_id = client_id.unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("shuxiang-{}-{}-{nanos}", options.group, std::process::id())
    });
    let mut mqtt = MqttOptions::new(client_id, host, port);
    mqtt.set_keep_alive(Duration::from_secs(30))
        .set_clean_start(false)
        .set_session_expiry_interval(Some(
            u32::try_from(options.session_expiry.as_secs()).unwrap_or(u32::MAX),
        ))
        .set_receive_maximum(Some(options.max_in_flight))
        .set_max_packet_size(Some(options.max_packet_size))
        .set_manual_acks(true);
    if !url.username().is_empty() {
        let user = percent_decode(url.username());
        let password = percent_decode(url.password().unwrap_or_default());
        mqtt.set_credentials(user, password);
    }
    Ok(mqtt)
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The URL without its password, for error messages and logs.
fn redact(broker_url: &str) -> String {
    match url::Url::parse(broker_url) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "(unparsable)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_url_gives_host_port_client_id_and_credentials() {
        let options = mqtt_options(
            "mqtt://node:s%40cret@broker.example:1884?client_id=node-1",
            &SharedOptions::new("g"),
        )
        .unwrap();
        assert_eq!(options.broker_address(), ("broker.example".to_owned(), 1884));
        assert_eq!(options.client_id(), "node-1");
        let login = options.credentials().unwrap();
        assert_eq!((login.username.as_str(), login.password.as_str()), ("node", "s@cret"));
        assert!(
            !options.clean_start(),
            "the session must survive reconnects for redelivery"
        );
        assert!(options.manual_acks(), "acks only after commit");
    }

    #[test]
    fn bad_broker_urls_are_refused_without_echoing_the_password() {
        let error = mqtt_options("mqtts://u:topsecret@h?client_id=x", &SharedOptions::new("g")).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("scheme"), "{text}");
        assert!(!text.contains("topsecret"), "{text}");
        assert!(mqtt_options("mqtt://h?qos=2", &SharedOptions::new("g")).is_err());
        assert!(mqtt_options("not a url", &SharedOptions::new("g")).is_err());
    }
}
