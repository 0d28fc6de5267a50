//! Reader for the Solomon (1987) VRPTW benchmark text format, also used by the
//! Gehring & Homberger (1999) instances.
//!
//! ```text
//! C101
//!
//! VEHICLE
//! NUMBER     CAPACITY
//!   25         200
//!
//! CUSTOMER
//! CUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME
//!
//!     0      40         50          0          0       1236          0
//!     1      45         68         10        912        967         90
//! ```
//!
//! The first customer row is the depot; its ready time and due date are the
//! vehicles' shift. Travel distance and travel time are both the unrounded
//! Euclidean distance, the convention of the best-known solutions in
//! `data/vrptw/BKS.json` (C101's 828.94 is the unrounded 828.937).
//!
//! Also here, for the `shuxiang dispatch solve` command and the benchmark:
//! solving an instance through the product's [`dispatch`](crate::dispatch)
//! path ([`solve`]), the best-known solutions ([`BestKnown`]) and a
//! feasibility checker ([`check`]) that works from the parsed file alone,
//! independent of the dispatch model and the solver.

use std::collections::HashMap;

use crate::dispatch::{self, DispatchError, Job, Matrix, Problem, Settings, TimeWindow, Vehicle};

/// One row of the CUSTOMER table; row 0 is the depot.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// `CUST NO.` as written in the file.
    pub number: u32,
    pub x: f64,
    pub y: f64,
    pub demand: u32,
    pub ready_time: f64,
    pub due_date: f64,
    pub service_time: f64,
}

/// A parsed instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub name: String,
    pub vehicle_number: usize,
    pub capacity: u32,
    /// The depot followed by the customers, in file order.
    pub customers: Vec<Customer>,
}

/// What went wrong where: `line` is 1-based.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {field}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub field: &'static str,
    pub message: String,
}

const CUSTOMER_FIELDS: [&str; 7] = [
    "CUST NO.",
    "XCOORD.",
    "YCOORD.",
    "DEMAND",
    "READY TIME",
    "DUE DATE",
    "SERVICE TIME",
];

fn error(line: usize, field: &'static str, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        field,
        message: message.into(),
    }
}

fn number<T: std::str::FromStr>(line: usize, field: &'static str, text: &str) -> Result<T, ParseError> {
    text.parse()
        .map_err(|_| error(line, field, format!("`{text}` is not a valid number")))
}

fn finite(line: usize, field: &'static str, text: &str) -> Result<f64, ParseError> {
    let value: f64 = number(line, field, text)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(error(line, field, format!("`{text}` is not finite")))
    }
}

