//! The pure cold-chain rules: MKT against hand-computed values, excursions
//! at band edges and across directions, handover legs, gaps, and no false
//! excursions on in-band data.

use proptest::prelude::*;
use shuxiang_logistics::coldchain::{
    Band, BandSource, Direction, ListSource, Reading, SeriesError, TemperatureClass, TemperatureSource, analyse,
    excursions, gaps, mean_kinetic_temperature, resolve_band, summary,
};

const MINUTE: i64 = 60_000;

fn series(temps: &[f64]) -> Vec<Reading> {
    temps
        .iter()
        .enumerate()
        .map(|(i, &celsius)| Reading {
            ts_ms: i as i64 * MINUTE,
            celsius,
        })
        .collect()
}

fn band(min_c: Option<f64>, max_c: Option<f64>) -> Band {
    Band { min_c, max_c }
}

#[test]
fn mkt_of_a_constant_series_is_that_temperature() {
    for t in [-25.0, 0.0, 4.0, 13.5, 30.0] {
        let mkt = mean_kinetic_temperature(&[t; 10]).unwrap();
        assert!((mkt - t).abs() < 1e-9, "{t} → {mkt}");
    }
    assert_eq!(mean_kinetic_temperature(&[]), None);
}

#[test]
fn mkt_of_two_points_matches_the_hand_computation() {
    // ΔH/R = 83144 / 8.3144 = 10000 K. For 0 °C and 10 °C (273.15 K, 283.15 K):
    //   10000/273.15 = 36.609921, 10000/283.15 = 35.316970, difference 1.292951
    //   mean of exponentials = e^-35.316970 · (1 + e^-1.292951) / 2 = e^-35.316970 · 0.637234
    //   −ln(mean) = 35.316970 + 0.450594 = 35.767564
    //   Tk = 10000 / 35.767564 = 279.5827 K = 6.4327 °C
    // — above the arithmetic mean of 5 °C: warm spells weigh more.
    let mkt = mean_kinetic_temperature(&[0.0, 10.0]).unwrap();
    assert!((mkt - 6.4327).abs() < 1e-3, "{mkt}");

    // 2, 4, 6 and 20 °C (a 20 °C spell in a chilled run), computed the same
    // way: 11.4057 °C, against an arithmetic mean of 8 °C.
    let mkt = mean_kinetic_temperature(&[2.0, 4.0, 6.0, 20.0]).unwrap();
    assert!((mkt - 11.4057).abs() < 1e-3, "{mkt}");
}

#[test]
fn readings_on_the_band_edges_are_in_band() {
    let leafy = band(Some(0.0), Some(4.0));
    assert!(excursions(&series(&[2.0, 4.0, 4.0, 0.0, 0.0, 3.9]), &leafy, &[]).is_empty());
    let frozen = band(None, Some(-18.0));
    assert!(excursions(&series(&[-25.0, -18.0, -30.0]), &frozen, &[]).is_empty());
}

#[test]
fn an_excursion_starts_at_the_first_reading_out_of_band_and_ends_at_the_first_back_in() {
    let leafy = band(Some(0.0), Some(4.0));
    let found = excursions(&series(&[2.0, 4.0, 4.1, 5.5, 4.0, 3.0]), &leafy, &[]);
    assert_eq!(found.len(), 1);
    let e = &found[0];
    assert_eq!(e.direction, Direction::TooWarm);
    assert_eq!(
        (e.start_ms, e.end_ms, e.duration_ms),
        (2 * MINUTE, 4 * MINUTE, 2 * MINUTE)
    );
    assert_eq!((e.min_c, e.max_c, e.readings, e.ongoing), (4.1, 5.5, 2, false));
}

