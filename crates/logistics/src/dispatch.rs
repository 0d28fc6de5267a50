//! Vehicle dispatch: identical-depot routes for vehicles with a capacity and
//! a shift, serving jobs with a demand, a time window and a service duration.
//! Solved by `vrp-core` (reinterpretcat/vrp); this module only translates our
//! model to and from its `Problem`/`Solution`.
//!
//! Conventions: times and durations are in the same unit as the matrix's
//! durations; a job's window bounds the *start* of service (a vehicle that
//! arrives early waits); a vehicle leaves the depot at its shift start and
//! must be back by its shift end.

use std::sync::Arc;
use std::time::Duration;

use vrp_core::models::common::TimeWindow as CoreWindow;
use vrp_core::models::problem::{JobIdDimension, Single};
use vrp_core::prelude::*;
use vrp_core::rosomaxa::evolution::TelemetryMode;
use vrp_core::rosomaxa::utils::{Parallelism, TimeQuota};

/// Index of a place in the [`Matrix`].
pub type Location = usize;

/// A closed interval of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeWindow {
    pub start: f64,
    pub end: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vehicle {
    pub capacity: u32,
    pub shift: TimeWindow,
}

/// A delivery of `demand` units from the depot to `location`.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub location: Location,
    pub demand: u32,
    /// When service may start.
    pub window: TimeWindow,
    /// How long service takes.
    pub service: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where every vehicle starts and ends.
    pub depot: Location,
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

#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Job indices in visiting order, one list per used vehicle (depot not included).
    pub routes: Vec<Vec<usize>>,
    /// Job indices no vehicle could serve, ascending.
    pub unassigned: Vec<usize>,
    /// Total distance of all routes, depot to depot, from the [`Matrix`].
    pub distance: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("invalid problem: {0}")]
    Invalid(String),
    #[error("solver: {0}")]
    Solver(String),
}

impl Problem {
    fn validate(&self, matrix: &Matrix) -> Result<(), DispatchError> {
        let invalid = |message: String| Err(DispatchError::Invalid(message));
        let window_ok = |w: &TimeWindow| w.start.is_finite() && w.end.is_finite() && w.start <= w.end;
        if self.depot >= matrix.size() {
            return invalid(format!(
                "depot location {} is outside the {}-place matrix",
                self.depot,
                matrix.size()
            ));
        }
        if self.vehicles.is_empty() {
            return invalid("no vehicles".into());
        }
        for (i, v) in self.vehicles.iter().enumerate() {
            if !window_ok(&v.shift) {
                return invalid(format!("vehicle {i}: shift {:?} is not a window", v.shift));
            }
            if i32::try_from(v.capacity).is_err() {
                return invalid(format!("vehicle {i}: capacity {} is too large", v.capacity));
            }
        }
        for (j, job) in self.jobs.iter().enumerate() {
            if job.location >= matrix.size() {
                return invalid(format!("job {j}: location {} is outside the matrix", job.location));
            }
            if !window_ok(&job.window) {
                return invalid(format!("job {j}: time window {:?} is not a window", job.window));
            }
            if !job.service.is_finite() || job.service < 0.0 {
                return invalid(format!("job {j}: service duration {} is not a duration", job.service));
            }
            if i32::try_from(job.demand).is_err() {
                return invalid(format!("job {j}: demand {} is too large", job.demand));
            }
        }
        Ok(())
    }

    /// Total matrix distance of `routes` (job indices), each depot to depot.
    pub fn routes_distance(&self, matrix: &Matrix, routes: &[Vec<usize>]) -> f64 {
        routes
            .iter()
            .filter(|route| !route.is_empty())
            .map(|route| {
                let stops: Vec<Location> = std::iter::once(self.depot)
                    .chain(route.iter().map(|&j| self.jobs[j].location))
                    .chain(std::iter::once(self.depot))
                    .collect();
                stops.windows(2).map(|leg| matrix.distance(leg[0], leg[1])).sum::<f64>()
            })
            .sum()
    }
}

