//! Solves Solomon instances through the product path (Solomon file → our
//! dispatch model → vrp-core) and checks every solution with an independent
//! checker that reads only the parsed file. Prints the gap to
//! `data/vrptw/BKS.json`; quality is measured, not asserted.
//!
//! `SHUXIANG_VRPTW_INSTANCES=C101,R101,RC101` and `SHUXIANG_VRPTW_SECONDS=3`
//! choose other instances (under `data/vrptw/solomon/` or
//! `data/vrptw/homberger_200/`) and time limits.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use shuxiang_logistics::dispatch::solve;
use shuxiang_logistics::solomon::{Instance, parse};

const EPSILON: f64 = 1e-6;

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

/// Best-known distance: the distance-only record (`NAME_distance`) when
/// there is one, else the vehicles-first record.
fn best_known_distance(name: &str) -> f64 {
    let text = std::fs::read_to_string(data_dir().join("BKS.json")).unwrap();
    let bks: serde_json::Value = serde_json::from_str(&text).unwrap();
    [format!("{name}_distance"), name.to_string()]
        .iter()
        .find_map(|key| bks[key]["best_known_cost"].as_f64())
        .unwrap_or_else(|| panic!("{name} is not in BKS.json"))
}

/// Checks routes of customer numbers against the raw instance and returns
/// their total Euclidean distance.
fn check(instance: &Instance, routes: &[Vec<u32>]) -> Result<f64, String> {
    let depot = &instance.customers[0];
    let by_number = |n: u32| instance.customers[1..].iter().find(|c| c.number == n);
    let mut visits = std::collections::HashMap::new();
    if routes.len() > instance.vehicle_number {
        return Err(format!(
            "{} routes but only {} vehicles",
            routes.len(),
            instance.vehicle_number
        ));
    }
    let mut total = 0.0;
    for (r, route) in routes.iter().enumerate() {
        if route.is_empty() {
            return Err(format!("route {r} is empty"));
        }
        let (mut time, mut load, mut at) = (depot.ready_time, 0u64, depot);
        for &number in route {
            let customer = by_number(number).ok_or(format!("route {r}: {number} is not a customer"))?;
            *visits.entry(number).or_insert(0) += 1;
            let leg = (at.x - customer.x).hypot(at.y - customer.y);
            total += leg;
            time += leg;
            if time > customer.due_date + EPSILON {
                return Err(format!(
                    "route {r}: arrives at {number} at {time}, due {}",
                    customer.due_date
                ));
            }
            time = time.max(customer.ready_time) + customer.service_time;
            load += u64::from(customer.demand);
            at = customer;
        }
        if load > u64::from(instance.capacity) {
            return Err(format!("route {r}: load {load} exceeds capacity {}", instance.capacity));
        }
        let back = (at.x - depot.x).hypot(at.y - depot.y);
        total += back;
        if time + back > depot.due_date + EPSILON {
            return Err(format!(
                "route {r}: back at the depot at {}, due {}",
                time + back,
                depot.due_date
            ));
        }
    }
    for customer in &instance.customers[1..] {
        match visits.get(&customer.number) {
            Some(1) => {}
            Some(n) => return Err(format!("customer {} visited {n} times", customer.number)),
            None => return Err(format!("customer {} not visited", customer.number)),
        }
    }
    Ok(total)
}

#[test]
fn solomon_solutions_are_feasible() {
    let names = std::env::var("SHUXIANG_VRPTW_INSTANCES").unwrap_or_else(|_| "C101".into());
    let seconds: f64 = std::env::var("SHUXIANG_VRPTW_SECONDS").map_or(3.0, |s| s.parse().unwrap());
    for name in names.split(',').map(str::trim) {
        let instance = load(name);
        let started = Instant::now();
        let solution = solve(
            &instance.problem(),
            &instance.matrix(),
            Duration::from_secs_f64(seconds),
        )
        .unwrap();
        let elapsed = started.elapsed().as_secs_f64();

        assert!(
            solution.unassigned.is_empty(),
            "{name}: unassigned jobs {:?}",
            solution.unassigned
        );
        let routes = instance.customer_numbers(&solution.routes);
        let distance = check(&instance, &routes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            (distance - solution.distance).abs() < EPSILON,
            "{name}: {distance} vs {}",
            solution.distance
        );

        let bks = best_known_distance(name);
        println!(
            "{name}: {} vehicles, distance {distance:.2}, BKS {bks:.2}, gap {:+.2} %, {elapsed:.1} s (limit {seconds} s)",
            routes.len(),
            100.0 * (distance - bks) / bks,
        );
    }
}

#[test]
fn checker_rejects_infeasible_routes() {
    let instance = load("C101");
    let small = Instance {
        capacity: 5,
        ..instance.clone()
    };
    // customer 5 wants 10 units
    assert!(check(&small, &[vec![5]]).unwrap_err().contains("exceeds capacity"));
    let mut one_each: Vec<Vec<u32>> = (1..=25).map(|n| vec![n]).collect();
    assert!(check(&instance, &one_each).unwrap_err().contains("not visited"));
    one_each[1] = vec![1];
    assert!(check(&instance, &one_each).unwrap_err().contains("visited 2 times"));
    // customer 1 opens at 912 and 5 closes at 67
    assert!(check(&instance, &[vec![1, 5]]).unwrap_err().contains("arrives at 5"));
}