/// Parses the text of a Solomon-format file.
pub fn parse(text: &str) -> Result<Instance, ParseError> {
    // (1-based line number, trimmed text) of every non-blank line
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let last_line = text.lines().count().max(1);
    let mut expect = |field: &'static str| {
        lines
            .next()
            .ok_or_else(|| error(last_line, field, "unexpected end of file"))
    };

    let (_, name) = expect("name")?;
    let name = name.to_string();

    let (line, header) = expect("VEHICLE")?;
    if !header.eq_ignore_ascii_case("VEHICLE") {
        return Err(error(
            line,
            "VEHICLE",
            format!("expected the VEHICLE section, found `{header}`"),
        ));
    }
    let (line, header) = expect("NUMBER")?;
    let words: Vec<&str> = header.split_whitespace().collect();
    if words.len() != 2 || !words[0].eq_ignore_ascii_case("NUMBER") || !words[1].eq_ignore_ascii_case("CAPACITY") {
        return Err(error(
            line,
            "NUMBER",
            format!("expected `NUMBER CAPACITY`, found `{header}`"),
        ));
    }
    let (line, values) = expect("NUMBER")?;
    let values: Vec<&str> = values.split_whitespace().collect();
    if values.len() != 2 {
        return Err(error(
            line,
            "NUMBER",
            format!("expected 2 values (NUMBER, CAPACITY), found {}", values.len()),
        ));
    }
    let vehicle_number: usize = number(line, "NUMBER", values[0])?;
    let capacity: u32 = number(line, "CAPACITY", values[1])?;

    let (line, header) = expect("CUSTOMER")?;
    if !header.eq_ignore_ascii_case("CUSTOMER") {
        return Err(error(
            line,
            "CUSTOMER",
            format!("expected the CUSTOMER section, found `{header}`"),
        ));
    }
    let (line, header) = expect("CUST NO.")?;
    if !header.to_ascii_uppercase().starts_with("CUST NO.") {
        return Err(error(
            line,
            "CUST NO.",
            format!("expected the customer table header, found `{header}`"),
        ));
    }

    let mut customers: Vec<Customer> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (line, row) in lines {
        let values: Vec<&str> = row.split_whitespace().collect();
        if values.len() != CUSTOMER_FIELDS.len() {
            let field = CUSTOMER_FIELDS.get(values.len()).copied().unwrap_or("SERVICE TIME");
            return Err(error(line, field, format!("expected 7 values, found {}", values.len())));
        }
        let customer = Customer {
            number: number(line, CUSTOMER_FIELDS[0], values[0])?,
            x: finite(line, CUSTOMER_FIELDS[1], values[1])?,
            y: finite(line, CUSTOMER_FIELDS[2], values[2])?,
            demand: number(line, CUSTOMER_FIELDS[3], values[3])?,
            ready_time: finite(line, CUSTOMER_FIELDS[4], values[4])?,
            due_date: finite(line, CUSTOMER_FIELDS[5], values[5])?,
            service_time: finite(line, CUSTOMER_FIELDS[6], values[6])?,
        };
        if customer.due_date < customer.ready_time {
            return Err(error(line, "DUE DATE", "due date is before the ready time"));
        }
        if customer.service_time < 0.0 {
            return Err(error(line, "SERVICE TIME", "service time is negative"));
        }
        if !seen.insert(customer.number) {
            return Err(error(
                line,
                "CUST NO.",
                format!("customer {} appears twice", customer.number),
            ));
        }
        customers.push(customer);
    }
    if customers.is_empty() {
        return Err(error(last_line, "CUST NO.", "the customer table has no depot row"));
    }
    Ok(Instance {
        name,
        vehicle_number,
        capacity,
        customers,
    })
}

impl Instance {
    /// Euclidean distances between all rows (depot = 0), unrounded, used as
    /// both distance and travel time.
    pub fn matrix(&self) -> Matrix {
        let n = self.customers.len();
        let mut values = Vec::with_capacity(n * n);
        for a in &self.customers {
            for b in &self.customers {
                values.push((a.x - b.x).hypot(a.y - b.y));
            }
        }
        Matrix::new(n, values.clone(), values).expect("a square matrix of finite non-negative values")
    }

    /// The dispatch problem: location `i` is row `i` of the table (depot 0),
    /// job `j` is customer row `j + 1`, `vehicle_number` identical vehicles
    /// whose shift is the depot's window.
    pub fn problem(&self) -> Problem {
        let depot = &self.customers[0];
        let shift = TimeWindow {
            start: depot.ready_time,
            end: depot.due_date,
        };
        Problem {
            vehicles: vec![Vehicle::new(0, vec![self.capacity], shift); self.vehicle_number],
            jobs: self.customers[1..]
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let window = TimeWindow {
                        start: c.ready_time,
                        end: c.due_date,
                    };
                    Job::new(j + 1, vec![c.demand], window, c.service_time)
                })
                .collect(),
        }
    }

    /// Customer numbers (`CUST NO.`) of job indices, route by route.
    pub fn customer_numbers(&self, routes: &[Vec<usize>]) -> Vec<Vec<u32>> {
        routes
            .iter()
            .map(|route| route.iter().map(|&j| self.customers[j + 1].number).collect())
            .collect()
    }
}

/// A solved instance in the file's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Solved {
    /// Customer numbers (`CUST NO.`) in visiting order, one list per vehicle used.
    pub routes: Vec<Vec<u32>>,
    /// Customers no vehicle could serve.
    pub unassigned: Vec<u32>,
    pub distance: f64,
}

