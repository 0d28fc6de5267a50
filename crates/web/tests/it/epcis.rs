//! EPCIS 2.0 capture and query over the API on a real server: capture jobs
//! (rollback and proceed), single events, the query parameters and paging
//! through the Link header, read scopes, and the denials.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{TestServer, assert_error, client};

const CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";

fn event(n: u32, step: &str, time: &str) -> Value {
    json!({
        "type": "ObjectEvent", "action": "OBSERVE", "bizStep": step,
        "eventTime": time, "eventTimeZoneOffset": "+08:00",
        "epcList": [format!("urn:epc:id:sgtin:0614141.107346.{n}")],
        "bizLocation": {"id": format!("urn:epc:id:sgln:0614141.00001.{}", n % 2)}
    })
}

fn single(n: u32) -> Value {
    let mut e = event(n, "commissioning", "2026-05-01T07:00:00+08:00");
    e["@context"] = json!([CONTEXT]);
    e
}

fn document(events: Vec<Value>) -> Value {
    json!({
        "@context": [CONTEXT], "type": "EPCISDocument", "schemaVersion": "2.0",
        "creationDate": "2026-03-01T08:00:00Z", "epcisBody": {"eventList": events}
    })
}

fn numbered(range: std::ops::Range<u32>) -> Vec<Value> {
    range
        .map(|n| {
            event(
                n,
                "shipping",
                &format!("2026-03-01T08:{:02}:{:02}+08:00", n / 60, n % 60),
            )
        })
        .collect()
}

/// Posts a document with an optional error behaviour; returns the response.
async fn post_capture(
    srv: &TestServer,
    token: &str,
    path: &str,
    behaviour: Option<&str>,
    body: String,
) -> reqwest::Response {
    let mut req = client()
        .post(srv.url(path))
        .bearer_auth(token)
        .header("content-type", "application/ld+json")
        .body(body);
    if let Some(b) = behaviour {
        req = req.header("GS1-Capture-Error-Behaviour", b);
    }
    req.send().await.unwrap()
}

/// Captures a document and waits for its job to finish; returns the job.
async fn capture(srv: &TestServer, token: &str, behaviour: Option<&str>, doc: &Value) -> Value {
    let r = post_capture(srv, token, "/api/v1/epcis/capture", behaviour, doc.to_string()).await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let job: Value = r.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/epcis/capture/{}", job["captureID"].as_str().unwrap())
    );
    assert_eq!(job["running"], true);
    wait(srv, token, &location).await
}

