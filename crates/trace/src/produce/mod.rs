//! 农产品追溯 produce traceability: a farmer's or cooperative's production
//! batches, the trace codes printed on their labels, and what a consumer
//! sees when scanning one.
//!
//! Every step of a batch is an EPCIS 2.0 event stored through the EPCIS
//! store, so it lands in the tamper-evident log like any captured event:
//!
//! | step | event | bizStep |
//! |---|---|---|
//! | batch registered (planting) | ObjectEvent ADD | `commissioning` |
//! | farm input applied | TransformationEvent (input lot → batch) | `urn:shuxiang:bizstep:applying_input` |
//! | harvest | ObjectEvent OBSERVE | `urn:shuxiang:bizstep:harvesting` |
//! | quality test | ObjectEvent OBSERVE, `conformant`/`non_conformant` | `inspecting` |
//! | packing into labelled packages | AggregationEvent ADD (batch as parent) | `packing` |
//!
//! CBV has no business step for applying inputs or harvesting, so those use
//! Shuxiang URIs, as CBV allows. Domain details travel in extension fields
//! under the `sx` prefix (`urn:shuxiang:epcis:`), which the standard hash ID
//! covers: the consumer page is drawn from the logged events themselves, so
//! what it shows is what the log's signed checkpoints commit to.
//!
//! - `code`: the trace code format
//! - `qr`: QR images of codes
//! - `store`: batches, codes and the recording of steps
//! - `verify`: the verification badge of a scan
//! - `api`: the JSON routes

pub mod api;
pub mod code;
pub mod qr;
pub mod store;
pub mod verify;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::epcis::model::EPCIS_CONTEXT;
pub use code::{TraceCode, TraceCodeError};

/// The extension namespace of Shuxiang's fields in events.
pub const SX_NAMESPACE: &str = "urn:shuxiang:epcis:";
pub const BIZSTEP_APPLYING_INPUT: &str = "urn:shuxiang:bizstep:applying_input";
pub const BIZSTEP_HARVESTING: &str = "urn:shuxiang:bizstep:harvesting";

/// A new production batch.
#[derive(Debug, Clone, Deserialize)]
pub struct NewBatch {
    /// 作物 what is grown, e.g. 水稻, 脐橙, 绿茶.
    pub crop: String,
    /// The village-level region code where it is grown.
    pub village: String,
    /// The farm or cooperative named on the label (not a person's ID data).
    pub producer_name: String,
    /// 地块 the parcel, as the producer names it.
    #[serde(default)]
    pub parcel: Option<String>,
    #[serde(default)]
    pub lon: Option<f64>,
    #[serde(default)]
    pub lat: Option<f64>,
    /// Planting or start date (default: today).
    #[serde(default)]
    pub planted_on: Option<NaiveDate>,
}

/// One later step of a batch.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum BatchStep {
    /// 投入品使用: a registered pesticide or fertilizer applied.
    Input {
        product_id: i64,
        /// The 32-digit label code of the lot used, when known.
        #[serde(default)]
        label_code: Option<String>,
        applied_on: NaiveDate,
        amount: f64,
        /// `kg`, `g`, `L` or `mL`.
        unit: String,
    },
    /// 采收 harvest.
    Harvest { harvested_on: NaiveDate, quantity_kg: f64 },
    /// 检测 a quality test, e.g. 农药残留速测 pesticide-residue rapid test.
    Test {
        tested_on: NaiveDate,
        item: String,
        passed: bool,
        lab: String,
    },
}

/// Units an applied amount may be given in, with their UN/CEFACT codes.
pub const UNITS: &[(&str, &str)] = &[("kg", "KGM"), ("g", "GRM"), ("L", "LTR"), ("mL", "MLT")];

/// China Standard Time: dates are local dates, events carry the offset.
pub const TIME_ZONE: &str = "+08:00";

/// Midnight China time of `date`, as an EPCIS event time.
pub fn event_time(date: NaiveDate) -> String {
    format!("{}T00:00:00{TIME_ZONE}", date.format("%Y-%m-%d"))
}

/// The location of a village in events.
pub fn village_location(village: &str) -> String {
    format!("urn:shuxiang:village:{village}")
}

fn context() -> Value {
    json!([EPCIS_CONTEXT, {"sx": SX_NAMESPACE}])
}

/// The facts of a registered product an input event names.
#[derive(Debug, Clone)]
pub struct AppliedProduct {
    pub name: String,
    pub registration_number: Option<String>,
}

/// The commissioning event of a batch.
pub fn commissioning_event(batch_code: &TraceCode, new: &NewBatch, planted_on: NaiveDate) -> Value {
    let location = village_location(&new.village);
    let mut event = json!({
        "@context": context(),
        "type": "ObjectEvent",
        "eventTime": event_time(planted_on),
        "eventTimeZoneOffset": TIME_ZONE,
        "epcList": [batch_code.epc()],
        "action": "ADD",
        "bizStep": "commissioning",
        "disposition": "active",
        "readPoint": {"id": location},
        "bizLocation": {"id": location},
        "sx:crop": new.crop,
        "sx:producer": new.producer_name,
        "sx:village": new.village,
    });
    if let Some(parcel) = &new.parcel {
        event["sx:parcel"] = json!(parcel);
    }
    event
}

