//! Solves Solomon instances through the product path (Solomon file → our
//! dispatch model → vrp-core) and checks every solution with the independent
//! checker (`solomon::check`, which reads only the parsed file). Prints the
//! gap to `data/vrptw/BKS.json`; quality is measured by the `vrptw`
//! benchmark, not asserted here.
//!
//! `SHUXIANG_VRPTW_INSTANCES=C101,R101,RC101` and `SHUXIANG_VRPTW_SECONDS=3`
//! choose other instances (under `data/vrptw/solomon/` or
//! `data/vrptw/homberger_200/`) and time limits.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use shuxiang_logistics::dispatch::{Objective, Settings};
use shuxiang_logistics::solomon::{self, BestKnown, Instance, check, gap, parse};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/vrptw")
}

fn load(name: &str) -> Instance {
    let dir = data_dir();
    let path = [
        dir.join("solomon").join(format!("{name}.txt")),
        dir.join("homberger_200").join(format!("{name}.txt")),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("no instance file for {name}"));
    parse(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn best_known() -> BestKnown {
    BestKnown::parse(&std::fs::read_to_string(data_dir().join("BKS.json")).unwrap()).unwrap()
}

#[test]
fn solomon_solutions_are_feasible() {
    let names = std::env::var("SHUXIANG_VRPTW_INSTANCES").unwrap_or_else(|_| "C101".into());
    let seconds: f64 = std::env::var("SHUXIANG_VRPTW_SECONDS").map_or(3.0, |s| s.parse().unwrap());
    let bks = best_known();
    for name in names.split(',').map(str::trim) {
        let instance = load(name);
        for objective in [Objective::Distance, Objective::Vehicles] {
            let settings = Settings {
                objective,
                ..Settings::new(Duration::from_secs_f64(seconds))
            };
            let started = Instant::now();
            let solved = solomon::solve(&instance, &settings).unwrap();
            let elapsed = started.elapsed().as_secs_f64();

            assert!(
                solved.unassigned.is_empty(),
                "{name}: unassigned {:?}",
                solved.unassigned
            );
            let distance = check(&instance, &solved.routes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                (distance - solved.distance).abs() < 1e-6,
                "{name}: checker {distance} vs solver {}",
                solved.distance
            );
            let best = match objective {
                Objective::Distance => bks.distance(name),
                Objective::Vehicles => bks.vehicles_first(name),
            }
            .unwrap_or_else(|| panic!("{name} is not in BKS.json"));
            println!(
                "{name} ({objective:?}): {} vehicles (best known {}), distance {distance:.2} (best known {:.2}, gap {:+.2} %), {elapsed:.1} s (limit {seconds} s)",
                solved.routes.len(),
                best.vehicles,
                best.distance,
                gap(distance, best.distance),
            );
        }
    }
}

#[test]
fn checker_rejects_infeasible_routes() {
    let instance = load("C101");
    let small = Instance {
        capacity: 5,
        ..instance.clone()
    };
    let reason = |instance: &Instance, routes: &[Vec<u32>]| check(instance, routes).unwrap_err().0;
    // customer 5 wants 10 units
    assert!(reason(&small, &[vec![5]]).contains("exceeds capacity"));
    let mut one_each: Vec<Vec<u32>> = (1..=25).map(|n| vec![n]).collect();
    assert!(reason(&instance, &one_each).contains("not visited"));
    one_each[1] = vec![1];
    assert!(reason(&instance, &one_each).contains("visited 2 times"));
    // customer 1 opens at 912 and 5 closes at 67
    assert!(reason(&instance, &[vec![1, 5]]).contains("arrives at 5"));
    assert!(reason(&instance, &[vec![101]]).contains("not a customer"));
    let too_many: Vec<Vec<u32>> = (1..=26).map(|n| vec![n]).collect();
    assert!(reason(&instance, &too_many).contains("only 25 vehicles"));
}

#[test]
fn best_known_records_follow_both_conventions() {
    let bks = best_known();
    // R101: 19 vehicles / 1645.79 fewest-vehicles-first, 1642.88 with 20 by distance alone
    let r101 = bks.vehicles_first("R101").unwrap();
    assert_eq!((r101.vehicles, r101.distance), (19, 1645.79));
    let r101 = bks.distance("R101").unwrap();
    assert_eq!((r101.vehicles, r101.distance), (20, 1642.88));
    // Homberger names are lower-case in the file's key and upper-case in the instance files
    assert_eq!(bks.distance("C1_2_1"), bks.vehicles_first("c1_2_1"));
    assert!(bks.vehicles_first("X999").is_none());
    assert!((gap(101.0, 100.0) - 1.0).abs() < 1e-12);
}