#[test]
fn bananas_too_cold_is_an_excursion() {
    let (bananas, source) = resolve_band(None, "bananas", TemperatureClass::Chilled);
    assert_eq!(source, BandSource::Commodity);
    assert_eq!(bananas, band(Some(13.0), Some(14.0)));
    let found = excursions(&series(&[13.5, 12.9, 12.0, 13.0, 14.0, 14.2]), &bananas, &[]);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].direction, Direction::TooCold);
    assert_eq!((found[0].start_ms, found[0].end_ms), (MINUTE, 3 * MINUTE));
    assert_eq!((found[0].min_c, found[0].max_c), (12.0, 12.9));
    assert_eq!(found[1].direction, Direction::TooWarm);
    assert!(found[1].ongoing);
    assert_eq!(
        (found[1].start_ms, found[1].end_ms, found[1].duration_ms),
        (5 * MINUTE, 5 * MINUTE, 0)
    );
}

#[test]
fn a_jump_across_the_band_starts_a_new_excursion() {
    let chilled = TemperatureClass::Chilled.default_band();
    let found = excursions(&series(&[3.0, 9.0, -1.0, -2.0, 5.0]), &chilled, &[]);
    let summary: Vec<(Direction, i64, i64, usize)> = found
        .iter()
        .map(|e| (e.direction, e.start_ms, e.end_ms, e.readings))
        .collect();
    assert_eq!(
        summary,
        [
            (Direction::TooWarm, MINUTE, 2 * MINUTE, 1),
            (Direction::TooCold, 2 * MINUTE, 4 * MINUTE, 2)
        ]
    );
}

#[test]
fn excursions_are_placed_in_their_handover_leg() {
    let chilled = TemperatureClass::Chilled.default_band();
    // Legs start at minute 1 (farmer → driver) and minute 4 (driver → warehouse).
    let legs = [MINUTE, 4 * MINUTE];
    let found = excursions(&series(&[9.0, 3.0, 9.0, 3.0, 3.0, 9.0]), &chilled, &legs);
    assert_eq!(
        found.iter().map(|e| e.leg).collect::<Vec<_>>(),
        [None, Some(0), Some(1)]
    );
}

#[test]
fn band_resolution_prefers_the_shipment_then_the_commodity_then_the_class() {
    let own = band(Some(1.0), Some(2.0));
    assert_eq!(
        resolve_band(Some(own), "leafy_vegetables", TemperatureClass::Chilled),
        (own, BandSource::Shipment)
    );
    assert_eq!(
        resolve_band(None, "leafy_vegetables", TemperatureClass::Chilled),
        (band(Some(0.0), Some(4.0)), BandSource::Commodity)
    );
    assert_eq!(
        resolve_band(None, "pork", TemperatureClass::Frozen),
        (band(None, Some(-18.0)), BandSource::Class)
    );
    assert_eq!(
        resolve_band(None, "rice", TemperatureClass::Ambient),
        (band(None, None), BandSource::Class)
    );
    assert!(band(Some(5.0), Some(4.0)).validate().is_err());
    assert!(band(Some(f64::NAN), None).validate().is_err());
    assert!(band(None, Some(-61.0)).validate().is_err());
    assert!(band(Some(4.0), Some(4.0)).validate().is_ok());
}

#[test]
fn gaps_are_intervals_longer_than_the_maximum() {
    let at = |ts: &[i64]| -> Vec<Reading> { ts.iter().map(|&ts_ms| Reading { ts_ms, celsius: 3.0 }).collect() };
    let readings = at(&[0, 60, 120, 400]);
    let found = gaps(&readings, 180, None);
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].from_ms, found[0].to_ms, found[0].duration_ms),
        (120, 400, 280)
    );
    // Exactly the maximum is not a gap; the window's tail (400 → 600) is.
    let found = gaps(&at(&[0, 180, 360, 400]), 180, Some((-100, 600)));
    assert_eq!(
        found.iter().map(|g| (g.from_ms, g.to_ms)).collect::<Vec<_>>(),
        [(400, 600)]
    );
    // A window without readings is one gap.
    let found = gaps(&[], 180, Some((0, 1000)));
    assert_eq!(found.iter().map(|g| g.duration_ms).collect::<Vec<_>>(), [1000]);
}