/// Minimises, in order, unassigned jobs and total distance, searching for
/// at most `time_limit` on all available cores.
pub fn solve(problem: &Problem, matrix: &Matrix, time_limit: Duration) -> Result<Solution, DispatchError> {
    problem.validate(matrix)?;
    let solver_error = |e: GenericError| DispatchError::Solver(e.to_string());

    let transport: Arc<dyn TransportCost> =
        Arc::new(SimpleTransportCost::new(matrix.durations.clone(), matrix.distances.clone()).map_err(solver_error)?);
    let goal = GoalContextBuilder::with_features(&[
        MinimizeUnassignedBuilder::new("min-unassigned")
            .build()
            .map_err(solver_error)?,
        TransportFeatureBuilder::new("min-distance")
            .set_transport_cost(transport.clone())
            .set_time_constrained(true)
            .build_minimize_distance()
            .map_err(solver_error)?,
        CapacityFeatureBuilder::<SingleDimLoad>::new("capacity")
            .build()
            .map_err(solver_error)?,
    ])
    .map_err(solver_error)?
    .build()
    .map_err(solver_error)?;

    let jobs = problem
        .jobs
        .iter()
        .enumerate()
        .map(|(j, job)| {
            SingleBuilder::default()
                .id(&j.to_string())
                .demand(Demand::<SingleDimLoad>::delivery(job.demand as i32))
                .location(job.location)?
                .duration(job.service)?
                .times(vec![CoreWindow::new(job.window.start, job.window.end)])?
                .build_as_job()
        })
        .collect::<GenericResult<Vec<_>>>()
        .map_err(solver_error)?;
    let vehicles = problem
        .vehicles
        .iter()
        .enumerate()
        .map(|(i, vehicle)| {
            VehicleBuilder::default()
                .id(&format!("vehicle{i}"))
                .add_detail(
                    VehicleDetailBuilder::default()
                        .set_start_location(problem.depot)
                        .set_start_time(vehicle.shift.start)
                        .set_end_location(problem.depot)
                        .set_end_time(vehicle.shift.end)
                        .build()?,
                )
                .capacity(SingleDimLoad::new(vehicle.capacity as i32))
                .build()
        })
        .collect::<GenericResult<Vec<_>>>()
        .map_err(solver_error)?;
    let core_problem = Arc::new(
        ProblemBuilder::default()
            .add_jobs(jobs.into_iter())
            .add_vehicles(vehicles.into_iter())
            .with_goal(goal)
            .with_transport_cost(transport)
            .build()
            .map_err(solver_error)?,
    );

    let seconds = time_limit.as_secs_f64();
    let environment = Arc::new(Environment::new(
        Arc::new(DefaultRandom::default()),
        Some(Arc::new(TimeQuota::new(seconds))),
        Parallelism::default(),
        Arc::new(|_: &str| {}),
        false,
    ));
    let config = VrpConfigBuilder::new(core_problem.clone())
        .set_environment(environment)
        .set_telemetry_mode(TelemetryMode::None)
        .prebuild()
        .map_err(solver_error)?
        .with_max_time(Some(seconds.ceil().max(1.0) as usize))
        .build()
        .map_err(solver_error)?;
    let found = Solver::new(core_problem, config).solve().map_err(solver_error)?;

    let job_index = |single: &Single| -> Result<usize, DispatchError> {
        single
            .dimens
            .get_job_id()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| DispatchError::Solver("solution refers to an unknown job".into()))
    };
    let mut routes = Vec::new();
    for route in &found.routes {
        let stops = route
            .tour
            .all_activities()
            .filter_map(|activity| activity.job.as_deref())
            .map(job_index)
            .collect::<Result<Vec<_>, _>>()?;
        if !stops.is_empty() {
            routes.push(stops);
        }
    }
    let mut unassigned = found
        .unassigned
        .iter()
        .map(|(job, _)| {
            job.as_single()
                .ok_or_else(|| DispatchError::Solver("unexpected multi-job".into()))
        })
        .map(|single| single.and_then(|s| job_index(s)))
        .collect::<Result<Vec<_>, _>>()?;
    unassigned.sort_unstable();
    let distance = problem.routes_distance(matrix, &routes);
    Ok(Solution {
        routes,
        unassigned,
        distance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_matrix(points: &[f64]) -> Matrix {
        let n = points.len();
        let values: Vec<f64> = (0..n * n).map(|k| (points[k / n] - points[k % n]).abs()).collect();
        Matrix::new(n, values.clone(), values).unwrap()
    }

    fn job(location: Location, demand: u32, start: f64, end: f64) -> Job {
        Job {
            location,
            demand,
            window: TimeWindow { start, end },
            service: 1.0,
        }
    }

    #[test]
    fn matrix_rejects_bad_shapes_and_values() {
        assert!(Matrix::new(2, vec![0.0; 3], vec![0.0; 4]).is_err());
        assert!(Matrix::new(1, vec![f64::NAN], vec![0.0]).is_err());
        assert!(Matrix::new(1, vec![0.0], vec![-1.0]).is_err());
    }

    #[test]
    fn solves_a_line_and_reports_unreachable_jobs() {
        // depot at 0, jobs at 10, 20 and 30; the job at 30 closes before anyone can get there
        let matrix = line_matrix(&[0.0, 10.0, 20.0, 30.0]);
        let shift = TimeWindow { start: 0.0, end: 100.0 };
        let problem = Problem {
            depot: 0,
            vehicles: vec![Vehicle { capacity: 10, shift }; 2],
            jobs: vec![job(2, 5, 0.0, 100.0), job(1, 5, 0.0, 100.0), job(3, 1, 0.0, 5.0)],
        };
        let solution = solve(&problem, &matrix, Duration::from_millis(500)).unwrap();
        assert_eq!(solution.unassigned, vec![2]);
        assert_eq!(solution.routes.len(), 1);
        let mut served = solution.routes[0].clone();
        served.sort_unstable();
        assert_eq!(served, vec![0, 1]);
        assert_eq!(solution.distance, 40.0);
    }

    #[test]
    fn rejects_invalid_problems() {
        let matrix = line_matrix(&[0.0, 1.0]);
        let shift = TimeWindow { start: 0.0, end: 10.0 };
        let vehicles = vec![Vehicle { capacity: 1, shift }];
        let cases = [
            Problem {
                depot: 2,
                vehicles: vehicles.clone(),
                jobs: vec![],
            },
            Problem {
                depot: 0,
                vehicles: vec![],
                jobs: vec![],
            },
            Problem {
                depot: 0,
                vehicles: vehicles.clone(),
                jobs: vec![job(5, 1, 0.0, 1.0)],
            },
            Problem {
                depot: 0,
                vehicles: vehicles.clone(),
                jobs: vec![job(1, 1, 2.0, 1.0)],
            },
            Problem {
                depot: 0,
                vehicles: vec![Vehicle {
                    capacity: u32::MAX,
                    shift,
                }],
                jobs: vec![],
            },
        ];
        for problem in cases {
            let err = solve(&problem, &matrix, Duration::from_millis(100)).unwrap_err();
            assert!(matches!(err, DispatchError::Invalid(_)), "{problem:?}: {err}");
        }
    }
}