async fn wait(srv: &TestServer, token: &str, location: &str) -> Value {
    for _ in 0..400 {
        let job = srv.json(Method::GET, location, Some(token), None, 200).await;
        if job["running"] == false {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("capture job {location} did not finish");
}

fn event_ids(page: &Value) -> Vec<String> {
    page["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventID"].as_str().unwrap().to_string())
        .collect()
}

async fn query(srv: &TestServer, token: &str, params: &str) -> Vec<String> {
    let page = srv
        .json(
            Method::GET,
            &format!("/api/v1/epcis/events?{params}"),
            Some(token),
            None,
            200,
        )
        .await;
    assert_eq!(page["type"], "EPCISQueryDocument");
    event_ids(&page)
}

fn encode(s: &str) -> String {
    shuxiang_trace::epcis::api::encode_path_segment(s)
}

server_test!(async fn documents_are_captured_through_jobs_with_rollback_or_proceed(srv) {
    let farmer = srv.user_with("epcisfarmer", "farmer", "360102").await;
    let job = capture(srv, &farmer, None, &document(numbered(0..3))).await;
    assert_eq!(job["success"], true, "{job}");
    assert_eq!(job["captureErrorBehaviour"], "rollback");
    assert_eq!((job["status"].as_str(), job["capturedCount"].as_i64()), (Some("succeeded"), Some(3)));
    assert_eq!(job["region"], "360102");
    let ids = query(srv, &farmer, "").await;
    let expected = shuxiang_trace::epcis_hash::document_hash_ids(&document(numbered(0..3))).unwrap();
    assert_eq!(ids, expected, "eventID is the standard hash ID");

    // Rollback: one bad event, nothing stored.
    let mut events = numbered(3..6);
    events[1]["action"] = json!("JUMP");
    let failed = capture(srv, &farmer, Some("rollback"), &document(events.clone())).await;
    assert_eq!((failed["success"].as_bool(), failed["status"].as_str()), (Some(false), Some("failed")));
    assert_eq!(failed["errors"][0]["pointer"], "/epcisBody/eventList/1/action");
    assert_eq!(query(srv, &farmer, "").await.len(), 3);

    // Proceed: the two good ones are stored, the bad one reported.
    let partial = capture(srv, &farmer, Some("proceed"), &document(events)).await;
    assert_eq!((partial["success"].as_bool(), partial["status"].as_str()), (Some(false), Some("partial")));
    assert_eq!(partial["capturedCount"], 2);
    assert_eq!(partial["errors"][0]["pointer"], "/epcisBody/eventList/1/action");
    assert_eq!(query(srv, &farmer, "").await.len(), 5);

    // The same document again changes nothing.
    let again = capture(srv, &farmer, None, &document(numbered(0..3))).await;
    assert_eq!(again["status"], "succeeded");
    assert_eq!(query(srv, &farmer, "").await.len(), 5);

    // The farmer's jobs, newest first; an invalid envelope fails its job.
    let mut broken = document(numbered(9..10));
    broken.as_object_mut().unwrap().remove("creationDate");
    let bad = capture(srv, &farmer, None, &broken).await;
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["errors"][0]["pointer"], "");
    let jobs = srv.json(Method::GET, "/api/v1/epcis/capture", Some(&farmer), None, 200).await;
    assert_eq!(jobs.as_array().unwrap().len(), 5);
    assert_eq!(jobs[0]["captureID"], bad["captureID"]);

    // Bad requests never become jobs.
    let r = post_capture(srv, &farmer, "/api/v1/epcis/capture", None, "{\"type\": ".into()).await;
    assert_error(r, 400, "malformed_json").await;
    let r = post_capture(srv, &farmer, "/api/v1/epcis/capture", Some("ignore"), document(vec![]).to_string()).await;
    assert_error(r, 400, "invalid_capture_error_behaviour").await;
    let huge = document(numbered(0..1)).to_string().replace("\"2.0\"", &format!("\"2.0\", \"sender\": \"{}\"", "x".repeat(1_100_000)));
    let r = post_capture(srv, &farmer, "/api/v1/epcis/capture", None, huge).await;
    assert_error(r, 413, "payload_too_large").await;
    assert_eq!(srv.json(Method::GET, "/api/v1/epcis/capture", Some(&farmer), None, 200).await.as_array().unwrap().len(), 5);

    // Audited in the farmer's county.
    let admin = srv.admin_token().await;
    let log = srv.json(Method::GET, "/api/v1/audit?action=epcis.capture", Some(&admin), None, 200).await;
    assert_eq!(log["entries"][0]["actor"], "epcisfarmer");
    assert_eq!(log["entries"][0]["region"], "360102");
});

server_test!(async fn single_events_are_captured_synchronously(srv) {
    let dealer = srv.user_with("epcisdealer", "dealer", "360102").await;
    let r = srv.call(Method::POST, "/api/v1/epcis/events", Some(&dealer), Some(single(1))).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let created: Value = r.json().await.unwrap();
    let hash = created["x-shuxiang:hashID"].as_str().unwrap().to_string();
    assert_eq!(created["eventID"], hash);
    assert!(hash.starts_with("ni:///sha-256;") && hash.ends_with("?ver=CBV2.0"));
    assert_eq!(location, format!("/api/v1/epcis/events/{}", encode(&hash)));
    let stored = srv.json(Method::GET, &location, Some(&dealer), None, 200).await;
    assert_eq!(stored["eventID"], hash);
    assert_eq!(stored["bizStep"], "commissioning");
    assert!(stored.get("x-shuxiang:hashID").is_none());

    // Again: the same event ID, nothing new.
    let again = srv.json(Method::POST, "/api/v1/epcis/events", Some(&dealer), Some(single(1)), 201).await;
    assert_eq!(again["eventID"], hash);
    assert_eq!(query(srv, &dealer, "").await, vec![hash.clone()]);

    // The capturer's own event ID; the hash ID travels along.
    let mut own = single(2);
    own["eventID"] = json!("urn:uuid:6d2f0b0e-8a41-4c4e-9a51-3b0b7c1d2e3f");
    let created = srv.json(Method::POST, "/api/v1/epcis/events", Some(&dealer), Some(own.clone()), 201).await;
    assert_eq!(created["eventID"], "urn:uuid:6d2f0b0e-8a41-4c4e-9a51-3b0b7c1d2e3f");
    let own_hash = created["x-shuxiang:hashID"].as_str().unwrap().to_string();
    let by_id = srv.json(Method::GET, &format!("/api/v1/epcis/events/{}", encode("urn:uuid:6d2f0b0e-8a41-4c4e-9a51-3b0b7c1d2e3f")), Some(&dealer), None, 200).await;
    assert_eq!(by_id["x-shuxiang:hashID"], own_hash);
    let by_hash = srv.json(Method::GET, &format!("/api/v1/epcis/events/{}", encode(&own_hash)), Some(&dealer), None, 200).await;
    assert_eq!(by_hash, by_id);

    // Errors: schema (with the pointer), a taken event ID, not JSON, unknown.
    let mut bad = single(3);
    bad["action"] = json!("JUMP");
    let r = srv.call(Method::POST, "/api/v1/epcis/events", Some(&dealer), Some(bad)).await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["error"].as_str(), v["pointer"].as_str()), (Some("invalid_event"), Some("/action")));
    let mut taken = single(4);
    taken["eventID"] = json!("urn:uuid:6d2f0b0e-8a41-4c4e-9a51-3b0b7c1d2e3f");
    assert_error(srv.call(Method::POST, "/api/v1/epcis/events", Some(&dealer), Some(taken)).await, 409, "event_id_taken").await;
    let r = client().post(srv.url("/api/v1/epcis/events")).bearer_auth(&dealer).body("not json").send().await.unwrap();
    assert_error(r, 400, "malformed_json").await;
    assert_error(srv.call(Method::GET, "/api/v1/epcis/events/urn%3Auuid%3Anone", Some(&dealer), None).await, 404, "not_found").await;
    assert_eq!(query(srv, &dealer, "").await.len(), 2);

    // The trace log holds the event's leaf: the public proof route knows it
    // (and waits for a checkpoint), while an unknown hash ID is not found.
    let r = srv.call(Method::GET, &format!("/api/v1/trace/proof?event={}", encode(&hash)), None, None).await;
    assert_error(r, 404, "not_yet_checkpointed").await;
    let unknown = format!("ni:///sha-256;{}?ver=CBV2.0", "0".repeat(64));
    let r = srv.call(Method::GET, &format!("/api/v1/trace/proof?event={}", encode(&unknown)), None, None).await;
    assert_error(r, 404, "not_found").await;
});

