//! EPCIS XML capture: every XML document of the hash vectors reads into a
//! schema-valid JSON-LD document; malformed and unsupported XML is refused
//! with line and column; and over a real server on each backend, XML
//! documents and single events are captured, served back as JSON with the
//! reference hash IDs, and refused documents store nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Client, Response};
use serde_json::{Value, json};
use shuxiang_core::auth;
use shuxiang_core::db::Backend;
use shuxiang_core::testing::TestDb;
use shuxiang_trace::epcis::model::HASH_ID_KEY;
use shuxiang_trace::epcis::validate::check_document;
use shuxiang_trace::epcis::xml::{MAX_DEPTH, XmlError, document_to_json, event_to_json, is_xml_content_type};
use shuxiang_trace::epcis_hash::{Context, document_hash_ids, event_hash_id};
use tokio::sync::oneshot;

const ADMIN_PASSWORD: &str = "admin password 1";
const USER_PASSWORD: &str = "a long secret phrase";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/epcis/event-hash-vectors/examples")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(examples().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn expected_hashes(name: &str) -> Vec<String> {
    let path = examples().join(name).with_extension("hashes");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_xml_capture_document_of_the_vectors_is_schema_valid_json() {
    let mut documents: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    documents.sort();
    let mut checked = 0;
    for path in documents {
        let json =
            document_to_json(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if json["type"] == "EPCISQueryDocument" {
            continue;
        }
        let document = check_document(json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            document.event_violations.is_empty(),
            "{}: {:?}",
            path.display(),
            document.event_violations
        );
        checked += 1;
    }
    assert!(checked >= 15, "{checked} capture documents checked");
}

#[test]
fn the_xml_binding_maps_onto_the_json_one() {
    let json = document_to_json(&read("epcisDocWithVariousEventTypes.xml")).unwrap();
    let events = json["epcisBody"]["eventList"].as_array().unwrap();
    assert_eq!(events.len(), expected_hashes("epcisDocWithVariousEventTypes.xml").len());
    let first = &events[0];
    assert_eq!(first["type"], "ObjectEvent");
    assert_eq!(first["bizStep"], "departing");
    assert_eq!(first["readPoint"], json!({"id": "urn:epc:id:sgln:5200001.99901.0"}));
    assert_eq!(
        first["bizTransactionList"][0],
        json!({"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:5200001000008:4711"})
    );
    assert_eq!(first["sourceList"][0]["type"], "possessing_party");
    // The document's own cbvmda namespace (with its trailing colon) is kept.
    assert_eq!(events[3]["ilmd"], json!({"cbvmda:bestBeforeDate": "2019-10-21"}));
    assert_eq!(events[3]["quantityList"][0]["quantity"], json!(600));
    assert!(
        json["@context"][1]["cbvmda"] == "urn:epcglobal:cbv:mda:",
        "{}",
        json["@context"]
    );

    // Namespaces that would clash are renamed; a prefix that is a URI scheme too.
    let json = document_to_json(&read("ReferenceEventHashAlgorithm.xml")).unwrap();
    let event = &json["epcisBody"]["eventList"][0];
    assert_eq!(event["example:myField3"], json!({"example:mySubField3": ["3", "1"]}));
    assert_eq!(json["@context"][1], json!({"example": "https://ns.example.com/epcis/"}));

    let json = document_to_json(&read("SensorDataExamples.xml")).unwrap();
    let report = &json["epcisBody"]["eventList"][0]["sensorElementList"][0]["sensorReport"][0];
    assert_eq!(report["value"], json!(26.0));
    assert_eq!(report["type"], "gs1:MT-Temperature");

    // 1.2-style wrappers are transparent.
    let json = document_to_json(&read("epcisXmlDocHavingEventWithIgnoreFields.xml")).unwrap();
    assert_eq!(
        json["epcisBody"]["eventList"][0]["quantityList"][0]["quantity"],
        json!(150)
    );
    assert_eq!(
        json["repository-x:ignoreFields"],
        json!(["example:testField1", "example:testField2"])
    );
}

fn position(e: &XmlError) -> (usize, usize) {
    match e {
        XmlError::Malformed { line, column, .. } | XmlError::Unsupported { line, column, .. } => (*line, *column),
    }
}

const HEAD: &str = r#"<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0" creationDate="2026-03-01T08:00:00Z">"#;

fn doc(events: &str) -> String {
    format!("{HEAD}\n<EPCISBody>\n<EventList>\n{events}\n</EventList>\n</EPCISBody>\n</epcis:EPCISDocument>")
}

fn object_event(n: u32, action: &str) -> String {
    format!(
        "<ObjectEvent><eventTime>2026-03-01T08:00:{n:02}+08:00</eventTime><eventTimeZoneOffset>+08:00</eventTimeZoneOffset>\
         <epcList><epc>urn:epc:id:sgtin:0614141.107346.{n}</epc></epcList><action>{action}</action>\
         <bizStep>urn:epcglobal:cbv:bizstep:shipping</bizStep></ObjectEvent>"
    )
}

#[test]
fn malformed_xml_is_refused_with_its_position() {
    let cases: [(String, (usize, usize)); 5] = [
        (doc("<ObjectEvent><eventTime>x</eventTimes></ObjectEvent>"), (4, 26)),
        (format!("{HEAD}\n<EPCISBody>"), (2, 12)),
        (doc("<ObjectEvent><x:foo>1</x:foo></ObjectEvent>"), (4, 14)),
        ("not xml at all".to_owned(), (1, 1)),
        (format!("{}<second/>", doc("")), (7, 23)),
    ];
    for (text, at) in cases {
        let e = document_to_json(text.as_bytes()).expect_err(&text);
        assert!(matches!(e, XmlError::Malformed { .. }), "{text}: {e}");
        assert_eq!(position(&e), at, "{text}: {e}");
    }
    let e = document_to_json(b"<a>\xff</a>").unwrap_err();
    assert!(e.to_string().contains("UTF-8"), "{e}");
}

#[test]
fn unsupported_content_is_refused_naming_it() {
    let cases = [
        (doc("<ObjectEvent><colour>red</colour></ObjectEvent>"), "<colour>"),
        (doc("<CustomEvent/>"), "<CustomEvent>"),
        ("<Order xmlns=\"urn:x\"/>".to_owned(), "<Order>"),
        (
            doc("<ObjectEvent><epcList><epc>a</epc><item>b</item></epcList></ObjectEvent>"),
            "<item>",
        ),
        (
            format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>{}", doc("")),
            "ISO-8859-1",
        ),
        (
            doc("<ObjectEvent><eventID>&custom;</eventID></ObjectEvent>"),
            "&custom;",
        ),
    ];
    for (text, named) in cases {
        let e = document_to_json(text.as_bytes()).expect_err(&text);
        assert!(matches!(e, XmlError::Unsupported { .. }), "{text}: {e}");
        assert!(e.to_string().contains(named), "{text}: {e}");
    }
    let deep = format!(
        "{}{}",
        "<x:a xmlns:x=\"urn:x\">".repeat(MAX_DEPTH + 1),
        "</x:a>".repeat(MAX_DEPTH + 1)
    );
    let e = document_to_json(deep.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("deeper"), "{e}");
}

#[test]
fn single_events_come_bare_or_alone_in_a_document() {
    let bare = event_to_json(object_event(1, "OBSERVE").as_bytes()).unwrap();
    assert_eq!(bare["type"], "ObjectEvent");
    assert!(bare["@context"].is_array());
    let wrapped = event_to_json(doc(&object_event(1, "OBSERVE")).as_bytes()).unwrap();
    assert_eq!(bare, wrapped);
    let e =
        event_to_json(doc(&format!("{}{}", object_event(1, "ADD"), object_event(2, "ADD"))).as_bytes()).unwrap_err();
    assert!(e.to_string().contains("holds 2"), "{e}");
    assert!(is_xml_content_type("application/xml; charset=utf-8"));
    assert!(is_xml_content_type("Text/XML"));
    assert!(!is_xml_content_type("application/ld+json"));
}

// ---------------------------------------------------------------------------
// Over HTTP

struct Server {
    base: String,
    http: Client,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let r = self
            .http
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login of {username}");
        r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
    }

    async fn user_with(&self, admin: &str, username: &str, role: &str, scope: &str) -> String {
        let r = self
            .http
            .post(self.url("/api/v1/users"))
            .bearer_auth(admin)
            .json(&json!({
                "username": username, "password": USER_PASSWORD, "display_name": username,
                "phone": "13912345678", "roles": [{"role": role, "scope": scope}]
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "creating {username}: {}", r.text().await.unwrap());
        self.login(username, USER_PASSWORD).await
    }

    async fn post_xml(&self, token: &str, path: &str, behaviour: Option<&str>, body: Vec<u8>) -> Response {
        let mut req = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/xml")
            .body(body);
        if let Some(b) = behaviour {
            req = req.header("GS1-Capture-Error-Behaviour", b);
        }
        req.send().await.unwrap()
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        let r = self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// Captures an XML document and waits for its job; returns the job.
    async fn capture(&self, token: &str, behaviour: Option<&str>, body: Vec<u8>) -> Value {
        let r = self.post_xml(token, "/api/v1/epcis/capture", behaviour, body).await;
        assert_eq!(r.status(), 202);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        for _ in 0..400 {
            let job = self.get(token, &location).await;
            if job["running"] == false {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("capture job {location} did not finish");
    }

    async fn events(&self, token: &str) -> Vec<Value> {
        let page = self.get(token, "/api/v1/epcis/events?perPage=1000").await;
        page["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn jobs(&self, token: &str) -> usize {
        self.get(token, "/api/v1/epcis/capture").await.as_array().unwrap().len()
    }
}

/// The hash ID an event was served with.
fn served_hash(event: &Value) -> String {
    event
        .get(HASH_ID_KEY)
        .or_else(|| event.get("eventID"))
        .and_then(Value::as_str)
        .unwrap()
        .to_owned()
}

async fn assert_error(r: Response, status: u16, code: &str, mentions: &str) {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], code, "{v}");
    assert!(v["message"].as_str().unwrap().contains(mentions), "{v}");
}

async fn scenario(srv: &Server) {
    let admin = srv.login("admin", ADMIN_PASSWORD).await;
    let farmer = srv.user_with(&admin, "xmlfarmer", "farmer", "360730").await;
    let expert = srv.user_with(&admin, "xmlexpert", "expert", "360730").await;

    // A document of every event type: stored, served as JSON under the
    // reference hash IDs, each event hashing alone to its ID.
    let name = "epcisDocWithVariousEventTypes.xml";
    let job = srv.capture(&farmer, None, read(name)).await;
    let expected = expected_hashes(name);
    assert_eq!(expected.len(), 13);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["capturedCount"], 13);
    let served = srv.events(&farmer).await;
    assert_eq!(served.iter().map(served_hash).collect::<Vec<_>>(), expected);
    for event in &served {
        assert_eq!(
            event_hash_id(event, &Context::from_document(event)).unwrap(),
            served_hash(event),
            "{event}"
        );
    }

    // User extensions survive storage: the served event still hashes to the
    // reference value through its own @context.
    let name = "ReferenceEventHashAlgorithm.xml";
    let job = srv.capture(&farmer, Some("rollback"), read(name)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let id = &expected_hashes(name)[0];
    let event = srv
        .get(
            &farmer,
            &format!(
                "/api/v1/epcis/events/{}",
                shuxiang_trace::epcis::api::encode_path_segment(id)
            ),
        )
        .await;
    assert_eq!(event["example:myField2"], "0");
    assert_eq!(event_hash_id(&event, &Context::from_document(&event)).unwrap(), *id);
    let before = srv.events(&farmer).await.len();
    assert_eq!(before, 14);

    // Refused at once, nothing stored, no job.
    let jobs = srv.jobs(&farmer).await;
    let broken = doc("<ObjectEvent>\n<eventTime>2026-03-01T08:00:00Z</eventTim>\n</ObjectEvent>");
    let r = srv
        .post_xml(&farmer, "/api/v1/epcis/capture", None, broken.into_bytes())
        .await;
    assert_error(r, 400, "malformed_xml", "line 5").await;
    let r = srv
        .post_xml(
            &farmer,
            "/api/v1/epcis/capture",
            None,
            doc("<ObjectEvent><colour/></ObjectEvent>").into_bytes(),
        )
        .await;
    assert_error(r, 422, "unsupported_xml", "<colour>").await;
    assert_eq!(srv.jobs(&farmer).await, jobs);
    assert_eq!(srv.events(&farmer).await.len(), before);

    // Rollback and proceed, as for JSON: one event with an invalid action.
    let mixed = doc(&format!("{}{}", object_event(1, "OBSERVE"), object_event(2, "LOOK"))).into_bytes();
    let job = srv.capture(&farmer, None, mixed.clone()).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["errors"][0]["pointer"], "/epcisBody/eventList/1/action", "{job}");
    assert_eq!(srv.events(&farmer).await.len(), before);
    let job = srv.capture(&farmer, Some("proceed"), mixed).await;
    assert_eq!(job["status"], "partial", "{job}");
    assert_eq!(job["capturedCount"], 1);
    assert_eq!(srv.events(&farmer).await.len(), before + 1);

    // A single event in XML, synchronously; the same event again is the same.
    let single = object_event(3, "ADD").into_bytes();
    let expected = event_hash_id(&event_to_json(&single).unwrap(), &Context::default()).unwrap();
    let r = srv
        .post_xml(&farmer, "/api/v1/epcis/events", None, single.clone())
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body[HASH_ID_KEY], expected);
    let r = srv
        .post_xml(&farmer, "/api/v1/epcis/events", None, single.clone())
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(srv.events(&farmer).await.len(), before + 2);
    let r = srv
        .post_xml(
            &farmer,
            "/api/v1/epcis/events",
            None,
            b"<ObjectEvent><eventTime>".to_vec(),
        )
        .await;
    assert_error(r, 400, "malformed_xml", "line 1").await;

    // Experts do not capture, in XML either.
    let r = srv.post_xml(&expert, "/api/v1/epcis/capture", None, read(name)).await;
    assert_eq!(r.status(), 403);
    let r = srv.post_xml(&expert, "/api/v1/epcis/events", None, single).await;
    assert_eq!(r.status(), 403);
    assert_eq!(srv.events(&admin).await.len(), before + 2);

    // The document-level vectors agree with what was stored.
    let stored = document_hash_ids(&document_to_json(&read("epcisDocWithVariousEventTypes.xml")).unwrap()).unwrap();
    assert_eq!(stored, expected_hashes("epcisDocWithVariousEventTypes.xml"));
}

/// Runs [`scenario`] on a real server over a fresh database of `backend`;
/// `false` when that backend is not configured.
async fn with_server(backend: Backend) -> bool {
    let Some(t) = TestDb::new(backend, &shuxiang_web::all_migrations()).await else {
        eprintln!("PostgreSQL leg skipped: {} is not set", shuxiang_core::testing::PG_ENV);
        return false;
    };
    auth::ensure_admin(&t.db, Some(ADMIN_PASSWORD)).await.unwrap();
    let signer = shuxiang_trace::checkpoint::Signer::generate("shuxiang.test/trace").unwrap();
    let keys = shuxiang_trace::keys::TraceLogKeys {
        signer: std::sync::Arc::new(signer),
        origin: "shuxiang.test/trace".into(),
    };
    let telemetry = shuxiang_telemetry::ingest::TelemetryState::new(t.db.clone(), Default::default());
    let state = shuxiang_web::new_state(t.db.clone(), shuxiang_web::WebConfig::default(), keys, telemetry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(shuxiang_web::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let srv = Server {
        base,
        http: Client::new(),
    };
    scenario(&srv).await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    t.finish().await;
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_capture_over_http_on_sqlite() {
    assert!(with_server(Backend::Sqlite).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_capture_over_http_on_postgres() {
    with_server(Backend::Postgres).await;
}
