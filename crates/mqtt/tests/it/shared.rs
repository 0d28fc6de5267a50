//! The scale-out consumer against a real broker: SHUXIANG_TEST_MQTT names it
//! (mqtt://127.0.0.1:1883 on the development machines and in CI); without
//! it these tests say so and pass.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use shuxiang_mqtt::{SharedOptions, SinkError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::{Plan, TestSink};

fn broker() -> Option<String> {
    let url = std::env::var("SHUXIANG_TEST_MQTT").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("SHUXIANG_TEST_MQTT not set: scale-out consumer test skipped");
    }
    url
}

fn nonce() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{}x{nanos}", std::process::id())
}

struct Consumer {
    sink: Arc<TestSink>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Consumer {
    fn start(broker: &str, group: &str, client_id: &str) -> Self {
        let sink = Arc::new(TestSink::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let url = format!("{broker}?client_id={client_id}");
        let options = SharedOptions {
            min_backoff: Duration::from_millis(50),
            ..SharedOptions::new(group)
        };
        let task = tokio::spawn({
            let sink = sink.clone();
            async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                shuxiang_mqtt::consume_shared_with(&url, options, sink, shutdown)
                    .await
                    .unwrap();
            }
        });
        Self { sink, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("consumer stops")
            .unwrap();
    }

    /// Payloads this consumer committed for devices of this run.
    fn payloads(&self, run: &str) -> Vec<String> {
        self.sink
            .committed()
            .into_iter()
            .filter(|(device, _)| device.starts_with(run))
            .map(|(_, p)| String::from_utf8(p.to_vec()).unwrap())
            .collect()
    }
}

/// Publishes `n` QoS 1 messages spread over three devices of `run` and
/// returns once the broker acknowledged all of them.
async fn publish(broker: &str, run: &str, n: usize) {
    let url = url::Url::parse(broker).unwrap();
    let mut options = MqttOptions::new(
        format!("pub-{run}"),
        url.host_str().unwrap(),
        url.port().unwrap_or(1883),
    );
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(options, n + 10);
    for i in 0..n {
        client
            .publish(
                format!("devices/{run}-{}/telemetry", i % 3),
                QoS::AtLeastOnce,
                false,
                format!("m{i}"),
            )
            .await
            .unwrap();
    }
    let mut acked = 0;
    within(Duration::from_secs(10), async {
        while acked < n {
            if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
                acked += 1;
            }
        }
    })
    .await;
    let _ = client.disconnect().await;
}

async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f).await.expect("timed out")
}

async fn until_handled(consumers: &[&Consumer], run: &str, n: usize) {
    within(Duration::from_secs(15), async {
        while consumers.iter().map(|c| c.payloads(run).len()).sum::<usize>() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Give duplicates, if any, the time to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn two_consumers_in_one_group_split_the_messages_exactly_once() {
    let Some(broker) = broker() else { return };
    let run = nonce();
    let group = format!("shuxiang-test-{run}");
    let a = Consumer::start(&broker, &group, &format!("a-{run}"));
    let b = Consumer::start(&broker, &group, &format!("b-{run}"));
    // Both subscriptions must be in place before the first message.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let n = 300;
    publish(&broker, &run, n).await;
    until_handled(&[&a, &b], &run, n).await;
    let (from_a, from_b) = (a.payloads(&run), b.payloads(&run));
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "split: {} / {}",
        from_a.len(),
        from_b.len()
    );
    let mut times: HashMap<String, usize> = HashMap::new();
    for payload in from_a.iter().chain(&from_b) {
        *times.entry(payload.clone()).or_default() += 1;
    }
    assert_eq!(times.len(), n, "every message handled");
    assert!(times.values().all(|&t| t == 1), "no message handled twice: {times:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn unacknowledged_messages_are_redelivered_after_a_store_failure() {
    let Some(broker) = broker() else { return };
    let run = nonce();
    let group = format!("shuxiang-test-{run}");
    let consumer = Consumer::start(&broker, &group, &format!("c-{run}"));
    consumer
        .sink
        .plan(Plan::Fail(SinkError::Unavailable("disk full".into())));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let n = 50;
    publish(&broker, &run, n).await;
    until_handled(&[&consumer], &run, n).await;
    let mut payloads = consumer.payloads(&run);
    payloads.sort();
    payloads.dedup();
    assert_eq!(
        payloads.len(),
        n,
        "every message committed at least once despite the failure"
    );
    assert!(consumer.sink.calls() > n, "the failed message was delivered again");
    consumer.stop().await;
}
