//! VRPTW benchmark of dispatch (调度): solves the 56 Solomon and the 60
//! Gehring & Homberger 200-customer instances in `data/vrptw` through the
//! same path as `shuxiang dispatch solve` (`solomon::solve`, i.e. the
//! product's `dispatch::solve_with` on vrp-core), checks every solution with
//! the independent checker, and compares it with the best-known solutions in
//! `data/vrptw/BKS.json`.
//!
//! The solver runs in this process rather than through the binary: a solve
//! takes seconds, process start milliseconds, and in-process runs can share
//! the cores (`--jobs`) without a shell around them.
//!
//! Baseline: VROOM's published mean gap of 1.63 % on Solomon (the figure the
//! issue cites, from VROOM's own benchmark; not measured here), printed
//! beside ours.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use shuxiang_bench::{load_average, machine, workspace_root};
use shuxiang_logistics::dispatch::{Objective, Settings};
use shuxiang_logistics::solomon::{self, BestKnown, Instance, gap};

/// VROOM's published mean gap to the best-known Solomon solutions, in percent.
const VROOM_PUBLISHED_MEAN_GAP: f64 = 1.63;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ObjectiveArg {
    Distance,
    Vehicles,
}

#[derive(Parser)]
#[command(about = "Solves the Solomon and Homberger-200 VRPTW instances and compares with the best known")]
struct Args {
    /// Search time limit per instance, seconds.
    #[arg(long, default_value_t = 10.0)]
    time_limit: f64,
    /// Only instances whose name contains one of these (comma-separated, case-insensitive), e.g. `C1,r2_2`.
    #[arg(long)]
    filter: Option<String>,
    /// distance: shortest total distance (gap to the `NAME_distance` record);
    /// vehicles: fewest vehicles, then distance (gap to the `NAME` record).
    #[arg(long, value_enum, default_value = "distance")]
    objective: ObjectiveArg,
    /// Instances solved at the same time (they share the cores).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Stop an instance early after this many seconds without progress (0: never).
    #[arg(long)]
    stagnation: Option<f64>,
    /// Write the per-instance table and the summary as markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Directory with solomon/, homberger_200/ and BKS.json.
    #[arg(long)]
    data: Option<PathBuf>,
}

/// One solved instance.
struct Row {
    name: String,
    family: String,
    set: &'static str,
    vehicles: usize,
    distance: f64,
    /// The record compared against under the chosen objective.
    best: solomon::Record,
    gap: f64,
    /// The fewest-vehicles record, for the vehicles column.
    best_vehicles: Option<solomon::Record>,
    seconds: f64,
}

