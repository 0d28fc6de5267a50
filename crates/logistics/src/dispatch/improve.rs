//! 路线改进 route improvement after vrp-core: slack induction by string
//! removals (SISR; Christiaens & Vanden Berghe, Transportation Science 54(2),
//! 2020) under simulated annealing, on the dispatch model itself.
//!
//! Why a second stage: vrp-core's hyper-heuristic finds a good solution fast,
//! but on 2 cores in 10 s it stays 4–8 % above the best-known Solomon
//! distances where routes are long (R2, RC2). SISR has one operator — remove
//! a few strings of consecutive stops near a random stop, put them back one
//! by one at the cheapest place while skipping ("blinking" over) a few
//! places at random — and each move is cheap: a dozen or so jobs reinserted,
//! each place checked in constant time. Now and then a ruin empties a whole
//! route instead ([`WHOLE_ROUTE`]).
//!
//! Every solution it keeps passes the same rules as the solver's: service
//! starts inside the job's window, the vehicle leaves no earlier than its
//! shift starts and is back by its end, every capacity dimension holds at
//! every point of the route (deliveries are on board from the depot,
//! pickups until the end depot), skills and locks, distance and duration
//! limits. It never drops a job it was given served: jobs left over are
//! retried on every move, and each one still out at the end gets the rule
//! that keeps it out, found by trying it at every place of the final routes
//! (vrp-core's own reasons come from the routes it had when it stopped,
//! which after an early stop blamed capacity while vehicles stood idle).
//!
//! The checks are O(1) per insertion place: each route keeps, per stop, the
//! earliest departure, the latest service start that keeps the rest of the
//! route on time, and the load after the stop with its running maxima from
//! both ends. A duration limit, which depends on the whole schedule, is
//! checked by replaying the route.

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{JobKind, Matrix, Objective, Problem, Route, Solution, Stop, Unassigned, UnassignedReason};

/// Average number of stops removed by one ruin (the paper's c̄).
const MEAN_REMOVED: f64 = 10.0;
/// Longest string removed from one route (the paper's L^max).
const MAX_STRING: f64 = 10.0;
/// Chance that a ruin empties a whole route instead of removing strings
/// (not in the paper). On the 16 Solomon C2 and RC2 instances at 10 s it
/// took the mean gap from +1.30 % to +0.24 %, the worst from +9.97 % to
/// +1.55 % (RC208): the search reaches a different number of routes.
const WHOLE_ROUTE: f64 = 0.02;
/// Chance, under [`Objective::Distance`], that a move starts a new route
/// with the first stop it removed (not in the paper): the counterpart of
/// [`WHOLE_ROUTE`]. Greedy insertion alone never opens a route where
/// several routes' worth of stops would be better served by one more
/// vehicle, as on R211 (3 routes found, the record has 4).
const OPEN_ROUTE: f64 = 0.02;
/// Chance to skip an insertion place (the paper's β).
const BLINK: f64 = 0.01;
/// Chance that a split-string removal stops growing the kept part.
const SPLIT_STOP: f64 = 0.01;
/// Rounding allowed when replaying a schedule (vrp-core's times and the
/// caches are sums in a different order).
const SLACK: f64 = 1e-6;
/// What opening one more vehicle adds to an insertion's cost under
/// [`Objective::Vehicles`], so a job goes into a used vehicle if it can.
const VEHICLE: f64 = 1e8;
/// How many nearest jobs a ruin looks at: it stops after a few strings,
/// and a full list would grow with the square of the jobs.
const NEIGHBOURS: usize = 100;
/// How many unserved jobs, on average, each move tries to serve.
const RETRIED: f64 = 10.0;

/// How the annealing runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Annealing {
    /// Start and end temperature as multiples of the mean distance from a
    /// job to its nearest other job, so km and Solomon units behave alike.
    pub start: f64,
    pub end: f64,
}

impl Default for Annealing {
    fn default() -> Self {
        Self { start: 1.0, end: 0.01 }
    }
}

/// What to minimise and how long and wide to search.
#[derive(Debug, Clone, Copy)]
pub(super) struct Search {
    pub objective: Objective,
    pub time_limit: Duration,
    /// Stop once the best has not improved for this long.
    pub stagnation: Option<Duration>,
    /// Independent searches with different seeds, one per thread.
    pub threads: usize,
    pub annealing: Annealing,
}

/// Improves `start` (a solution of `problem`) for at most the search's
/// time limit, on its threads; the best wins.
/// Returns `None` when a route of `start` breaks a rule as checked here
/// (then nothing is changed), else a solution at least as good that serves
/// every job `start` serves.
pub(super) fn improve(problem: &Problem, matrix: &Matrix, start: &Solution, search: &Search) -> Option<Solution> {
    let Search {
        objective,
        time_limit,
        stagnation,
        threads,
        annealing,
    } = *search;
    let mut model = Model::new(problem, matrix, objective);
    let mut initial = model.state_of(start)?;
    model.served_at_start = initial.route_of.iter().map(Option::is_some).collect();
    // vrp-core stops building when its share of the time runs out (1,000
    // pickups on a loaded machine): whatever it left out goes in greedily
    // first, so the annealing starts from a complete solution.
    let left_out = std::mem::take(&mut initial.unserved);
    model.insert(&mut initial, left_out, 0.0, &mut SmallRng::seed_from_u64(0));
    initial.cost = model.cost(&initial);
    let deadline = Instant::now() + time_limit;
    let best = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|seed| {
                let model = &model;
                let initial = initial.clone();
                scope.spawn(move || model.anneal(initial, seed as u64, deadline, stagnation, annealing))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .min_by(|a, b| a.cost.total_cmp(&b.cost))
    })?;
    Some(model.solution(&best))
}