/// Solves `instance` through [`dispatch::solve_with`], as the product dispatches.
pub fn solve(instance: &Instance, settings: &Settings) -> Result<Solved, DispatchError> {
    let solution = dispatch::solve_with(&instance.problem(), &instance.matrix(), settings)?;
    let unassigned = solution
        .unassigned
        .iter()
        .map(|u| instance.customers[u.job + 1].number)
        .collect();
    Ok(Solved {
        routes: instance.customer_numbers(&solution.job_routes()),
        unassigned,
        distance: solution.distance,
    })
}

/// A best-known solution's vehicles and distance.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub struct Record {
    #[serde(rename = "best_known_cost")]
    pub distance: f64,
    #[serde(rename = "solved_with_vehicles")]
    pub vehicles: usize,
}

/// Best-known solutions as in `data/vrptw/BKS.json`: `NAME` is the record
/// under the fewest-vehicles-first convention, `NAME_distance` (Solomon
/// only, where it differs) the shortest distance regardless of vehicles.
#[derive(Debug, Clone, Default)]
pub struct BestKnown(HashMap<String, Record>);

impl BestKnown {
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json).map(Self)
    }

    /// Where `BKS.json` sits for an instance file: beside it or one level up
    /// (`data/vrptw/BKS.json` for `data/vrptw/solomon/C101.txt`).
    pub fn find_near(instance: &std::path::Path) -> Option<std::path::PathBuf> {
        let dir = instance.parent()?;
        [dir.join("BKS.json"), dir.parent()?.join("BKS.json")]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// Keys are matched without regard to case: the file spells Homberger
    /// names in lower case, the instance files in upper case.
    fn get(&self, key: &str) -> Option<Record> {
        self.0
            .get(key)
            .or_else(|| self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, r)| r))
            .copied()
    }

    /// The fewest-vehicles-first record of instance `name`.
    pub fn vehicles_first(&self, name: &str) -> Option<Record> {
        self.get(name)
    }

    /// The shortest-distance record `NAME_distance`, kept for Solomon only.
    pub fn distance_only(&self, name: &str) -> Option<Record> {
        self.get(&format!("{name}_distance"))
    }

    /// The shortest known distance: `NAME_distance` where the file has
    /// one, else the fewest-vehicles record (the best known either way).
    pub fn distance(&self, name: &str) -> Option<Record> {
        self.distance_only(name).or_else(|| self.get(name))
    }
}

/// The report `shuxiang dispatch solve` prints: the instance, our vehicles,
/// distance and time, and the gap to each best-known convention found.
pub fn describe(instance: &Instance, solved: &Solved, seconds: f64, best: Option<&BestKnown>) -> String {
    let name = &instance.name;
    let mut lines = vec![
        format!(
            "instance {name}: {} customers, {} vehicles of capacity {}",
            instance.customers.len() - 1,
            instance.vehicle_number,
            instance.capacity
        ),
        format!(
            "solution: {} vehicles, distance {:.2}, {seconds:.1} s",
            solved.routes.len(),
            solved.distance
        ),
    ];
    if !solved.unassigned.is_empty() {
        lines.push(format!("unassigned customers: {:?}", solved.unassigned));
    }
    let vehicles = solved.routes.len() as i64;
    let compare = |label: &str, record: Record| {
        format!(
            "best known ({label}): {} vehicles, distance {:.2}; ours {:+} vehicles, gap {:+.2} %",
            record.vehicles,
            record.distance,
            vehicles - record.vehicles as i64,
            gap(solved.distance, record.distance)
        )
    };
    let records = best.map(|b| (b.distance_only(name), b.vehicles_first(name)));
    if let Some((Some(record), _)) = records {
        lines.push(compare("shortest distance", record));
    }
    if let Some((_, Some(record))) = records {
        lines.push(compare("fewest vehicles first", record));
    }
    if !matches!(records, Some((Some(_), _) | (_, Some(_)))) {
        lines.push(format!("best known: {name} is not in the best-known file"));
    }
    lines.join("\n") + "\n"
}

/// Percentage by which `value` exceeds `best`.
pub fn gap(value: f64, best: f64) -> f64 {
    100.0 * (value - best) / best
}