#[test]
fn analyse_summarises_and_rejects_bad_series() {
    let readings = series(&[2.0, 4.0, 6.0, 20.0]);
    let a = analyse(&readings, &band(Some(0.0), Some(8.0)), 2 * MINUTE, None, &[]).unwrap();
    let s = a.summary.unwrap();
    assert_eq!((s.count, s.min_c, s.max_c, s.mean_c), (4, 2.0, 20.0, 8.0));
    assert!((a.mkt_c.unwrap() - 11.4057).abs() < 1e-3);
    assert_eq!(a.excursions.len(), 1);
    assert!(a.gaps.is_empty());

    let mut backwards = series(&[1.0, 2.0]);
    backwards[1].ts_ms = -1;
    assert_eq!(
        analyse(&backwards, &band(None, None), MINUTE, None, &[]).unwrap_err(),
        SeriesError::OutOfOrder { index: 1 }
    );
    assert_eq!(
        analyse(&series(&[1.0, f64::NAN]), &band(None, None), MINUTE, None, &[]).unwrap_err(),
        SeriesError::NotFinite { index: 1 }
    );
    assert_eq!(summary(&[]), None);
}

#[tokio::test]
async fn list_source_returns_a_devices_readings_within_the_window() {
    let source = ListSource {
        series: vec![(7, series(&[1.0, 2.0, 3.0, 4.0])), (8, series(&[9.0]))],
    };
    let got = source.readings(7, MINUTE, 2 * MINUTE).await.unwrap();
    assert_eq!(got.iter().map(|r| r.celsius).collect::<Vec<_>>(), [2.0, 3.0]);
    assert!(source.readings(9, 0, 10 * MINUTE).await.unwrap().is_empty());
}

/// A band with at least one limit, and readings inside it (edges included).
fn band_and_inside() -> impl Strategy<Value = (Band, Vec<f64>)> {
    (-40.0f64..30.0, 0.0f64..15.0, 0usize..3).prop_flat_map(|(lo, width, shape)| {
        let hi = lo + width;
        let b = match shape {
            0 => band(Some(lo), Some(hi)),
            1 => band(None, Some(hi)),
            _ => band(Some(lo), None),
        };
        let inside = prop_oneof![Just(lo), Just(hi), lo..=hi];
        (Just(b), prop::collection::vec(inside, 0..200))
    })
}

proptest! {
    #[test]
    fn no_false_excursions_on_in_band_data((b, temps) in band_and_inside()) {
        prop_assert!(excursions(&series(&temps), &b, &[]).is_empty());
    }

    #[test]
    fn every_out_of_band_reading_lies_in_exactly_one_excursion(temps in prop::collection::vec(-5.0f64..12.0, 0..200)) {
        let b = band(Some(0.0), Some(8.0));
        let readings = series(&temps);
        let found = excursions(&readings, &b, &[]);
        let out_of_band = readings.iter().filter(|r| b.side(r.celsius).is_some()).count();
        prop_assert_eq!(found.iter().map(|e| e.readings).sum::<usize>(), out_of_band);
        for e in &found {
            let first = readings.iter().find(|r| r.ts_ms == e.start_ms).unwrap();
            prop_assert_eq!(b.side(first.celsius), Some(e.direction));
            if e.start_ms > 0 {
                // The reading before the start is on another side (in band or across).
                let before = readings.iter().find(|r| r.ts_ms == e.start_ms - MINUTE).unwrap();
                prop_assert_ne!(b.side(before.celsius), Some(e.direction));
            }
            prop_assert!(e.min_c <= e.max_c);
        }
    }

    #[test]
    fn mkt_lies_between_the_mean_and_the_maximum(temps in prop::collection::vec(-30.0f64..40.0, 1..100)) {
        let mkt = mean_kinetic_temperature(&temps).unwrap();
        let mean = temps.iter().sum::<f64>() / temps.len() as f64;
        let max = temps.iter().copied().fold(f64::MIN, f64::max);
        prop_assert!(mkt >= mean - 1e-9 && mkt <= max + 1e-9, "mean {} mkt {} max {}", mean, mkt, max);
    }
}
