//! Vehicle dispatch (调度): routes for vehicles with a multi-dimensional
//! capacity (e.g. kg and m³), a shift, skills (e.g. refrigeration classes)
//! and their own start and end depots, serving pickups (collection runs from
//! villages to the depot) and deliveries with a time window and a service
//! duration. Solved in two stages: `vrp-core` (reinterpretcat/vrp) builds
//! and evolves solutions for the first [`VRP_CORE_SHARE`] of the time, then
//! [`improve`] (string-removal ruin and recreate under simulated annealing)
//! refines its best for the rest. This module translates our model to and
//! from vrp-core's `Problem`/`Solution` and chooses the search settings.
//!
//! Conventions: times and durations are in the same unit as the matrix's
//! durations; a job's window bounds the *start* of service (a vehicle that
//! arrives early waits); a vehicle leaves its start depot no earlier than its
//! shift start and must be at its end depot by its shift end.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use vrp_core::construction::features::{
    JobSkills, JobSkillsDimension, VehicleSkillsDimension, create_minimize_tours_feature, create_skills_feature,
    create_travel_limit_feature,
};
use vrp_core::construction::heuristics::UnassignmentInfo;
use vrp_core::models::common::{LoadOps, MultiDimLoad, TimeWindow as CoreWindow};
use vrp_core::models::problem::{Actor, JobIdDimension, Single, VehicleIdDimension};
use vrp_core::prelude::*;
use vrp_core::rosomaxa::evolution::TelemetryMode;
use vrp_core::rosomaxa::utils::{Parallelism, TimeQuota};

mod improve;

/// Index of a place in the [`Matrix`].
pub type Location = usize;

/// A closed interval of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeWindow {
    pub start: f64,
    pub end: f64,
}

/// A vehicle of the fleet with its driver's shift.
#[derive(Debug, Clone, PartialEq)]
pub struct Vehicle {
    /// Where the vehicle starts (its depot).
    pub start: Location,
    /// Where it must end (usually the same depot).
    pub end: Location,
    /// How much it carries, one value per dimension (e.g. `[kg, litres]`);
    /// every vehicle and job of a problem has the same dimensions.
    pub capacity: Vec<u32>,
    /// Earliest departure from `start` and latest arrival at `end`.
    pub shift: TimeWindow,
    /// Longest time from departure to arrival, if shorter than the shift.
    pub max_duration: Option<f64>,
    /// Longest total distance of its route.
    pub max_distance: Option<f64>,
    /// What it can do, matched against [`Job::skills`] (e.g. `"chilled"`, `"frozen"`).
    pub skills: Vec<String>,
}

impl Vehicle {
    /// A vehicle based at `depot` with a one-dimensional capacity and no limits beyond its shift.
    pub fn new(depot: Location, capacity: Vec<u32>, shift: TimeWindow) -> Self {
        Self {
            start: depot,
            end: depot,
            capacity,
            shift,
            max_duration: None,
            max_distance: None,
            skills: Vec::new(),
        }
    }
}

/// Which way the goods of a [`Job`] travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobKind {
    /// Loaded at the vehicle's start depot, unloaded at the job.
    #[default]
    Delivery,
    /// Loaded at the job (e.g. a village collection point), unloaded at the vehicle's end depot.
    Pickup,
}

/// One stop to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub location: Location,
    pub kind: JobKind,
    /// Amount per capacity dimension.
    pub demand: Vec<u32>,
    /// When service may start.
    pub window: TimeWindow,
    /// How long service takes.
    pub service: f64,
    /// Skills the serving vehicle must all have (e.g. `"frozen"` for frozen goods).
    pub skills: Vec<String>,
    /// Locked to this vehicle (index into [`Problem::vehicles`]): a planner's
    /// fixed assignment that re-planning keeps.
    pub vehicle: Option<usize>,
}

impl Job {
    /// A delivery with no skills required and no lock.
    pub fn new(location: Location, demand: Vec<u32>, window: TimeWindow, service: f64) -> Self {
        Self {
            location,
            kind: JobKind::Delivery,
            demand,
            window,
            service,
            skills: Vec::new(),
            vehicle: None,
        }
    }
}

/// The fleet and the jobs to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub vehicles: Vec<Vehicle>,
    pub jobs: Vec<Job>,
}

/// Square distance and travel-time matrices, row-major (`from * size + to`).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    size: usize,
    distances: Vec<f64>,
    durations: Vec<f64>,
}