/// The event of a later step; `product` is given for input steps.
pub fn step_event(batch_code: &TraceCode, village: &str, step: &BatchStep, product: Option<&AppliedProduct>) -> Value {
    let location = village_location(village);
    let mut event = match step {
        BatchStep::Input {
            label_code,
            applied_on,
            amount,
            unit,
            ..
        } => {
            let product = product.expect("input steps name their product");
            let class = format!(
                "urn:shuxiang:input:{}",
                product.registration_number.as_deref().unwrap_or(&product.name)
            );
            let uom = UNITS
                .iter()
                .find(|(u, _)| u == unit)
                .map(|(_, code)| *code)
                .unwrap_or("KGM");
            let mut e = json!({
                "type": "TransformationEvent",
                "eventTime": event_time(*applied_on),
                "inputQuantityList": [{"epcClass": class, "quantity": amount, "uom": uom}],
                "outputEPCList": [batch_code.epc()],
                "bizStep": BIZSTEP_APPLYING_INPUT,
                "sx:product": product.name,
                "sx:amount": format!("{amount} {unit}"),
            });
            if let Some(reg) = &product.registration_number {
                e["sx:registrationNumber"] = json!(reg);
            }
            if let Some(label) = label_code {
                e["inputEPCList"] = json!([format!("urn:shuxiang:label:{label}")]);
            }
            e
        }
        BatchStep::Harvest {
            harvested_on,
            quantity_kg,
        } => json!({
            "type": "ObjectEvent",
            "eventTime": event_time(*harvested_on),
            "epcList": [batch_code.epc()],
            "action": "OBSERVE",
            "bizStep": BIZSTEP_HARVESTING,
            "sx:quantityKg": quantity_kg,
        }),
        BatchStep::Test {
            tested_on,
            item,
            passed,
            lab,
        } => json!({
            "type": "ObjectEvent",
            "eventTime": event_time(*tested_on),
            "epcList": [batch_code.epc()],
            "action": "OBSERVE",
            "bizStep": "inspecting",
            "disposition": if *passed { "conformant" } else { "non_conformant" },
            "sx:testItem": item,
            "sx:lab": lab,
        }),
    };
    event["@context"] = context();
    event["eventTimeZoneOffset"] = json!(TIME_ZONE);
    event["readPoint"] = json!({"id": location});
    event["bizLocation"] = json!({"id": location});
    event
}

/// The packing event putting labelled packages under their batch.
pub fn packing_event(batch_code: &TraceCode, village: &str, packages: &[TraceCode], on: NaiveDate) -> Value {
    let location = village_location(village);
    json!({
        "@context": context(),
        "type": "AggregationEvent",
        "eventTime": event_time(on),
        "eventTimeZoneOffset": TIME_ZONE,
        "parentID": batch_code.epc(),
        "childEPCs": packages.iter().map(TraceCode::epc).collect::<Vec<_>>(),
        "action": "ADD",
        "bizStep": "packing",
        "readPoint": {"id": location},
        "bizLocation": {"id": location},
    })
}

/// A batch as its producer and officials see it.
#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    pub id: i64,
    pub code: String,
    pub crop: String,
    pub village: String,
    pub producer_name: String,
    pub owner_id: i64,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub harvested: bool,
    /// The consumer page of the batch code.
    pub trace_path: String,
    /// Hash IDs of the batch's events, in the order they were recorded.
    pub events: Vec<String>,
    /// Codes of labelled packages.
    pub packages: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epcis::validate::validate_event;
    use crate::epcis_hash::{Context, event_hash_id};

    fn batch() -> NewBatch {
        NewBatch {
            crop: "水稻".into(),
            village: "360121200210".into(),
            producer_name: "小莲村水稻专业合作社".into(),
            parcel: Some("东片3号田".into()),
            lon: Some(115.95),
            lat: Some(28.45),
            planted_on: None,
        }
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Every event a batch can produce, valid against the GS1 schema.
    #[test]
    fn every_step_is_a_schema_valid_epcis_event() {
        let code = TraceCode::generate();
        let product = AppliedProduct {
            name: "吡虫啉".into(),
            registration_number: Some("PD20180001".into()),
        };
        let steps = [
            BatchStep::Input {
                product_id: 1,
                label_code: Some("11800011001000000000000000000001".into()),
                applied_on: date("2026-05-02"),
                amount: 0.5,
                unit: "kg".into(),
            },
            BatchStep::Harvest {
                harvested_on: date("2026-09-20"),
                quantity_kg: 5200.0,
            },
            BatchStep::Test {
                tested_on: date("2026-09-21"),
                item: "农药残留速测".into(),
                passed: true,
                lab: "南昌县农产品质量安全检测站".into(),
            },
        ];
        let mut events = vec![commissioning_event(&code, &batch(), date("2026-04-10"))];
        events.extend(
            steps
                .iter()
                .map(|s| step_event(&code, "360121200210", s, Some(&product))),
        );
        events.push(packing_event(
            &code,
            "360121200210",
            &[TraceCode::generate()],
            date("2026-09-22"),
        ));
        for e in &events {
            if let Err(v) = validate_event(e) {
                panic!("{e}\n{v:?}");
            }
            // The sx extension fields are hashed, so they are covered by the log.
            let with = event_hash_id(e, &Context::from_document(e)).unwrap();
            let mut changed = e.clone();
            let key = e.as_object().unwrap().keys().find(|k| k.starts_with("sx:")).cloned();
            if let Some(k) = key {
                changed[k.as_str()] = json!("tampered");
                assert_ne!(
                    with,
                    event_hash_id(&changed, &Context::from_document(&changed)).unwrap(),
                    "{k} hashed"
                );
            }
        }
    }

    #[test]
    fn events_are_dated_in_china_time() {
        assert_eq!(event_time(date("2026-09-20")), "2026-09-20T00:00:00+08:00");
    }
}