/// The problem in the shape the search needs.
struct Model<'a> {
    problem: &'a Problem,
    matrix: &'a Matrix,
    dims: usize,
    /// `compatible[job * vehicles + vehicle]`: skills and lock allow it.
    compatible: Vec<bool>,
    /// Per job, the [`NEIGHBOURS`] nearest jobs by ascending distance
    /// (itself first): where a ruin looks for strings.
    neighbours: Vec<Vec<u32>>,
    /// Per vehicle, the first vehicle identical to it: of several idle
    /// identical vehicles only one is tried.
    class: Vec<usize>,
    vehicle_cost: f64,
    vehicles_first: bool,
    /// The jobs the start serves, which must stay served: a planner who
    /// sees a pickup planned should not see it dropped for another.
    served_at_start: Vec<bool>,
    /// Mean distance from a job to its nearest other job.
    scale: f64,
}

/// One vehicle's route with its per-stop caches. Node 0 is the start
/// depot, nodes 1..=len the jobs, node len+1 the end depot.
#[derive(Clone)]
struct RouteState {
    jobs: Vec<usize>,
    /// Earliest departure from each node (at the end depot: arrival).
    departure: Vec<f64>,
    /// Latest service start at each node that keeps the rest on time.
    latest: Vec<f64>,
    /// Largest load on board (per dimension, `dims` values per node) from
    /// the depot up to each node, and from each node to the end.
    prefix_max: Vec<i64>,
    suffix_max: Vec<i64>,
    distance: f64,
}

impl RouteState {
    /// The empty route of a vehicle that can serve no job: never searched.
    fn unusable(dims: usize) -> Self {
        Self {
            jobs: Vec::new(),
            departure: vec![f64::INFINITY; 2],
            latest: vec![f64::NEG_INFINITY; 2],
            prefix_max: vec![0; 2 * dims],
            suffix_max: vec![0; 2 * dims],
            distance: 0.0,
        }
    }
}

/// A solution's cost, compared in field order.
#[derive(Debug, Clone, Copy)]
struct Cost {
    /// Jobs the start serves that this leaves out (never accepted).
    dropped: usize,
    unserved: usize,
    /// Vehicles used, under [`Objective::Vehicles`]; else 0.
    vehicles: usize,
    distance: f64,
}

impl Cost {
    fn counts(&self) -> (usize, usize, usize) {
        (self.dropped, self.unserved, self.vehicles)
    }