server_test!(async fn query_parameters_filter_and_pages_follow_the_link_header(srv) {
    let official = srv.user_with("epcisofficial", "official", "360102").await;
    let mut events = numbered(0..4);
    events[1]["bizStep"] = json!("https://ref.gs1.org/cbv/BizStep-receiving");
    events[2]["action"] = json!("ADD");
    events[3]["type"] = json!("AggregationEvent");
    events[3]["action"] = json!("ADD");
    events[3]["parentID"] = json!("urn:epc:id:sscc:0614141.1234567890");
    events[3]["childEPCs"] = events[3]["epcList"].take();
    events[3].as_object_mut().unwrap().remove("epcList");
    let job = capture(srv, &official, None, &document(events)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let all = query(srv, &official, "").await;
    assert_eq!(all.len(), 4);
    let pick = |i: &[usize]| i.iter().map(|&i| all[i].clone()).collect::<Vec<_>>();
    let cases = [
        ("EQ_bizStep=shipping", pick(&[0, 2, 3])),
        ("EQ_bizStep=urn:epcglobal:cbv:bizstep:receiving", pick(&[1])),
        ("EQ_bizStep=receiving,nothing", pick(&[1])),
        ("EQ_action=ADD", pick(&[2, 3])),
        ("eventType=AggregationEvent", pick(&[3])),
        ("EQ_bizLocation=urn:epc:id:sgln:0614141.00001.1", pick(&[1, 3])),
        ("MATCH_epc=urn:epc:id:sgtin:0614141.107346.2", pick(&[2])),
        ("MATCH_epc=urn:epc:id:sgtin:0614141.107346.3", pick(&[3])),
        ("MATCH_epc=urn:epc:id:sscc:0614141.1234567890", pick(&[])),
        ("MATCH_anyEPC=urn:epc:id:sscc:0614141.1234567890", pick(&[3])),
        ("GE_eventTime=2026-03-01T00:00:02Z", pick(&[2, 3])),
        ("LT_eventTime=2026-03-01T08:00:01%2B08:00", pick(&[0])),
        ("GE_eventTime=2026-03-01T08:00:01%2B08:00&LT_eventTime=2026-03-01T08:00:03%2B08:00", pick(&[1, 2])),
    ];
    for (params, want) in cases {
        assert_eq!(query(srv, &official, params).await, want, "{params}");
    }
    for bad in ["perPage=0", "perPage=many", "GE_eventTime=yesterday", "nextPageToken=abc", "EQ_colour=red"] {
        assert_error(srv.call(Method::GET, &format!("/api/v1/epcis/events?{bad}"), Some(&official), None).await, 400, "invalid_query").await;
    }

    // 70 more; pages of 30 through the Link header, none lost or repeated.
    let more = capture(srv, &official, None, &document(numbered(10..80))).await;
    assert_eq!(more["capturedCount"], 70);
    let mut path = "/api/v1/epcis/events?EQ_bizStep=shipping&perPage=30".to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = srv.call(Method::GET, &path, Some(&official), None).await;
        assert_eq!(r.status(), 200);
        let link = r.headers().get("link").map(|l| l.to_str().unwrap().to_string());
        let page: Value = r.json().await.unwrap();
        let ids = event_ids(&page);
        assert!(ids.len() <= 30);
        seen.extend(ids);
        pages += 1;
        let Some(link) = link else { break };
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        assert!(link.contains("EQ_bizStep=shipping"), "the filters carry over: {link}");
        path = link.trim_start_matches('<').split('>').next().unwrap().to_string();
    }
    assert_eq!(pages, 3);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (73, 73));
    assert_eq!(query(srv, &official, "perPage=5000").await.len(), 74);
    assert_eq!(query(srv, &official, "").await.len(), 30, "default page size");
});