impl Matrix {
    /// Both vectors must hold `size * size` finite, non-negative values.
    pub fn new(size: usize, distances: Vec<f64>, durations: Vec<f64>) -> Result<Self, DispatchError> {
        for (name, values) in [("distances", &distances), ("durations", &durations)] {
            if values.len() != size * size {
                return Err(DispatchError::Invalid(format!(
                    "{name} has {} values, expected {size}×{size}",
                    values.len()
                )));
            }
            if let Some(bad) = values.iter().find(|v| !v.is_finite() || **v < 0.0) {
                return Err(DispatchError::Invalid(format!("{name} contains {bad}")));
            }
        }
        Ok(Self {
            size,
            distances,
            durations,
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn distance(&self, from: Location, to: Location) -> f64 {
        self.distances[from * self.size + to]
    }

    pub fn duration(&self, from: Location, to: Location) -> f64 {
        self.durations[from * self.size + to]
    }
}

/// What the search minimises after serving as many jobs as possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Objective {
    /// Total distance only.
    #[default]
    Distance,
    /// Number of vehicles used, then total distance.
    Vehicles,
}

/// How to search.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Hard limit on the search time.
    pub time_limit: Duration,
    pub objective: Objective,
    /// Stop each stage early once its best solution has not changed over
    /// this long a stretch (in vrp-core: coefficient of variation ≤ 1e-9).
    pub stagnation: Option<Duration>,
}

impl Settings {
    /// Minimise distance on every core for the whole `time_limit`: on
    /// Solomon, stopping vrp-core after a quarter of 10 s without progress
    /// cost 2–6 points of gap on the R and RC instances, so stagnation is
    /// opt-in.
    pub fn new(time_limit: Duration) -> Self {
        Self {
            time_limit,
            objective: Objective::Distance,
            stagnation: None,
        }
    }
}

/// A served job on a route.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// Index into [`Problem::jobs`].
    pub job: usize,
    /// When the vehicle gets there.
    pub arrival: f64,
    /// When it leaves, after waiting for the window and serving.
    pub departure: f64,
}

/// One vehicle's route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Index into [`Problem::vehicles`].
    pub vehicle: usize,
    /// Departure from the start depot.
    pub start: f64,
    /// Arrival at the end depot.
    pub end: f64,
    pub stops: Vec<Stop>,
    /// Matrix distance from the start depot through the stops to the end depot.
    pub distance: f64,
}

impl Route {
    /// Job indices in visiting order.
    pub fn jobs(&self) -> Vec<usize> {
        self.stops.iter().map(|s| s.job).collect()
    }
}

/// Why no vehicle serves a job: the constraint that rejected it most often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnassignedReason {
    /// No vehicle can be there within the job's window (and back within its shift).
    TimeWindow,
    /// No vehicle has room for it.
    Capacity,
    /// No vehicle (or not the locked one) has the required skills.
    Skills,
    /// It would make a route longer than the vehicle's distance limit.
    MaxDistance,
    /// It would make a route longer than the vehicle's duration limit.
    MaxDuration,
    /// The solver gave no reason.
    Unknown,
}