    /// Better by more than rounding.
    fn total_cmp(&self, other: &Self) -> Ordering {
        self.counts().cmp(&other.counts()).then_with(|| {
            if self.distance < other.distance - 1e-9 {
                Ordering::Less
            } else if other.distance < self.distance - 1e-9 {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
    }
}

#[derive(Clone)]
struct State {
    routes: Vec<RouteState>,
    /// Route of each job, `None` when unserved.
    route_of: Vec<Option<usize>>,
    unserved: Vec<usize>,
    cost: Cost,
    /// What the move under way changed, while one is: a rejected move is
    /// undone from it, instead of every move working on a copy of the
    /// whole solution (most moves are rejected, and a move touches a few
    /// routes of many).
    undo: Option<Undo>,
}

#[derive(Clone)]
struct Undo {
    /// Each route the move replaced, as it was, once.
    routes: Vec<(usize, RouteState)>,
    /// Each change to `route_of`, with the value before, in order.
    route_of: Vec<(usize, Option<usize>)>,
    unserved: Vec<usize>,
    cost: Cost,
}

impl State {
    fn set_route(&mut self, r: usize, route: RouteState) {
        let old = std::mem::replace(&mut self.routes[r], route);
        if let Some(undo) = &mut self.undo
            && !undo.routes.iter().any(|(saved, _)| *saved == r)
        {
            undo.routes.push((r, old));
        }
    }

    fn set_route_of(&mut self, job: usize, route: Option<usize>) {
        let old = std::mem::replace(&mut self.route_of[job], route);
        if let Some(undo) = &mut self.undo {
            undo.route_of.push((job, old));
        }
    }

    /// Starts recording a move.
    fn begin(&mut self) {
        self.undo = Some(Undo {
            routes: Vec::new(),
            route_of: Vec::new(),
            unserved: self.unserved.clone(),
            cost: self.cost,
        });
    }

    /// Keeps the move.
    fn commit(&mut self) {
        self.undo = None;
    }

    /// Undoes the move.
    fn rollback(&mut self) {
        let undo = self.undo.take().expect("a move is under way");
        for (r, route) in undo.routes {
            self.routes[r] = route;
        }
        for (job, route) in undo.route_of.into_iter().rev() {
            self.route_of[job] = route;
        }
        self.unserved = undo.unserved;
        self.cost = undo.cost;
    }
}

/// Why a place does not take a job, in the order the rules are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// The vehicle reaches it too late from here and from every later place.
    TooLate,
    /// Too late here, or it makes a later stop or the return late.
    Window,
    Capacity,
    /// Dearer than a place already found.
    Dearer,
    Distance,
    Duration,
}

/// Where a job goes.
#[derive(Clone, Copy)]
struct Place {
    route: usize,
    /// Insert after node `after` (0 = right after the depot).
    after: usize,
    cost: f64,
}

impl<'a> Model<'a> {
    fn new(problem: &'a Problem, matrix: &'a Matrix, objective: Objective) -> Self {
        let vehicles = problem.vehicles.len();
        let jobs = problem.jobs.len();
        let mut compatible = Vec::with_capacity(jobs * vehicles);
        for job in 0..jobs {
            compatible.extend((0..vehicles).map(|v| may_carry(problem, job, v)));
        }
        let neighbours: Vec<Vec<u32>> = (0..jobs)
            .map(|j| {
                let from = problem.jobs[j].location;
                let distance = |other: u32| matrix.distance(from, problem.jobs[other as usize].location);
                let key = |a: &u32, b: &u32| {
                    distance(*a)
                        .total_cmp(&distance(*b))
                        .then((*a as usize != j).cmp(&(*b as usize != j)))
                };
                let mut order: Vec<u32> = (0..jobs as u32).collect();
                let kept = NEIGHBOURS.min(jobs);
                if kept < jobs {
                    order.select_nth_unstable_by(kept - 1, key);
                    order.truncate(kept);
                }
                order.sort_by(key);
                order
            })
            .collect();
        let scale = if jobs > 1 {
            let nearest: f64 = neighbours
                .iter()
                .enumerate()
                .map(|(j, n)| matrix.distance(problem.jobs[j].location, problem.jobs[n[1] as usize].location))
                .sum();
            (nearest / jobs as f64).max(1e-9)
        } else {
            1.0
        };
        let mut model = Self {
            problem,
            matrix,
            dims: problem.vehicles[0].capacity.len(),
            compatible,
            neighbours,
            class: Vec::new(),
            vehicle_cost: if objective == Objective::Vehicles { VEHICLE } else { 0.0 },
            vehicles_first: objective == Objective::Vehicles,
            served_at_start: vec![false; jobs],
            scale,
        };
        // A vehicle that cannot even drive from its start to its end depot
        // within its shift and limits serves nothing.
        for v in 0..vehicles {
            if model.route(v, Vec::new()).is_none() {
                for j in 0..jobs {
                    model.compatible[j * vehicles + v] = false;
                }
            }
        }
        let compatible = &model.compatible;
        model.class = (0..vehicles)
            .map(|v| {
                let me = &problem.vehicles[v];
                let same_jobs =
                    |w: usize| (0..jobs).all(|j| compatible[j * vehicles + w] == compatible[j * vehicles + v]);
                (0..v)
                    .find(|&w| problem.vehicles[w] == *me && same_jobs(w))
                    .unwrap_or(v)
            })
            .collect();
        model
    }

    fn vehicles(&self) -> usize {
        self.problem.vehicles.len()
    }

    /// The place of node `k` of vehicle `v`'s route.
    fn location(&self, v: usize, jobs: &[usize], k: usize) -> usize {
        let vehicle = &self.problem.vehicles[v];
        match k {
            0 => vehicle.start,
            k if k > jobs.len() => vehicle.end,
            k => self.problem.jobs[jobs[k - 1]].location,
        }
    }

    /// The amount of `job` in dimension `d`.
    fn demand(&self, job: usize, d: usize) -> i64 {
        i64::from(self.problem.jobs[job].demand[d])
    }

    /// Builds the caches of `jobs` on vehicle `v`; `None` if a rule breaks.
    fn route(&self, v: usize, jobs: Vec<usize>) -> Option<RouteState> {
        let vehicle = &self.problem.vehicles[v];
        let n = jobs.len();
        let dims = self.dims;
        let mut departure = vec![0.0; n + 2];
        let mut latest = vec![0.0; n + 2];
        let mut load = vec![0i64; (n + 2) * dims];
        let mut distance = 0.0;
        departure[0] = vehicle.shift.start;
        for (d, on_board) in load[..dims].iter_mut().enumerate() {
            *on_board = jobs
                .iter()
                .filter(|&&j| self.problem.jobs[j].kind == JobKind::Delivery)
                .map(|&j| self.demand(j, d))
                .sum();
        }
        for k in 1..=n + 1 {
            let (from, to) = (self.location(v, &jobs, k - 1), self.location(v, &jobs, k));
            distance += self.matrix.distance(from, to);
            let arrival = departure[k - 1] + self.matrix.duration(from, to);
            if k == n + 1 {
                departure[k] = arrival;
                if arrival > vehicle.shift.end + SLACK {
                    return None;
                }
                load.copy_within((k - 1) * dims..k * dims, k * dims);
                continue;
            }
            let job = &self.problem.jobs[jobs[k - 1]];
            let start = arrival.max(job.window.start);
            if start > job.window.end + SLACK {
                return None;
            }
            departure[k] = start + job.service;
            for d in 0..dims {
                let change = match job.kind {
                    JobKind::Delivery => -self.demand(jobs[k - 1], d),
                    JobKind::Pickup => self.demand(jobs[k - 1], d),
                };
                load[k * dims + d] = load[(k - 1) * dims + d] + change;
            }
        }
        latest[n + 1] = vehicle.shift.end;
        for k in (1..=n).rev() {
            let job = &self.problem.jobs[jobs[k - 1]];
            let next = self.location(v, &jobs, k + 1);
            let here = job.location;
            latest[k] = job
                .window
                .end
                .min(latest[k + 1] - self.matrix.duration(here, next) - job.service);
        }
        let mut prefix_max = load.clone();
        let mut suffix_max = load;
        for k in 1..n + 2 {
            for d in 0..dims {
                prefix_max[k * dims + d] = prefix_max[k * dims + d].max(prefix_max[(k - 1) * dims + d]);
            }
        }
        for k in (0..n + 1).rev() {
            for d in 0..dims {
                suffix_max[k * dims + d] = suffix_max[k * dims + d].max(suffix_max[(k + 1) * dims + d]);
            }
        }
        let capacity = &vehicle.capacity;
        if (0..dims).any(|d| prefix_max[(n + 1) * dims + d] > i64::from(capacity[d])) {
            return None;
        }
        if vehicle.max_distance.is_some_and(|m| distance > m + SLACK) || !self.duration_ok(v, &jobs) {
            return None;
        }
        Some(RouteState {
            jobs,
            departure,
            latest,
            prefix_max,
            suffix_max,
            distance,
        })
    }

    /// Whether the route keeps the vehicle's duration limit, counting from
    /// the latest departure that reaches the first stop as early as the
    /// schedule serves it.
    fn duration_ok(&self, v: usize, jobs: &[usize]) -> bool {
        let Some(limit) = self.problem.vehicles[v].max_duration else {
            return true;
        };
        let schedule = self.schedule(v, jobs);
        schedule.end - schedule.start <= limit + SLACK
    }

    /// The stops' times of `jobs` on vehicle `v`, leaving the depot as late
    /// as possible without serving the first stop later.
    fn schedule(&self, v: usize, jobs: &[usize]) -> Route {
        let vehicle = &self.problem.vehicles[v];
        let mut start = vehicle.shift.start;
        if let Some(&first) = jobs.first() {
            let job = &self.problem.jobs[first];
            let travel = self.matrix.duration(vehicle.start, job.location);
            start = start.max(job.window.start - travel);
        }
        let mut time = start;
        let mut stops = Vec::with_capacity(jobs.len());
        for k in 1..=jobs.len() {
            let job = &self.problem.jobs[jobs[k - 1]];
            let arrival = time + self.matrix.duration(self.location(v, jobs, k - 1), job.location);
            time = arrival.max(job.window.start) + job.service;
            stops.push(Stop {
                job: jobs[k - 1],
                arrival,
                departure: time,
            });
        }
        let end = time + self.matrix.duration(self.location(v, jobs, jobs.len()), vehicle.end);
        Route {
            vehicle: v,
            start,
            end,
            distance: self.problem.route_distance(self.matrix, v, jobs),
            stops,
        }
    }

    fn state_of(&self, solution: &Solution) -> Option<State> {
        let mut routes: Vec<RouteState> = (0..self.vehicles())
            .map(|v| {
                self.route(v, Vec::new())
                    .unwrap_or_else(|| RouteState::unusable(self.dims))
            })
            .collect();
        let mut route_of = vec![None; self.problem.jobs.len()];
        for route in &solution.routes {
            let jobs = route.jobs();
            if jobs
                .iter()
                .any(|&j| !self.compatible[j * self.vehicles() + route.vehicle])
            {
                return None;
            }
            for &j in &jobs {
                route_of[j] = Some(route.vehicle);
            }
            routes[route.vehicle] = self.route(route.vehicle, jobs)?;
        }
        let unserved = (0..self.problem.jobs.len())
            .filter(|&j| route_of[j].is_none())
            .collect();
        let mut state = State {
            routes,
            route_of,
            unserved,
            cost: Cost {
                dropped: 0,
                unserved: 0,
                vehicles: 0,
                distance: 0.0,
            },
            undo: None,
        };
        state.cost = self.cost(&state);
        Some(state)
    }

    fn cost(&self, state: &State) -> Cost {
        let used = state.routes.iter().filter(|r| !r.jobs.is_empty());
        Cost {
            dropped: state.unserved.iter().filter(|&&j| self.served_at_start[j]).count(),
            unserved: state.unserved.len(),
            vehicles: if self.vehicles_first { used.clone().count() } else { 0 },
            distance: used.map(|r| r.distance).sum(),
        }
    }

    /// The cheapest place for `job` in `state`, skipping each place with
    /// chance `blink`.
    fn best_place(&self, state: &State, job: usize, blink: f64, rng: &mut SmallRng) -> Option<Place> {
        let vehicles = self.vehicles();
        let mut tried_empty = Vec::new();
        let mut best: Option<Place> = None;
        for (v, route) in state.routes.iter().enumerate() {
            if !self.compatible[job * vehicles + v] {
                continue;
            }
            if route.jobs.is_empty() {
                if tried_empty.contains(&self.class[v]) {
                    continue;
                }
                tried_empty.push(self.class[v]);
            }
            for after in 0..=route.jobs.len() {
                if blink > 0.0 && rng.random::<f64>() < blink {
                    continue;
                }
                let bound = best.map_or(f64::INFINITY, |b| b.cost);
                match self.fit(route, v, job, after, bound) {
                    Ok(cost) => best = Some(Place { route: v, after, cost }),
                    Err(Fault::TooLate) => break,
                    Err(_) => {}
                }
            }
        }
        best
    }

    /// What putting `job` after node `after` of vehicle `v`'s route adds to
    /// the cost, if every rule holds and it is below `bound`. Rules are
    /// checked in [`Fault`] order.
    fn fit(&self, route: &RouteState, v: usize, job: usize, after: usize, bound: f64) -> Result<f64, Fault> {
        let vehicle = &self.problem.vehicles[v];
        let target = &self.problem.jobs[job];
        let from = self.location(v, &route.jobs, after);
        let arrival = route.departure[after] + self.matrix.duration(from, target.location);
        if arrival > target.window.end {
            return Err(Fault::TooLate);
        }
        let to = self.location(v, &route.jobs, after + 1);
        let departure = arrival.max(target.window.start) + target.service;
        if departure + self.matrix.duration(target.location, to) > route.latest[after + 1] {
            return Err(Fault::Window);
        }
        let maxima = match target.kind {
            JobKind::Delivery => &route.prefix_max,
            JobKind::Pickup => &route.suffix_max,
        };
        let dims = self.dims;
        if (0..dims).any(|d| maxima[after * dims + d] + self.demand(job, d) > i64::from(vehicle.capacity[d])) {
            return Err(Fault::Capacity);
        }
        let delta = self.matrix.distance(from, target.location) + self.matrix.distance(target.location, to)
            - self.matrix.distance(from, to);
        // An idle vehicle costs nothing, not its depot-to-depot leg.
        let cost = if route.jobs.is_empty() {
            delta + self.vehicle_cost + self.matrix.distance(vehicle.start, vehicle.end)
        } else {
            delta
        };
        if cost >= bound {
            return Err(Fault::Dearer);
        }
        if vehicle.max_distance.is_some_and(|m| route.distance + delta > m) {
            return Err(Fault::Distance);
        }
        if vehicle.max_duration.is_some() {
            let mut jobs = route.jobs.clone();
            jobs.insert(after, job);
            if !self.duration_ok(v, &jobs) {
                return Err(Fault::Duration);
            }
        }
        Ok(cost)
    }

    /// Why no vehicle takes `job` in `state`: per vehicle that may carry
    /// it, the rule that fails at the place that gets furthest through the
    /// checks; the most common of those.
    fn reason(&self, state: &State, job: usize) -> UnassignedReason {
        let allowed = |v: usize| may_carry(self.problem, job, v);
        let mut votes: Vec<Fault> = Vec::new();
        for (v, route) in state.routes.iter().enumerate().filter(|(v, _)| allowed(*v)) {
            if !self.compatible[job * self.vehicles() + v] {
                // It cannot even drive between its depots in its shift.
                votes.push(Fault::Window);
                continue;
            }
            let faults: Vec<Result<f64, Fault>> = (0..=route.jobs.len())
                .map(|after| self.fit(route, v, job, after, f64::INFINITY))
                .collect();
            // Where it fits, only chance kept it out: no rule to blame.
            if faults.iter().all(Result::is_err) {
                votes.extend(faults.into_iter().filter_map(Result::err).max());
            }
        }
        if !(0..self.vehicles()).any(allowed) {
            return UnassignedReason::Skills;
        }
        let reason = |fault: Fault| match fault {
            Fault::TooLate | Fault::Window | Fault::Dearer => UnassignedReason::TimeWindow,
            Fault::Capacity => UnassignedReason::Capacity,
            Fault::Distance => UnassignedReason::MaxDistance,
            Fault::Duration => UnassignedReason::MaxDuration,
        };
        super::most_common(votes.into_iter().map(reason)).unwrap_or(UnassignedReason::Unknown)
    }

    /// Removes strings of stops near a random served job (SISR's ruin).
    fn ruin(&self, state: &mut State, rng: &mut SmallRng) -> Option<Vec<usize>> {
        let served = state.route_of.iter().filter(|r| r.is_some()).count();
        let used = state.routes.iter().filter(|r| !r.jobs.is_empty()).count();
        if served == 0 {
            return Some(Vec::new());
        }
        let mean_length = served as f64 / used as f64;
        let max_string = MAX_STRING.min(mean_length);
        let max_strings = 4.0 * MEAN_REMOVED / (1.0 + max_string) - 1.0;
        let strings = rng.random_range(1.0..max_strings.max(1.0) + 1.0).floor() as usize;
        let seed = random_served(state, rng);
        if used > 1 && rng.random::<f64>() < WHOLE_ROUTE {
            // A fleet one vehicle too large is a local optimum strings
            // rarely leave: now and then empty the shorter of two routes.
            let other = state.route_of[random_served(state, rng)].expect("a served job has a route");
            let mine = state.route_of[seed].expect("the seed is served");
            let r = if state.routes[other].jobs.len() < state.routes[mine].jobs.len() {
                other
            } else {
                mine
            };
            let removed = state.routes[r].jobs.clone();
            for &j in &removed {
                state.set_route_of(j, None);
            }
            state.set_route(r, self.route(r, Vec::new())?);
            return Some(removed);
        }
        let mut ruined: Vec<usize> = Vec::new();
        let mut removed = Vec::new();
        for &near in &self.neighbours[seed] {
            if ruined.len() >= strings {
                break;
            }
            let near = near as usize;
            let Some(r) = state.route_of[near] else { continue };
            if ruined.contains(&r) {
                continue;
            }
            let jobs = &state.routes[r].jobs;
            let len = jobs.len();
            let at = jobs
                .iter()
                .position(|&j| j == near)
                .expect("route_of matches the route");
            let length = rng.random_range(1.0..max_string.min(len as f64) + 1.0).floor() as usize;
            let length = length.clamp(1, len);
            let mut keep = 0;
            if rng.random::<bool>() && length < len {
                keep = 1;
                while length + keep < len && rng.random::<f64>() >= SPLIT_STOP {
                    keep += 1;
                }
            }
            let span = length + keep;
            let first = rng.random_range(at.saturating_sub(span - 1)..=at.min(len - span));
            let kept = first + rng.random_range(0..=length);
            let is_removed = |k: usize| (first..first + span).contains(&k) && !(kept..kept + keep).contains(&k);
            let mut rest = Vec::with_capacity(len);
            let before = removed.len();
            for (k, &j) in state.routes[r].jobs.iter().enumerate() {
                if is_removed(k) {
                    removed.push(j);
                } else {
                    rest.push(j);
                }
            }
            for &j in &removed[before..] {
                state.set_route_of(j, None);
            }
            // Without the triangle inequality (a user's matrix) a shortcut
            // can arrive later or run longer: then this move is not made.
            state.set_route(r, self.route(r, rest)?);
            ruined.push(r);
        }
        Some(removed)
    }

    /// Puts `jobs` and the unserved back, cheapest place first (SISR's
    /// recreate with blinks).
    fn recreate(&self, state: &mut State, mut jobs: Vec<usize>, open: bool, rng: &mut SmallRng) {
        // Jobs no vehicle can take would cost every move a full scan each.
        let retried = (RETRIED / state.unserved.len().max(1) as f64).min(1.0);
        let (retry, keep): (Vec<usize>, Vec<usize>) =
            state.unserved.iter().partition(|_| rng.random::<f64>() < retried);
        state.unserved = keep;
        jobs.extend(retry);
        if open {
            self.open_route(state, &mut jobs);
        }
        match rng.random_range(0..11) {
            0..4 => {
                for i in (1..jobs.len()).rev() {
                    jobs.swap(i, rng.random_range(0..=i));
                }
            }
            4..8 => jobs.sort_by_key(|&j| std::cmp::Reverse(self.problem.jobs[j].demand.iter().sum::<u32>())),
            8..10 => jobs.sort_by(|&a, &b| self.depot_distance(b).total_cmp(&self.depot_distance(a))),
            _ => jobs.sort_by(|&a, &b| self.depot_distance(a).total_cmp(&self.depot_distance(b))),
        }
        self.insert(state, jobs, BLINK, rng);
    }

    /// Puts each of `jobs` in turn at its cheapest place, or leaves it
    /// unserved.
    fn insert(&self, state: &mut State, jobs: Vec<usize>, blink: f64, rng: &mut SmallRng) {
        for job in jobs {
            let placed = self.best_place(state, job, blink, rng).and_then(|place| {
                let mut route = state.routes[place.route].jobs.clone();
                route.insert(place.after, job);
                // The place was checked; a rounding difference between the
                // caches and a replay leaves the job out this time.
                Some((place.route, self.route(place.route, route)?))
            });
            match placed {
                Some((r, updated)) => {
                    state.set_route(r, updated);
                    state.set_route_of(job, Some(r));
                }
                None => state.unserved.push(job),
            }
        }
    }

    /// Gives the first of `jobs` an idle vehicle of its own, if one can
    /// take it alone, and takes it out of `jobs`.
    fn open_route(&self, state: &mut State, jobs: &mut Vec<usize>) {
        let Some(&job) = jobs.first() else { return };
        let vehicles = self.vehicles();
        let idle = (0..vehicles).find(|&v| state.routes[v].jobs.is_empty() && self.compatible[job * vehicles + v]);
        if let Some(v) = idle
            && let Some(route) = self.route(v, vec![job])
        {
            state.set_route(v, route);
            state.set_route_of(job, Some(v));
            jobs.remove(0);
        }
    }

    fn depot_distance(&self, job: usize) -> f64 {
        self.matrix
            .distance(self.problem.vehicles[0].start, self.problem.jobs[job].location)
    }

    fn anneal(
        &self,
        mut current: State,
        seed: u64,
        deadline: Instant,
        stagnation: Option<Duration>,
        annealing: Annealing,
    ) -> State {
        let mut rng = SmallRng::seed_from_u64(0x5eed_5151 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut best = current.clone();
        let began = Instant::now();
        let total = deadline.saturating_duration_since(began).as_secs_f64().max(1e-9);
        let (t0, t1) = (annealing.start * self.scale, annealing.end * self.scale);
        let mut improved_at = began;
        let mut temperature = t0;
        for iteration in 0u64.. {
            if iteration % 32 == 0 {
                let now = Instant::now();
                if now >= deadline || stagnation.is_some_and(|s| now - improved_at >= s) {
                    break;
                }
                let progress = (now - began).as_secs_f64() / total;
                temperature = t0 * (t1 / t0).powf(progress.min(1.0));
            }
            let before = current.cost;
            current.begin();
            let Some(removed) = self.ruin(&mut current, &mut rng) else {
                current.rollback();
                continue;
            };
            let open = !self.vehicles_first && rng.random::<f64>() < OPEN_ROUTE;
            self.recreate(&mut current, removed, open, &mut rng);
            current.cost = self.cost(&current);
            // Annealing on distance among equals; the counts decide alone.
            let accept = match current.cost.counts().cmp(&before.counts()) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => {
                    let slack = -temperature * rng.random::<f64>().max(f64::MIN_POSITIVE).ln();
                    current.cost.distance < before.distance + slack
                }
            };
            if !accept {
                current.rollback();
                continue;
            }
            current.commit();
            if current.cost.total_cmp(&best.cost) == Ordering::Less {
                best = current.clone();
                improved_at = Instant::now();
            }
        }
        best
    }

    /// The improved routes as a [`Solution`], with the reason each
    /// unserved job stays out.
    fn solution(&self, state: &State) -> Solution {
        let routes: Vec<Route> = state
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.jobs.is_empty())
            .map(|(v, r)| self.schedule(v, &r.jobs))
            .collect();
        let mut unassigned: Vec<Unassigned> = state
            .unserved
            .iter()
            .map(|&job| Unassigned {
                job,
                reason: self.reason(state, job),
            })
            .collect();
        unassigned.sort_unstable_by_key(|u| u.job);
        let distance = routes.iter().map(|r| r.distance).sum();
        Solution {
            routes,
            unassigned,
            distance,
        }
    }
}

/// Whether the lock and skills of job `job` let vehicle `v` carry it.
fn may_carry(problem: &Problem, job: usize, v: usize) -> bool {
    let (job, vehicle) = (&problem.jobs[job], &problem.vehicles[v]);
    job.vehicle.is_none_or(|locked| locked == v) && job.skills.iter().all(|s| vehicle.skills.contains(s))
}

/// A served job drawn at random; `state` must serve one.
fn random_served(state: &State, rng: &mut SmallRng) -> usize {
    loop {
        let j = rng.random_range(0..state.route_of.len());
        if state.route_of[j].is_some() {
            return j;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{Job, TimeWindow, Vehicle};
    use proptest::prelude::{ProptestConfig, any, prop_assert, prop_assert_eq, proptest};

    /// Every rule replayed from the solution alone, independently of the
    /// caches; returns what breaks.
    fn violations(problem: &Problem, matrix: &Matrix, solution: &Solution) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = vec![0; problem.jobs.len()];
        for route in &solution.routes {
            let vehicle = &problem.vehicles[route.vehicle];
            let dims = vehicle.capacity.len();
            let mut load: Vec<i64> = (0..dims)
                .map(|d| {
                    route
                        .stops
                        .iter()
                        .filter(|s| problem.jobs[s.job].kind == JobKind::Delivery)
                        .map(|s| i64::from(problem.jobs[s.job].demand[d]))
                        .sum()
                })
                .collect();
            let over = |load: &[i64]| (0..dims).any(|d| load[d] > i64::from(vehicle.capacity[d]));
            if over(&load) {
                out.push(format!("vehicle {}: overloaded leaving the depot", route.vehicle));
            }
            if route.start < vehicle.shift.start - 1e-9 {
                out.push(format!("vehicle {} leaves before its shift", route.vehicle));
            }
            let (mut time, mut place, mut distance) = (route.start, vehicle.start, 0.0);
            for stop in &route.stops {
                let job = &problem.jobs[stop.job];
                seen[stop.job] += 1;
                if job.vehicle.is_some_and(|v| v != route.vehicle) {
                    out.push(format!("job {} is locked elsewhere", stop.job));
                }
                if !job.skills.iter().all(|s| vehicle.skills.contains(s)) {
                    out.push(format!(
                        "job {} needs a skill vehicle {} lacks",
                        stop.job, route.vehicle
                    ));
                }
                let arrival = time + matrix.duration(place, job.location);
                distance += matrix.distance(place, job.location);
                let served = arrival.max(job.window.start);
                if served > job.window.end + 1e-6 {
                    out.push(format!("job {} served at {served} after {}", stop.job, job.window.end));
                }
                time = served + job.service;
                if (stop.arrival - arrival).abs() > 1e-6 || (stop.departure - time).abs() > 1e-6 {
                    out.push(format!("job {}: stop times do not replay", stop.job));
                }
                for (on_board, &amount) in load.iter_mut().zip(&job.demand) {
                    let amount = i64::from(amount);
                    *on_board += if job.kind == JobKind::Pickup { amount } else { -amount };
                }
                if over(&load) {
                    out.push(format!("vehicle {}: overloaded after job {}", route.vehicle, stop.job));
                }
                place = job.location;
            }
            let end = time + matrix.duration(place, vehicle.end);
            distance += matrix.distance(place, vehicle.end);
            if end > vehicle.shift.end + 1e-6 || (end - route.end).abs() > 1e-6 {
                out.push(format!(
                    "vehicle {} back at {end} (shift end {})",
                    route.vehicle, vehicle.shift.end
                ));
            }
            if vehicle.max_distance.is_some_and(|m| distance > m + 1e-6) {
                out.push(format!("vehicle {} drives {distance}", route.vehicle));
            }
            if vehicle.max_duration.is_some_and(|m| end - route.start > m + 1e-6) {
                out.push(format!("vehicle {} works {}", route.vehicle, end - route.start));
            }
            if (distance - route.distance).abs() > 1e-6 {
                out.push(format!(
                    "vehicle {}: distance {} does not replay",
                    route.vehicle, route.distance
                ));
            }
        }
        for u in &solution.unassigned {
            seen[u.job] += 1;
        }
        for (j, n) in seen.into_iter().enumerate() {
            if n != 1 {
                out.push(format!("job {j} appears {n} times"));
            }
        }
        out
    }

    fn search(objective: Objective, millis: u64, threads: usize) -> Search {
        Search {
            objective,
            time_limit: Duration::from_millis(millis),
            stagnation: None,
            threads,
            annealing: Annealing::default(),
        }
    }

    fn served(solution: &Solution) -> usize {
        solution.routes.iter().map(|r| r.stops.len()).sum()
    }

    /// Nothing served yet: every job unassigned.
    fn nothing_served(problem: &Problem) -> Solution {
        Solution {
            routes: Vec::new(),
            unassigned: (0..problem.jobs.len())
                .map(|job| Unassigned {
                    job,
                    reason: UnassignedReason::Unknown,
                })
                .collect(),
            distance: 0.0,
        }
    }

    /// A random problem on points in a square; `metric` false scrambles the
    /// matrix so the triangle inequality fails.
    fn instance(seed: u64, metric: bool) -> (Problem, Matrix) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let jobs = rng.random_range(3..40);
        let depots = rng.random_range(1..3);
        let size = depots + jobs;
        let points: Vec<(f64, f64)> = (0..size)
            .map(|_| (rng.random_range(0.0..100.0), rng.random_range(0.0..100.0)))
            .collect();
        let mut distances: Vec<f64> = (0..size * size)
            .map(|k| {
                let (a, b) = (points[k / size], points[k % size]);
                ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
            })
            .collect();
        if !metric {
            for d in distances.iter_mut().filter(|d| **d > 0.0) {
                *d *= rng.random_range(0.2..3.0);
            }
        }
        let matrix = Matrix::new(size, distances.clone(), distances).unwrap();
        let dims = rng.random_range(1..3);
        let skills = ["chilled", "frozen"];
        let vehicles: Vec<Vehicle> = (0..rng.random_range(1..5))
            .map(|_| {
                let depot = rng.random_range(0..depots);
                Vehicle {
                    start: depot,
                    end: rng.random_range(0..depots),
                    capacity: (0..dims).map(|_| rng.random_range(10..60)).collect(),
                    shift: TimeWindow {
                        start: rng.random_range(0.0..50.0),
                        end: rng.random_range(300.0..600.0),
                    },
                    max_duration: rng.random_bool(0.3).then(|| rng.random_range(100.0..400.0)),
                    max_distance: rng.random_bool(0.3).then(|| rng.random_range(100.0..500.0)),
                    skills: skills
                        .iter()
                        .filter(|_| rng.random_bool(0.5))
                        .map(|s| s.to_string())
                        .collect(),
                }
            })
            .collect();
        let jobs = (0..jobs)
            .map(|j| {
                let open = rng.random_range(0.0..400.0);
                Job {
                    location: depots + j,
                    kind: if rng.random_bool(0.5) {
                        JobKind::Pickup
                    } else {
                        JobKind::Delivery
                    },
                    demand: (0..dims).map(|_| rng.random_range(0..20)).collect(),
                    window: TimeWindow {
                        start: open,
                        end: open + rng.random_range(0.0..200.0),
                    },
                    service: rng.random_range(0.0..15.0),
                    skills: skills
                        .iter()
                        .filter(|_| rng.random_bool(0.2))
                        .map(|s| s.to_string())
                        .collect(),
                    vehicle: rng.random_bool(0.1).then(|| rng.random_range(0..vehicles.len())),
                }
            })
            .collect();
        (Problem { vehicles, jobs }, matrix)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// From nothing served, the search serves jobs without breaking a
        /// rule, whatever the windows, loads, skills, locks and limits;
        /// and from its own result it gets no worse.
        #[test]
        fn improvement_keeps_every_rule(seed in any::<u64>(), metric in any::<bool>(), vehicles_first in any::<bool>()) {
            let (problem, matrix) = instance(seed, metric);
            let objective = if vehicles_first { Objective::Vehicles } else { Objective::Distance };
            let first = improve(&problem, &matrix, &nothing_served(&problem), &search(objective, 40, 1))
                .expect("an empty start is valid");
            prop_assert_eq!(violations(&problem, &matrix, &first), Vec::<String>::new());
            let second = improve(&problem, &matrix, &first, &search(objective, 40, 2))
                .expect("its own result is a valid start");
            prop_assert_eq!(violations(&problem, &matrix, &second), Vec::<String>::new());
            prop_assert!(served(&second) >= served(&first));
            if served(&second) == served(&first) {
                match objective {
                    Objective::Distance => prop_assert!(second.distance <= first.distance + 1e-6),
                    Objective::Vehicles => prop_assert!(second.routes.len() <= first.routes.len()),
                }
            }
        }
    }

    /// Each route's jobs, each job's route, the unserved and the routes'
    /// schedule caches: what a move may change.
    fn snapshot(state: &State) -> (Vec<Vec<usize>>, Vec<Option<usize>>, Vec<usize>, Vec<f64>) {
        (
            state.routes.iter().map(|r| r.jobs.clone()).collect(),
            state.route_of.clone(),
            state.unserved.clone(),
            state
                .routes
                .iter()
                .flat_map(|r| r.departure.iter().chain(&r.latest).copied())
                .collect(),
        )
    }

    #[test]
    fn a_rejected_move_leaves_the_solution_as_it_was() {
        for seed in 0..20 {
            let (problem, matrix) = instance(seed, true);
            let model = Model::new(&problem, &matrix, Objective::Distance);
            let solved = improve(
                &problem,
                &matrix,
                &nothing_served(&problem),
                &search(Objective::Distance, 20, 1),
            )
            .expect("an empty start is valid");
            let mut state = model.state_of(&solved).expect("its own result is a valid start");
            let mut rng = SmallRng::seed_from_u64(seed);
            for round in 0..200 {
                let before = snapshot(&state);
                state.begin();
                if let Some(removed) = model.ruin(&mut state, &mut rng) {
                    model.recreate(&mut state, removed, round % 2 == 0, &mut rng);
                    state.cost = model.cost(&state);
                }
                state.rollback();
                assert!(snapshot(&state) == before, "seed {seed}, round {round}");
            }
        }
    }

    #[test]
    fn a_start_that_breaks_a_rule_is_left_alone() {
        let (problem, matrix) = instance(7, true);
        let mut start = nothing_served(&problem);
        // Every job on vehicle 0 in index order: far beyond one vehicle.
        let jobs: Vec<usize> = (0..problem.jobs.len()).collect();
        let model = Model::new(&problem, &matrix, Objective::Distance);
        start.routes.push(model.schedule(0, &jobs));
        start.unassigned.clear();
        assert!(!violations(&problem, &matrix, &start).is_empty());
        assert!(improve(&problem, &matrix, &start, &search(Objective::Distance, 10, 1)).is_none());
    }

    #[test]
    fn the_search_shortens_a_poor_route() {
        // Six stops on a line served in a zig-zag: the straight order is
        // the only optimum, 2 × 60.
        let points: [f64; 7] = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0];
        let n = points.len();
        let values: Vec<f64> = (0..n * n).map(|k| (points[k / n] - points[k % n]).abs()).collect();
        let matrix = Matrix::new(n, values.clone(), values).unwrap();
        let problem = Problem {
            vehicles: vec![Vehicle::new(
                0,
                vec![100],
                TimeWindow {
                    start: 0.0,
                    end: 1000.0,
                },
            )],
            jobs: (1..n)
                .map(|l| {
                    Job::new(
                        l,
                        vec![1],
                        TimeWindow {
                            start: 0.0,
                            end: 1000.0,
                        },
                        0.0,
                    )
                })
                .collect(),
        };
        let model = Model::new(&problem, &matrix, Objective::Distance);
        let zigzag = [5, 0, 4, 1, 3, 2];
        let start = Solution {
            routes: vec![model.schedule(0, &zigzag)],
            unassigned: Vec::new(),
            distance: problem.route_distance(&matrix, 0, &zigzag),
        };
        let improved = improve(&problem, &matrix, &start, &search(Objective::Distance, 300, 1)).unwrap();
        assert_eq!(improved.distance, 120.0);
        assert!(violations(&problem, &matrix, &improved).is_empty());
    }