/// Why [`check`] rejected a solution.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("infeasible: {0}")]
pub struct Infeasible(pub String);

/// Time windows are compared with this slack against rounding of summed legs.
const CHECK_EPSILON: f64 = 1e-6;

/// Checks routes of customer numbers against the instance as written in its
/// file (every customer exactly once, at most the instance's vehicles, loads
/// within capacity, service starting within each window, back at the depot
/// by its due date) and returns their total Euclidean distance. Uses only
/// the parsed rows, never the dispatch model, so it can judge the solver.
pub fn check(instance: &Instance, routes: &[Vec<u32>]) -> Result<f64, Infeasible> {
    let fail = |message: String| Err(Infeasible(message));
    let depot = &instance.customers[0];
    let by_number: HashMap<u32, &Customer> = instance.customers[1..].iter().map(|c| (c.number, c)).collect();
    if routes.len() > instance.vehicle_number {
        return fail(format!(
            "{} routes but only {} vehicles",
            routes.len(),
            instance.vehicle_number
        ));
    }
    let mut visits: HashMap<u32, usize> = HashMap::new();
    let mut total = 0.0;
    for (r, route) in routes.iter().enumerate() {
        if route.is_empty() {
            return fail(format!("route {r} is empty"));
        }
        let (mut time, mut load, mut at) = (depot.ready_time, 0u64, depot);
        for &number in route {
            let Some(&customer) = by_number.get(&number) else {
                return fail(format!("route {r}: {number} is not a customer"));
            };
            *visits.entry(number).or_insert(0) += 1;
            let leg = (at.x - customer.x).hypot(at.y - customer.y);
            total += leg;
            time += leg;
            if time > customer.due_date + CHECK_EPSILON {
                return fail(format!(
                    "route {r}: arrives at {number} at {time}, due {}",
                    customer.due_date
                ));
            }
            time = time.max(customer.ready_time) + customer.service_time;
            load += u64::from(customer.demand);
            at = customer;
        }
        if load > u64::from(instance.capacity) {
            return fail(format!("route {r}: load {load} exceeds capacity {}", instance.capacity));
        }
        let back = (at.x - depot.x).hypot(at.y - depot.y);
        total += back;
        if time + back > depot.due_date + CHECK_EPSILON {
            return fail(format!(
                "route {r}: back at the depot at {}, due {}",
                time + back,
                depot.due_date
            ));
        }
    }
    for customer in &instance.customers[1..] {
        match visits.get(&customer.number) {
            Some(1) => {}
            Some(n) => return fail(format!("customer {} visited {n} times", customer.number)),
            None => return fail(format!("customer {} not visited", customer.number)),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "T1\r\n\r\nVEHICLE\r\nNUMBER     CAPACITY\r\n  2  10\r\n\r\nCUSTOMER\r\n\
        CUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME\r\n \r\n\
        0 0 0 0 0 100 0\r\n1 3 4 5 0 50 10\r\n2 6 8 5 10 60 10\r\n";

    #[test]
    fn parses_a_small_instance() {
        let instance = parse(SMALL).unwrap();
        assert_eq!(instance.name, "T1");
        assert_eq!((instance.vehicle_number, instance.capacity), (2, 10));
        assert_eq!(instance.customers.len(), 3);
        assert_eq!(instance.customers[2].ready_time, 10.0);
        let matrix = instance.matrix();
        assert_eq!(matrix.distance(0, 1), 5.0);
        assert_eq!(matrix.duration(1, 2), 5.0);
        let problem = instance.problem();
        assert_eq!(problem.vehicles.len(), 2);
        assert_eq!(problem.jobs[1].location, 2);
        assert_eq!(instance.customer_numbers(&[vec![1, 0]]), vec![vec![2, 1]]);
    }

    #[test]
    fn checker_measures_feasible_routes_and_names_the_broken_rule() {
        let instance = parse(SMALL).unwrap();
        // depot (0,0); customer 1 at (3,4), 5 units, due 50, service 10; customer 2 at (6,8), 5 units, opens 10
        // one route: 5 + 5 + 10 = 20; arrives at 1 at 5, leaves 15, at 2 at 20, leaves 30, home at 40
        assert_eq!(check(&instance, &[vec![1, 2]]), Ok(20.0));
        assert_eq!(check(&instance, &[vec![2], vec![1]]), Ok(30.0));
        let fails = |routes: &[Vec<u32>]| check(&instance, routes).unwrap_err().0;
        assert!(fails(&[vec![1], vec![2], vec![]]).contains("3 routes but only 2 vehicles"));
        assert!(fails(&[vec![1, 2], vec![]]).contains("route 1 is empty"));
        let tight = parse(&SMALL.replace("1 3 4 5 0 50 10", "1 3 4 5 0 4 10")).unwrap();
        assert!(
            check(&tight, &[vec![1, 2]])
                .unwrap_err()
                .0
                .contains("arrives at 1 at 5, due 4")
        );
        let early_home = parse(&SMALL.replace("0 0 0 0 0 100 0", "0 0 0 0 0 39 0")).unwrap();
        assert!(
            check(&early_home, &[vec![1, 2]])
                .unwrap_err()
                .0
                .contains("back at the depot at 40")
        );
        let heavy = parse(&SMALL.replace("2 6 8 5 10 60 10", "2 6 8 6 10 60 10")).unwrap();
        assert!(
            check(&heavy, &[vec![1, 2]])
                .unwrap_err()
                .0
                .contains("load 11 exceeds capacity 10")
        );
    }

    #[test]
    fn describe_reports_both_conventions() {
        let instance = parse(SMALL).unwrap();
        let solved = Solved {
            routes: vec![vec![1], vec![2]],
            unassigned: vec![],
            distance: 30.0,
        };
        let best = BestKnown::parse(
            r#"{"T1": {"best_known_cost": 25.0, "solved_with_vehicles": 1},
                "T1_distance": {"best_known_cost": 24.0, "solved_with_vehicles": 2}}"#,
        )
        .unwrap();
        let text = describe(&instance, &solved, 1.3, Some(&best));
        assert!(
            text.contains("instance T1: 2 customers, 2 vehicles of capacity 10"),
            "{text}"
        );
        assert!(text.contains("solution: 2 vehicles, distance 30.00, 1.3 s"), "{text}");
        // 30 against 24 is 25 % over; against 25 it is 20 % over with one vehicle more
        assert!(
            text.contains("best known (shortest distance): 2 vehicles, distance 24.00; ours +0 vehicles, gap +25.00 %"),
            "{text}"
        );
        assert!(
            text.contains(
                "best known (fewest vehicles first): 1 vehicles, distance 25.00; ours +1 vehicles, gap +20.00 %"
            ),
            "{text}"
        );
        let text = describe(&instance, &solved, 1.0, Some(&BestKnown::default()));
        assert!(text.contains("T1 is not in the best-known file"), "{text}");
    }

    #[test]
    fn errors_name_line_and_field() {
        let bad = SMALL.replace("2 6 8 5 10 60 10", "2 6 8 five 10 60 10");
        let err = parse(&bad).unwrap_err();
        assert_eq!((err.line, err.field), (12, "DEMAND"));
        assert!(err.to_string().starts_with("line 12: DEMAND: `five`"), "{err}");

        let short = SMALL.replace("1 3 4 5 0 50 10", "1 3 4 5 0 50");
        assert_eq!(parse(&short).unwrap_err().field, "SERVICE TIME");

        let window = SMALL.replace("1 3 4 5 0 50 10", "1 3 4 5 60 50 10");
        assert_eq!(
            parse(&window).unwrap_err(),
            error(11, "DUE DATE", "due date is before the ready time")
        );

        let capacity = SMALL.replace("  2  10", "  2  -10");
        assert_eq!(parse(&capacity).unwrap_err().field, "CAPACITY");

        let duplicate = SMALL.replace("2 6 8 5 10 60 10", "1 6 8 5 10 60 10");
        assert_eq!(parse(&duplicate).unwrap_err().field, "CUST NO.");

        let err = parse("T1\n\nVEHICLE\n").unwrap_err();
        assert_eq!(err.field, "NUMBER");
        assert!(err.message.contains("end of file"));
    }
}