impl UnassignedReason {
    /// A stable code for APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimeWindow => "time_window",
            Self::Capacity => "capacity",
            Self::Skills => "skills",
            Self::MaxDistance => "max_distance",
            Self::MaxDuration => "max_duration",
            Self::Unknown => "unknown",
        }
    }

    fn code(self) -> ViolationCode {
        ViolationCode(self as i32 + 1)
    }

    fn from_code(code: ViolationCode) -> Self {
        [
            Self::TimeWindow,
            Self::Capacity,
            Self::Skills,
            Self::MaxDistance,
            Self::MaxDuration,
        ]
        .into_iter()
        .find(|reason| reason.code() == code)
        .unwrap_or(Self::Unknown)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unassigned {
    /// Index into [`Problem::jobs`].
    pub job: usize,
    pub reason: UnassignedReason,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Used vehicles' routes (empty routes left out).
    pub routes: Vec<Route>,
    /// Jobs no vehicle could serve, by ascending job index.
    pub unassigned: Vec<Unassigned>,
    /// Total distance of all routes.
    pub distance: f64,
}

impl Solution {
    /// Job indices in visiting order, route by route.
    pub fn job_routes(&self) -> Vec<Vec<usize>> {
        self.routes.iter().map(Route::jobs).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("invalid problem: {0}")]
    Invalid(String),
    #[error("solver: {0}")]
    Solver(String),
}

/// vrp-core's multi-dimensional load holds at most this many dimensions.
const MAX_DIMENSIONS: usize = 8;

impl Problem {
    fn validate(&self, matrix: &Matrix) -> Result<usize, DispatchError> {
        let invalid = |message: String| Err(DispatchError::Invalid(message));
        let window_ok = |w: &TimeWindow| w.start.is_finite() && w.end.is_finite() && w.start <= w.end;
        let limit_ok = |l: Option<f64>| l.is_none_or(|l| l.is_finite() && l >= 0.0);
        let size = matrix.size();
        let Some(first) = self.vehicles.first() else {
            return invalid("no vehicles".into());
        };
        let dimensions = first.capacity.len();
        if !(1..=MAX_DIMENSIONS).contains(&dimensions) {
            return invalid(format!(
                "vehicle 0: capacity has {dimensions} dimensions, expected 1 to {MAX_DIMENSIONS}"
            ));
        }
        let amounts_ok = |what: &str, values: &[u32]| -> Result<(), DispatchError> {
            if values.len() != dimensions {
                return Err(DispatchError::Invalid(format!(
                    "{what} has {} dimensions, vehicle 0 has {dimensions}",
                    values.len()
                )));
            }
            match values.iter().find(|v| i32::try_from(**v).is_err()) {
                Some(v) => Err(DispatchError::Invalid(format!("{what}: {v} is too large"))),
                None => Ok(()),
            }
        };
        for (i, v) in self.vehicles.iter().enumerate() {
            if v.start >= size || v.end >= size {
                return invalid(format!("vehicle {i}: depot outside the {size}-place matrix"));
            }
            if !window_ok(&v.shift) {
                return invalid(format!("vehicle {i}: shift {:?} is not a window", v.shift));
            }
            if !limit_ok(v.max_duration) || !limit_ok(v.max_distance) {
                return invalid(format!("vehicle {i}: a route limit is not a non-negative number"));
            }
            amounts_ok(&format!("vehicle {i}: capacity"), &v.capacity)?;
        }
        for (j, job) in self.jobs.iter().enumerate() {
            if job.location >= size {
                return invalid(format!("job {j}: location {} is outside the matrix", job.location));
            }
            if !window_ok(&job.window) {
                return invalid(format!("job {j}: time window {:?} is not a window", job.window));
            }
            if !job.service.is_finite() || job.service < 0.0 {
                return invalid(format!("job {j}: service duration {} is not a duration", job.service));
            }
            if job.vehicle.is_some_and(|v| v >= self.vehicles.len()) {
                return invalid(format!("job {j}: locked to a vehicle that does not exist"));
            }
            amounts_ok(&format!("job {j}: demand"), &job.demand)?;
        }
        Ok(dimensions)
    }

    /// Total matrix distance of a route serving `jobs` in order with `vehicle`.
    pub fn route_distance(&self, matrix: &Matrix, vehicle: usize, jobs: &[usize]) -> f64 {
        let v = &self.vehicles[vehicle];
        let stops: Vec<Location> = std::iter::once(v.start)
            .chain(jobs.iter().map(|&j| self.jobs[j].location))
            .chain(std::iter::once(v.end))
            .collect();
        stops.windows(2).map(|leg| matrix.distance(leg[0], leg[1])).sum()
    }
}

/// A capacity/demand type of vrp-core built from our amounts: a single
/// dimension keeps the solver's faster scalar load.
trait Amount: LoadOps {
    fn of(values: &[u32]) -> Self;
}

impl Amount for SingleDimLoad {
    fn of(values: &[u32]) -> Self {
        SingleDimLoad::new(values[0] as i32)
    }
}

impl Amount for MultiDimLoad {
    fn of(values: &[u32]) -> Self {
        MultiDimLoad::new(values.iter().map(|&v| v as i32).collect())
    }
}

/// Minimises, in order, unassigned jobs and total distance, searching for
/// at most `time_limit` on all available cores (see [`Settings::new`]).
pub fn solve(problem: &Problem, matrix: &Matrix, time_limit: Duration) -> Result<Solution, DispatchError> {
    solve_with(problem, matrix, &Settings::new(time_limit))
}

/// Solves with explicit search settings.
pub fn solve_with(problem: &Problem, matrix: &Matrix, settings: &Settings) -> Result<Solution, DispatchError> {
    let dimensions = problem.validate(matrix)?;
    if problem.jobs.is_empty() {
        return Ok(Solution {
            routes: Vec::new(),
            unassigned: Vec::new(),
            distance: 0.0,
        });
    }
    if dimensions == 1 {
        solve_typed::<SingleDimLoad>(problem, matrix, settings)
    } else {
        solve_typed::<MultiDimLoad>(problem, matrix, settings)
    }
}

fn solver_error(e: GenericError) -> DispatchError {
    DispatchError::Solver(e.to_string())
}

fn vehicle_id(i: usize) -> String {
    format!("v{i}")
}

fn vehicle_index(actor: &Actor) -> Option<usize> {
    actor.vehicle.dimens.get_vehicle_id()?.strip_prefix('v')?.parse().ok()
}

/// The skill that stands for "is vehicle `i`": locking a job to a vehicle
/// is requiring this skill, so the lock needs no extra solver feature.
fn lock_skill(i: usize) -> String {
    format!("\u{1}vehicle:{i}")
}

fn build_problem<T: Amount>(problem: &Problem, matrix: &Matrix, objective: Objective) -> GenericResult<CoreProblem> {
    let transport: Arc<dyn TransportCost> = Arc::new(SimpleTransportCost::new(
        matrix.durations.clone(),
        matrix.distances.clone(),
    )?);
    let mut features = vec![MinimizeUnassignedBuilder::new("min-unassigned").build()?];
    if objective == Objective::Vehicles {
        features.push(create_minimize_tours_feature("min-tours")?);
    }
    features.push(
        TransportFeatureBuilder::new("min-distance")
            .set_transport_cost(transport.clone())
            .set_time_constrained(true)
            .set_violation_code(UnassignedReason::TimeWindow.code())
            .build_minimize_distance()?,
    );
    features.push(
        CapacityFeatureBuilder::<T>::new("capacity")
            .set_violation_code(UnassignedReason::Capacity.code())
            .build()?,
    );
    let locked = problem.jobs.iter().any(|j| j.vehicle.is_some());
    if locked || problem.jobs.iter().any(|j| !j.skills.is_empty()) {
        features.push(create_skills_feature("skills", UnassignedReason::Skills.code())?);
    }
    if problem
        .vehicles
        .iter()
        .any(|v| v.max_duration.is_some() || v.max_distance.is_some())
    {
        let distances: Vec<Option<f64>> = problem.vehicles.iter().map(|v| v.max_distance).collect();
        let durations: Vec<Option<f64>> = problem.vehicles.iter().map(|v| v.max_duration).collect();
        features.push(create_travel_limit_feature(
            "route-limits",
            transport.clone(),
            UnassignedReason::MaxDistance.code(),
            UnassignedReason::MaxDuration.code(),
            Arc::new(move |actor: &Actor| vehicle_index(actor).and_then(|i| distances[i])),
            Arc::new(move |actor: &Actor| vehicle_index(actor).and_then(|i| durations[i])),
        )?);
    }
    let goal = GoalContextBuilder::with_features(&features)?.build()?;

    let jobs = problem
        .jobs
        .iter()
        .enumerate()
        .map(|(j, job)| {
            let amount = T::of(&job.demand);
            let demand = match job.kind {
                JobKind::Delivery => Demand {
                    pickup: (T::default(), T::default()),
                    delivery: (amount, T::default()),
                },
                JobKind::Pickup => Demand {
                    pickup: (amount, T::default()),
                    delivery: (T::default(), T::default()),
                },
            };
            let mut required = job.skills.clone();
            required.extend(job.vehicle.map(lock_skill));
            SingleBuilder::default()
                .id(&j.to_string())
                .demand(demand)
                .dimension(|d| {
                    if !required.is_empty() {
                        d.set_job_skills(JobSkills::new(Some(required), None, None));
                    }
                })
                .location(job.location)?
                .duration(job.service)?
                .times(vec![CoreWindow::new(job.window.start, job.window.end)])?
                .build_as_job()
        })
        .collect::<GenericResult<Vec<_>>>()?;
    let vehicles = problem
        .vehicles
        .iter()
        .enumerate()
        .map(|(i, vehicle)| {
            let skills: HashSet<String> = vehicle
                .skills
                .iter()
                .cloned()
                .chain(locked.then(|| lock_skill(i)))
                .collect();
            VehicleBuilder::default()
                .id(&vehicle_id(i))
                .add_detail(
                    VehicleDetailBuilder::default()
                        .set_start_location(vehicle.start)
                        .set_start_time(vehicle.shift.start)
                        .set_end_location(vehicle.end)
                        .set_end_time(vehicle.shift.end)
                        .build()?,
                )
                .capacity(T::of(&vehicle.capacity))
                .dimension(|d| {
                    if !skills.is_empty() {
                        d.set_vehicle_skills(skills);
                    }
                })
                .build()
        })
        .collect::<GenericResult<Vec<_>>>()?;
    ProblemBuilder::default()
        .add_jobs(jobs.into_iter())
        .add_vehicles(vehicles.into_iter())
        .with_goal(goal)
        .with_transport_cost(transport)
        .with_logger(Arc::new(|_: &str| {}))
        .build()
}

type CoreProblem = vrp_core::models::Problem;

/// Share of the time limit vrp-core searches before [`improve`] takes
/// over. On nine hard Solomon instances at 10 s (BENCHMARKS.md §7) 0.1 left
/// a mean gap of +1.26 %, 0.3 +0.77–0.86 %; vrp-core alone +5.78 %.
const VRP_CORE_SHARE: f64 = 0.3;

fn solve_typed<T: Amount>(problem: &Problem, matrix: &Matrix, settings: &Settings) -> Result<Solution, DispatchError> {
    let began = std::time::Instant::now();
    let found = search_with_vrp_core::<T>(problem, matrix, settings, settings.time_limit.mul_f64(VRP_CORE_SHARE))?;
    let search = improve::Search {
        objective: settings.objective,
        time_limit: settings.time_limit.saturating_sub(began.elapsed()),
        stagnation: settings.stagnation,
        threads: std::thread::available_parallelism().map_or(1, usize::from),
        annealing: improve::Annealing::default(),
    };
    Ok(improve::improve(problem, matrix, &found, &search).unwrap_or(found))
}

fn search_with_vrp_core<T: Amount>(
    problem: &Problem,
    matrix: &Matrix,
    settings: &Settings,
    time_limit: Duration,
) -> Result<Solution, DispatchError> {
    let core_problem = Arc::new(build_problem::<T>(problem, matrix, settings.objective).map_err(solver_error)?);

    let seconds = time_limit.as_secs_f64();
    // Offspring are evolved in parallel on rayon's global pool, i.e. on every
    // core; concurrent solves share that pool.
    let environment = Arc::new(Environment::new(
        Arc::new(DefaultRandom::default()),
        Some(Arc::new(TimeQuota::new(seconds))),
        Parallelism::default(),
        Arc::new(|_: &str| {}),
        false,
    ));
    // vrp-core's defaults measured best at 10 s on Solomon (rosomaxa
    // population, dynamic operator selection; elitism, greedy and the static
    // selection were 2–3 points worse); the termination adds stagnation.
    let mut builder = VrpConfigBuilder::new(core_problem.clone())
        .set_environment(environment)
        .set_telemetry_mode(TelemetryMode::None)
        .prebuild()
        .map_err(solver_error)?
        .with_max_time(Some(seconds.ceil().max(1.0) as usize));
    if let Some(stagnation) = settings.stagnation {
        let period = stagnation.as_secs().max(1) as usize;
        builder = builder.with_min_cv(
            Some(("period".to_string(), period, 1e-9, true)),
            "stagnation".to_string(),
        );
    }
    let config = builder.build().map_err(solver_error)?;
    let found = Solver::new(core_problem, config).solve().map_err(solver_error)?;
    translate(problem, matrix, &found)
}

fn translate(
    problem: &Problem,
    matrix: &Matrix,
    found: &vrp_core::models::Solution,
) -> Result<Solution, DispatchError> {
    let job_index = |single: &Single| -> Result<usize, DispatchError> {
        single
            .dimens
            .get_job_id()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| DispatchError::Solver("solution refers to an unknown job".into()))
    };
    let mut routes = Vec::new();
    for route in &found.routes {
        let vehicle = vehicle_index(&route.actor)
            .ok_or_else(|| DispatchError::Solver("solution refers to an unknown vehicle".into()))?;
        let stops = route
            .tour
            .all_activities()
            .filter_map(|activity| activity.job.as_deref().map(|job| (job, activity)))
            .map(|(job, activity)| {
                Ok(Stop {
                    job: job_index(job)?,
                    arrival: activity.schedule.arrival,
                    departure: activity.schedule.departure,
                })
            })
            .collect::<Result<Vec<_>, DispatchError>>()?;
        if stops.is_empty() {
            continue;
        }
        let jobs: Vec<usize> = stops.iter().map(|s| s.job).collect();
        routes.push(Route {
            vehicle,
            start: route.tour.start().map_or(0.0, |a| a.schedule.departure),
            end: route.tour.end().map_or(0.0, |a| a.schedule.arrival),
            distance: problem.route_distance(matrix, vehicle, &jobs),
            stops,
        });
    }
    let mut unassigned = found
        .unassigned
        .iter()
        .map(|(job, info)| {
            let single = job
                .as_single()
                .ok_or_else(|| DispatchError::Solver("unexpected multi-job".into()))?;
            let reason = match info {
                UnassignmentInfo::Simple(code) => UnassignedReason::from_code(*code),
                UnassignmentInfo::Detailed(details) => most_common(details.iter().map(|(_, code)| *code))
                    .map_or(UnassignedReason::Unknown, UnassignedReason::from_code),
                UnassignmentInfo::Unknown => UnassignedReason::Unknown,
            };
            Ok(Unassigned {
                job: job_index(single)?,
                reason,
            })
        })
        .collect::<Result<Vec<_>, DispatchError>>()?;
    unassigned.sort_unstable_by_key(|u| u.job);
    let distance = routes.iter().map(|r| r.distance).sum();
    Ok(Solution {
        routes,
        unassigned,
        distance,
    })
}