    #[test]
    fn what_the_first_stage_left_out_is_placed_and_the_rest_gets_its_blocking_rule() {
        // Depot at 0, jobs at 10 on a line; two vehicles of 10 units.
        let matrix = Matrix::new(2, vec![0.0, 10.0, 10.0, 0.0], vec![0.0, 10.0, 10.0, 0.0]).unwrap();
        let day = TimeWindow { start: 0.0, end: 100.0 };
        let job = |demand: u32, window: TimeWindow, skills: &[&str]| Job {
            skills: skills.iter().map(|s| s.to_string()).collect(),
            ..Job::new(1, vec![demand], window, 0.0)
        };
        let problem = Problem {
            vehicles: vec![Vehicle::new(0, vec![10], day), Vehicle::new(0, vec![10], day)],
            jobs: vec![
                job(8, day, &[]),
                job(8, day, &[]),
                job(20, day, &[]),
                job(1, TimeWindow { start: 0.0, end: 5.0 }, &[]),
                job(1, day, &["frozen"]),
            ],
        };
        // As vrp-core leaves it when its time runs out mid-construction.
        let start = nothing_served(&problem);
        let solved = improve(&problem, &matrix, &start, &search(Objective::Distance, 50, 1)).unwrap();
        assert_eq!(violations(&problem, &matrix, &solved), Vec::<String>::new());
        assert_eq!(solved.routes.len(), 2);
        let reasons: Vec<(usize, UnassignedReason)> = solved.unassigned.iter().map(|u| (u.job, u.reason)).collect();
        assert_eq!(
            reasons,
            vec![
                (2, UnassignedReason::Capacity),
                (3, UnassignedReason::TimeWindow),
                (4, UnassignedReason::Skills),
            ]
        );
    }
}