server_test!(async fn scopes_and_roles_decide_who_captures_and_reads(srv) {
    let farmer = srv.user_with("epcisf1", "farmer", "360102").await;
    let neighbour = srv.user_with("epcisf2", "farmer", "360102").await;
    let official = srv.user_with("epcisoff", "official", "360102").await;
    let far_official = srv.user_with("epcisoff2", "official", "360103").await;
    let expert = srv.user_with("epcisexpert", "expert", "3601").await;
    let village = srv.user_with("epcisvillage", "village_staff", "360102002001").await;

    let created = srv.json(Method::POST, "/api/v1/epcis/events", Some(&farmer), Some(single(1)), 201).await;
    let id = created["eventID"].as_str().unwrap().to_string();
    let path = format!("/api/v1/epcis/events/{}", encode(&id));
    // Village staff capture within their village, filed under it.
    let v = srv.json(Method::POST, "/api/v1/epcis/events", Some(&village), Some(single(2)), 201).await;
    let village_id = v["eventID"].as_str().unwrap().to_string();

    // Readers: the capturer, scope readers covering the county; not the
    // neighbour, not another county's official.
    for (who, token, ok) in [("farmer", &farmer, true), ("official", &official, true), ("expert", &expert, true), ("neighbour", &neighbour, false), ("far official", &far_official, false)] {
        let r = srv.call(Method::GET, &path, Some(token), None).await;
        assert_eq!(r.status(), if ok { 200 } else { 403 }, "{who}");
        assert_eq!(query(srv, token, "").await.contains(&id), ok, "{who} lists");
    }
    assert_eq!(query(srv, &village, "").await, vec![village_id.clone()], "village staff read their village only");
    assert_eq!(query(srv, &official, "").await, vec![id.clone(), village_id], "the county official reads both");

    // Capture denials: experts do not capture; regions outside the scope.
    assert_error(srv.call(Method::POST, "/api/v1/epcis/events", Some(&expert), Some(single(3))).await, 403, "forbidden").await;
    assert_error(post_capture(srv, &expert, "/api/v1/epcis/capture", None, document(numbered(0..1)).to_string()).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, "/api/v1/epcis/events?region=360103", Some(&farmer), Some(single(3))).await, 403, "forbidden").await;
    assert_error(post_capture(srv, &farmer, "/api/v1/epcis/capture?region=360103", None, document(numbered(0..1)).to_string()).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, "/api/v1/epcis/events?region=36x", Some(&farmer), Some(single(3))).await, 400, "invalid_region_code").await;
    // A narrower region inside the scope is fine and files the event there.
    let narrow = srv.json(Method::POST, "/api/v1/epcis/events?region=360102002", Some(&farmer), Some(single(4)), 201).await;
    assert!(query(srv, &official, "").await.contains(&narrow["eventID"].as_str().unwrap().to_string()));

    // Jobs are their submitter's.
    let r = post_capture(srv, &farmer, "/api/v1/epcis/capture", None, document(numbered(5..6)).to_string()).await;
    let location = r.headers()["location"].to_str().unwrap().to_string();
    wait(srv, &farmer, &location).await;
    assert_error(srv.call(Method::GET, &location, Some(&neighbour), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, &location, Some(&expert), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, "/api/v1/epcis/capture/cap_none", Some(&farmer), None).await, 404, "not_found").await;
    assert!(srv.json(Method::GET, "/api/v1/epcis/capture", Some(&neighbour), None, 200).await.as_array().unwrap().is_empty());

    // Nobody anonymous.
    for (method, p) in [(Method::GET, "/api/v1/epcis/events"), (Method::GET, path.as_str()), (Method::POST, "/api/v1/epcis/events"), (Method::POST, "/api/v1/epcis/capture"), (Method::GET, "/api/v1/epcis/capture")] {
        assert_error(srv.call(method, p, None, Some(single(9))).await, 401, "unauthenticated").await;
    }
});