/// The value seen most often (of several, the one first seen last).
fn most_common<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: Vec<(T, usize)> = Vec::new();
    for value in values {
        match counts.iter_mut().find(|(c, _)| *c == value) {
            Some((_, n)) => *n += 1,
            None => counts.push((value, 1)),
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(value, _)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points on a line: distance and travel time are the absolute difference.
    fn line_matrix(points: &[f64]) -> Matrix {
        let n = points.len();
        let values: Vec<f64> = (0..n * n).map(|k| (points[k / n] - points[k % n]).abs()).collect();
        Matrix::new(n, values.clone(), values).unwrap()
    }

    fn window(start: f64, end: f64) -> TimeWindow {
        TimeWindow { start, end }
    }

    fn job(location: Location, demand: u32, start: f64, end: f64) -> Job {
        Job::new(location, vec![demand], window(start, end), 1.0)
    }

    fn quick() -> Settings {
        Settings {
            stagnation: Some(Duration::from_secs(1)),
            ..Settings::new(Duration::from_secs(2))
        }
    }

    fn sorted(mut jobs: Vec<usize>) -> Vec<usize> {
        jobs.sort_unstable();
        jobs
    }

    /// The vehicle serving each job (`None` when unassigned).
    fn served_by(solution: &Solution, jobs: usize) -> Vec<Option<usize>> {
        (0..jobs)
            .map(|j| {
                solution
                    .routes
                    .iter()
                    .find(|r| r.stops.iter().any(|s| s.job == j))
                    .map(|r| r.vehicle)
            })
            .collect()
    }

    #[test]
    fn matrix_rejects_bad_shapes_and_values() {
        assert!(Matrix::new(2, vec![0.0; 3], vec![0.0; 4]).is_err());
        assert!(Matrix::new(1, vec![f64::NAN], vec![0.0]).is_err());
        assert!(Matrix::new(1, vec![0.0], vec![-1.0]).is_err());
    }

    #[test]
    fn solves_a_line_and_reports_unreachable_jobs_with_the_reason() {
        // depot at 0, jobs at 10, 20 and 30; the job at 30 closes before anyone can get there
        let matrix = line_matrix(&[0.0, 10.0, 20.0, 30.0]);
        let problem = Problem {
            vehicles: vec![Vehicle::new(0, vec![10], window(0.0, 100.0)); 2],
            jobs: vec![job(2, 4, 0.0, 100.0), job(1, 4, 0.0, 100.0), job(3, 1, 0.0, 5.0)],
        };
        let solution = solve(&problem, &matrix, Duration::from_millis(500)).unwrap();
        assert_eq!(
            solution.unassigned,
            vec![Unassigned {
                job: 2,
                reason: UnassignedReason::TimeWindow
            }]
        );
        assert_eq!(solution.routes.len(), 1);
        assert_eq!(sorted(solution.routes[0].jobs()), vec![0, 1]);
        assert_eq!(solution.distance, 40.0);
        // the schedule: both orders drive 40; service takes 1 at each stop
        let route = &solution.routes[0];
        let (first, second) = (&route.stops[0], &route.stops[1]);
        let place = |stop: &Stop| problem.jobs[stop.job].location;
        assert_eq!(route.start, 0.0);
        assert_eq!(first.arrival, matrix.distance(0, place(first)));
        assert_eq!(first.departure, first.arrival + 1.0);
        assert_eq!(second.arrival, first.departure + 10.0);
        assert_eq!(route.end, second.arrival + 1.0 + matrix.distance(place(second), 0));
    }

    #[test]
    fn every_capacity_dimension_is_respected() {
        // two jobs fit one vehicle by weight (2 × 40 ≤ 100 kg) but not by volume (2 × 6 > 10 m³)
        let matrix = line_matrix(&[0.0, 10.0, 11.0]);
        let bulky = |location| Job::new(location, vec![40, 6], window(0.0, 1000.0), 0.0);
        let problem = Problem {
            vehicles: vec![Vehicle::new(0, vec![100, 10], window(0.0, 1000.0)); 2],
            jobs: vec![bulky(1), bulky(2)],
        };
        let solution = solve_with(&problem, &matrix, &quick()).unwrap();
        assert!(solution.unassigned.is_empty());
        assert_eq!(solution.routes.len(), 2, "volume forces two vehicles: {solution:?}");

        // with one vehicle the second job cannot be carried: capacity is the reason
        let one = Problem {
            vehicles: vec![problem.vehicles[0].clone()],
            ..problem.clone()
        };
        let solution = solve_with(&one, &matrix, &quick()).unwrap();
        assert_eq!(solution.unassigned.len(), 1);
        assert_eq!(solution.unassigned[0].reason, UnassignedReason::Capacity);

        // lighter and smaller: both on one vehicle
        let small = Problem {
            jobs: vec![Job::new(1, vec![40, 5], window(0.0, 1000.0), 0.0); 2],
            ..one
        };
        let solution = solve_with(&small, &matrix, &quick()).unwrap();
        assert!(solution.unassigned.is_empty());
        assert_eq!(solution.routes.len(), 1);
    }

    #[test]
    fn pickups_fill_the_vehicle_on_the_way_back() {
        // a pickup of 8 and a delivery of 8 share a vehicle of 10: the delivery is
        // unloaded before the pickup is loaded, so the order is forced
        let matrix = line_matrix(&[0.0, 10.0, 20.0]);
        let mut pickup = job(1, 8, 0.0, 1000.0);
        pickup.kind = JobKind::Pickup;
        let delivery = job(2, 8, 0.0, 1000.0);
        let problem = Problem {
            vehicles: vec![Vehicle::new(0, vec![10], window(0.0, 1000.0))],
            jobs: vec![pickup, delivery],
        };
        let solution = solve_with(&problem, &matrix, &quick()).unwrap();
        assert!(solution.unassigned.is_empty(), "{solution:?}");
        assert_eq!(solution.job_routes(), vec![vec![1, 0]]);

        // two pickups of 8 cannot both ride back in a vehicle of 10
        let mut second = job(2, 8, 0.0, 1000.0);
        second.kind = JobKind::Pickup;
        let problem = Problem {
            jobs: vec![problem.jobs[0].clone(), second],
            ..problem
        };
        let solution = solve_with(&problem, &matrix, &quick()).unwrap();
        assert_eq!(solution.unassigned.len(), 1);
        assert_eq!(solution.unassigned[0].reason, UnassignedReason::Capacity);
    }

    #[test]
    fn skills_keep_goods_on_compatible_vehicles() {
        // vehicle 0 is an ambient truck next to the frozen goods, vehicle 1 a reefer far away
        let matrix = line_matrix(&[0.0, 100.0, 1.0]);
        let mut reefer = Vehicle::new(1, vec![100], window(0.0, 1000.0));
        reefer.skills = vec!["chilled".into(), "frozen".into()];
        let mut frozen = job(2, 1, 0.0, 1000.0);
        frozen.skills = vec!["frozen".into()];
        let problem = Problem {
            vehicles: vec![Vehicle::new(0, vec![100], window(0.0, 1000.0)), reefer],
            jobs: vec![frozen.clone()],
        };
        let solution = solve_with(&problem, &matrix, &quick()).unwrap();
        assert_eq!(served_by(&solution, 1), vec![Some(1)]);
        assert_eq!(solution.distance, 198.0);

        // without a reefer the frozen goods stay unassigned for lack of skills
        let problem = Problem {
            vehicles: vec![Vehicle::new(0, vec![100], window(0.0, 1000.0))],
            jobs: vec![frozen],
        };
        let solution = solve_with(&problem, &matrix, &quick()).unwrap();
        assert_eq!(
            solution.unassigned,
            vec![Unassigned {
                job: 0,
                reason: UnassignedReason::Skills
            }]
        );
    }

    #[test]
    fn vehicles_start_and_end_at_their_own_depots() {
        // depots at 0 and 100; jobs near each; each vehicle should take the ones near it
        let matrix = line_matrix(&[0.0, 100.0, 5.0, 95.0]);
        let problem = Problem {
            vehicles: vec![
                Vehicle::new(0, vec![10], window(0.0, 1000.0)),
                Vehicle::new(1, vec![10], window(0.0, 1000.0)),
            ],
            jobs: vec![job(2, 1, 0.0, 1000.0), job(3, 1, 0.0, 1000.0)],
        };
        let solution = solve_with(&problem, &matrix, &quick()).unwrap();
        assert_eq!(served_by(&solution, 2), vec![Some(0), Some(1)]);
        assert_eq!(solution.distance, 20.0);

        // a one-way run: start at 0, end at 100, picking up both on the way
        let problem = Problem {
            vehicles: vec![Vehicle {
                end: 1,
                ..Vehicle::new(0, vec![10], window(0.0, 1000.0))
            }],
            ..problem
        };
        let solution = solve_with(&problem, &matrix, &quick()).unwrap();
        assert_eq!(solution.job_routes(), vec![vec![0, 1]]);
        assert_eq!(solution.distance, 100.0);
    }

    #[test]
    fn shifts_bound_the_route() {
        // the job at 40 is open all day but the shift ends at 70: 40 + 1 + 40 > 70
        let matrix = line_matrix(&[0.0, 10.0, 40.0]);
        let problem = Problem {
            vehicles: vec![Vehicle::new(0, vec![10], window(0.0, 70.0))],
            jobs: vec![job(1, 1, 0.0, 1000.0), job(2, 1, 0.0, 1000.0)],
        };
        let solution = solve_with(&problem, &matrix, &quick()).unwrap();
        assert_eq!(solution.job_routes(), vec![vec![0]]);
        assert_eq!(solution.unassigned.len(), 1);
        assert_eq!(solution.unassigned[0].job, 1);

        // a shift long enough, but a maximum duration of 50 on the clock still forbids it
        let mut limited = Vehicle::new(0, vec![10], window(0.0, 1000.0));
        limited.max_duration = Some(50.0);
        let problem = Problem {
            vehicles: vec![limited.clone()],
            ..problem
        };
        let solution = solve_with(&problem, &matrix, &quick()).unwrap();
        assert_eq!(solution.job_routes(), vec![vec![0]]);
        assert_eq!(
            solution.unassigned,
            vec![Unassigned {
                job: 1,
                reason: UnassignedReason::MaxDuration
            }]
        );
        assert!(solution.routes[0].end - solution.routes[0].start <= 50.0);

        // the same with a distance limit of 60
        limited.max_duration = None;
        limited.max_distance = Some(60.0);
        let problem = Problem {
            vehicles: vec![limited],
            ..problem
        };
        let solution = solve_with(&problem, &matrix, &quick()).unwrap();
        assert_eq!(solution.job_routes(), vec![vec![0]]);
        assert_eq!(solution.unassigned[0].reason, UnassignedReason::MaxDistance);
    }

    #[test]
    fn locked_jobs_stay_on_their_vehicle() {
        // vehicle 1 is far away but job 0 is locked to it; job 1 (beside vehicle 0) is free
        let matrix = line_matrix(&[0.0, 100.0, 1.0, -1.0]);
        let mut locked = job(2, 1, 0.0, 1000.0);
        locked.vehicle = Some(1);
        let problem = Problem {
            vehicles: vec![
                Vehicle::new(0, vec![10], window(0.0, 1000.0)),
                Vehicle::new(1, vec![10], window(0.0, 1000.0)),
            ],
            jobs: vec![locked, job(3, 1, 0.0, 1000.0)],
        };
        let solution = solve_with(&problem, &matrix, &quick()).unwrap();
        assert_eq!(served_by(&solution, 2), vec![Some(1), Some(0)]);
    }

    #[test]
    fn the_vehicles_objective_trades_distance_for_fewer_vehicles() {
        // a matrix where sharing one tour costs distance: the two jobs are 10 from the
        // depot but 30 from each other
        let distances = vec![
            0.0, 10.0, 10.0, //
            10.0, 0.0, 30.0, //
            10.0, 30.0, 0.0,
        ];
        let matrix = Matrix::new(3, distances.clone(), distances).unwrap();
        let problem = Problem {
            vehicles: vec![Vehicle::new(0, vec![10], window(0.0, 1000.0)); 2],
            jobs: vec![job(1, 1, 0.0, 1000.0), job(2, 1, 0.0, 1000.0)],
        };
        // two tours: 20 + 20 = 40; one tour: 10 + 30 + 10 = 50
        let by_distance = solve_with(&problem, &matrix, &quick()).unwrap();
        assert_eq!((by_distance.routes.len(), by_distance.distance), (2, 40.0));
        let by_vehicles = solve_with(
            &problem,
            &matrix,
            &Settings {
                objective: Objective::Vehicles,
                ..quick()
            },
        )
        .unwrap();
        assert_eq!((by_vehicles.routes.len(), by_vehicles.distance), (1, 50.0));
    }

    #[test]
    fn rejects_invalid_problems() {
        let matrix = line_matrix(&[0.0, 1.0]);
        let vehicle = Vehicle::new(0, vec![1], window(0.0, 10.0));
        let problem = |vehicles: Vec<Vehicle>, jobs: Vec<Job>| Problem { vehicles, jobs };
        let with = |change: fn(&mut Vehicle)| {
            let mut v = vehicle.clone();
            change(&mut v);
            vec![v]
        };
        let cases = [
            problem(with(|v| v.start = 2), vec![]),
            problem(with(|v| v.end = 2), vec![]),
            problem(vec![], vec![]),
            problem(vec![vehicle.clone()], vec![job(5, 1, 0.0, 1.0)]),
            problem(vec![vehicle.clone()], vec![job(1, 1, 2.0, 1.0)]),
            problem(with(|v| v.capacity = vec![u32::MAX]), vec![]),
            problem(with(|v| v.capacity = vec![]), vec![]),
            problem(with(|v| v.capacity = vec![1; 9]), vec![]),
            problem(with(|v| v.max_duration = Some(-1.0)), vec![]),
            problem(
                vec![vehicle.clone()],
                vec![Job::new(1, vec![1, 1], window(0.0, 1.0), 0.0)],
            ),
            problem(
                vec![vehicle.clone()],
                vec![Job {
                    vehicle: Some(1),
                    ..job(1, 1, 0.0, 1.0)
                }],
            ),
        ];
        for problem in cases {
            let err = solve(&problem, &matrix, Duration::from_millis(100)).unwrap_err();
            assert!(matches!(err, DispatchError::Invalid(_)), "{problem:?}: {err}");
        }
    }
}
