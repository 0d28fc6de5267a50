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

use crate::dispatch::{Job, Matrix, Problem, TimeWindow, Vehicle};

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
            depot: 0,
            vehicles: vec![
                Vehicle {
                    capacity: self.capacity,
                    shift
                };
                self.vehicle_number
            ],
            jobs: self.customers[1..]
                .iter()
                .enumerate()
                .map(|(j, c)| Job {
                    location: j + 1,
                    demand: c.demand,
                    window: TimeWindow {
                        start: c.ready_time,
                        end: c.due_date,
                    },
                    service: c.service_time,
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