/// The instance files under `data`, Solomon first, filtered, in name order.
fn instances(data: &Path, filter: Option<&str>) -> Result<Vec<(PathBuf, &'static str)>> {
    let wanted: Vec<String> = filter
        .map(|f| f.split(',').map(|s| s.trim().to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let mut found = Vec::new();
    for (dir, set) in [("solomon", "Solomon"), ("homberger_200", "Homberger 200")] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(data.join(dir))
            .with_context(|| format!("reading {}", data.join(dir).display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.retain(|p| p.extension().is_some_and(|e| e == "txt"));
        files.sort_by_key(|p| natural_key(p));
        for path in files {
            let stem = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_ascii_lowercase();
            if wanted.is_empty() || wanted.iter().any(|w| stem.contains(w.as_str())) {
                found.push((path, set));
            }
        }
    }
    Ok(found)
}

/// Sorts `c1_2_10` after `c1_2_9`.
fn natural_key(path: &Path) -> (String, u32) {
    let stem = path
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .to_ascii_uppercase();
    match stem.rsplit_once('_') {
        Some((head, tail)) if tail.parse::<u32>().is_ok() => (head.to_string(), tail.parse().unwrap_or(0)),
        _ => (stem, 0),
    }
}

/// The instance family: `C1` for Solomon's C101…C109, `C1_2` for Homberger's c1_2_1…c1_2_10.
fn family(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    if let Some((head, _)) = upper.rsplit_once('_') {
        return head.to_string();
    }
    let letters: String = upper.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let class: String = upper[letters.len()..].chars().take(1).collect();
    format!("{letters}{class}")
}

fn solve_one(path: &Path, set: &'static str, bks: &BestKnown, settings: &Settings) -> Result<Row> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let instance: Instance = solomon::parse(&text).with_context(|| path.display().to_string())?;
    let started = Instant::now();
    let solved = solomon::solve(&instance, settings).with_context(|| instance.name.clone())?;
    let seconds = started.elapsed().as_secs_f64();
    if !solved.unassigned.is_empty() {
        bail!("{}: customers left unassigned: {:?}", instance.name, solved.unassigned);
    }
    let distance = solomon::check(&instance, &solved.routes)
        .with_context(|| format!("{}: checking the solution", instance.name))?;
    let best = match settings.objective {
        Objective::Distance => bks.distance(&instance.name),
        Objective::Vehicles => bks.vehicles_first(&instance.name),
    }
    .with_context(|| format!("{} is not in BKS.json", instance.name))?;
    Ok(Row {
        family: family(&instance.name),
        set,
        vehicles: solved.routes.len(),
        distance,
        gap: gap(distance, best.distance),
        best,
        best_vehicles: bks.vehicles_first(&instance.name),
        seconds,
        name: instance.name,
    })
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// One summary line: instances, gaps, vehicles over the fewest-vehicles records, time.
fn summary(label: &str, rows: &[&Row]) -> String {
    let gaps: Vec<f64> = rows.iter().map(|r| r.gap).collect();
    let times: Vec<f64> = rows.iter().map(|r| r.seconds).collect();
    let ours: usize = rows.iter().map(|r| r.vehicles).sum();
    let best: usize = rows.iter().filter_map(|r| r.best_vehicles).map(|b| b.vehicles).sum();
    let at_best = rows
        .iter()
        .filter(|r| r.best_vehicles.is_some_and(|b| r.vehicles <= b.vehicles))
        .count();
    format!(
        "| {label} | {} | {:+.2} | {:+.2} | {:+.2} | {ours} / {best} | {at_best} | {:.1} | {:.1} |",
        rows.len(),
        mean(&gaps),
        median(&gaps),
        max(&gaps),
        mean(&times),
        max(&times),
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    let data = args.data.clone().unwrap_or_else(|| workspace_root().join("data/vrptw"));
    let bks = BestKnown::parse(&std::fs::read_to_string(data.join("BKS.json")).context("reading BKS.json")?)
        .context("parsing BKS.json")?;
    let files = instances(&data, args.filter.as_deref())?;
    if files.is_empty() {
        bail!("no instance matches the filter");
    }
    if !(args.time_limit > 0.0 && args.time_limit.is_finite()) {
        bail!("--time-limit must be a positive number of seconds");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.clamp(1, files.len());
    let objective = match args.objective {
        ObjectiveArg::Distance => Objective::Distance,
        ObjectiveArg::Vehicles => Objective::Vehicles,
    };
    let mut settings = Settings::new(Duration::from_secs_f64(args.time_limit));
    settings.objective = objective;
    if let Some(s) = args.stagnation {
        settings.stagnation = (s > 0.0).then(|| Duration::from_secs_f64(s));
    }

    let header = format!(
        "{}\nVRPTW: {} instances, objective {}, time limit {} s, stagnation {}, {jobs} at a time on {cores} core(s)",
        machine(),
        files.len(),
        match objective {
            Objective::Distance => "distance (gap to NAME_distance, else NAME)",
            Objective::Vehicles => "vehicles then distance (gap to NAME)",
        },
        args.time_limit,
        settings
            .stagnation
            .map_or("off".to_string(), |s| format!("{:.1} s", s.as_secs_f64())),
    );
    println!("{header}");
    println!(
        "{:<10} {:>4} {:>4} {:>10} {:>10} {:>8} {:>6}",
        "instance", "veh", "bks", "distance", "bks", "gap %", "s"
    );

    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<Row>> = Mutex::new(Vec::new());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((path, set)) = files.get(i) else { break };
                    match solve_one(path, set, &bks, &settings) {
                        Ok(row) => {
                            println!(
                                "{:<10} {:>4} {:>4} {:>10.2} {:>10.2} {:>+8.2} {:>6.1}",
                                row.name,
                                row.vehicles,
                                row.best.vehicles,
                                row.distance,
                                row.best.distance,
                                row.gap,
                                row.seconds
                            );
                            rows.lock().expect("no panics while holding the lock").push(row);
                        }
                        Err(e) => {
                            println!("{}: FAILED: {e:#}", path.display());
                            failures
                                .lock()
                                .expect("no panics while holding the lock")
                                .push(format!("{e:#}"));
                        }
                    }
                }
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let mut rows = rows.into_inner().expect("workers finished");
    let failures = failures.into_inner().expect("workers finished");
    let order: BTreeMap<String, usize> = files
        .iter()
        .enumerate()
        .map(|(i, (p, _))| {
            (
                p.file_stem().unwrap_or_default().to_string_lossy().to_ascii_uppercase(),
                i,
            )
        })
        .collect();
    rows.sort_by_key(|r| order.get(&r.name.to_ascii_uppercase()).copied().unwrap_or(usize::MAX));

    let mut families: Vec<(String, Vec<&Row>)> = Vec::new();
    for row in &rows {
        match families.iter_mut().find(|(f, _)| *f == row.family) {
            Some((_, members)) => members.push(row),
            None => families.push((row.family.clone(), vec![row])),
        }
    }
    let mut lines = vec![
        "| family | instances | mean gap % | median gap % | worst gap % | vehicles (ours / fewest known) | instances at fewest known | mean s | max s |".to_string(),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|".to_string(),
    ];
    for (name, members) in &families {
        lines.push(summary(name, members));
    }
    for set in ["Solomon", "Homberger 200"] {
        let members: Vec<&Row> = rows.iter().filter(|r| r.set == set).collect();
        if !members.is_empty() {
            lines.push(summary(&format!("**{set}**"), &members));
        }
    }
    let all: Vec<&Row> = rows.iter().collect();
    lines.push(summary("**all**", &all));
    let solomon_gaps: Vec<f64> = rows.iter().filter(|r| r.set == "Solomon").map(|r| r.gap).collect();
    let peer = if solomon_gaps.is_empty() {
        String::new()
    } else {
        format!(
            "Solomon mean gap: ours {:+.2} % over {} instance(s) vs VROOM {VROOM_PUBLISHED_MEAN_GAP:.2} % (published by VROOM, not measured here)",
            mean(&solomon_gaps),
            solomon_gaps.len()
        )
    };
    let footer = format!(
        "wall time {wall:.0} s; {}; {} failure(s)",
        load_average(),
        failures.len()
    );
    println!("\n{}\n\n{peer}\n{footer}", lines.join("\n"));

    if let Some(path) = &args.markdown {
        let mut md = String::new();
        md.push_str(&format!("```text\n{header}\n```\n\n"));
        md.push_str("| instance | vehicles | BKS vehicles | distance | BKS distance | gap % | s |\n");
        md.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for r in &rows {
            md.push_str(&format!(
                "| {} | {} | {} | {:.2} | {:.2} | {:+.2} | {:.1} |\n",
                r.name, r.vehicles, r.best.vehicles, r.distance, r.best.distance, r.gap, r.seconds
            ));
        }
        md.push_str(&format!("\n{}\n\n{peer}\n\n{footer}\n", lines.join("\n")));
        for failure in &failures {
            md.push_str(&format!("\nFAILED: {failure}\n"));
        }
        std::fs::write(path, md).with_context(|| format!("writing {}", path.display()))?;
    }
    if !failures.is_empty() {
        bail!("{} instance(s) failed", failures.len());
    }
    Ok(())
}
