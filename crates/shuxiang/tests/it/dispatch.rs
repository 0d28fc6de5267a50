//! `shuxiang dispatch solve` end to end: the built binary solves Solomon
//! C101, its `--output` routes pass the independent feasibility checker
//! (`solomon::check`, which reads only the instance file), and bad input
//! fails with the line and field named.

use std::process::{Command, Output};

use shuxiang_logistics::solomon::{check, parse};

use super::{BIN, data_dir};

fn dispatch_solve(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["dispatch", "solve"])
        .args(args)
        .env_remove("SHUXIANG_DATABASE")
        .output()
        .expect("run shuxiang dispatch solve")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn solves_c101_and_writes_checkable_routes() {
    let c101 = data_dir("data/vrptw/solomon/C101.txt");
    let instance = parse(&std::fs::read_to_string(&c101).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for objective in ["distance", "vehicles"] {
        let output = dir.path().join(format!("{objective}.json"));
        let run = dispatch_solve(&[
            "--solomon",
            c101.to_str().unwrap(),
            "--time-limit",
            "2",
            "--objective",
            objective,
            "--output",
            output.to_str().unwrap(),
        ]);
        let stdout = text(&run.stdout);
        assert!(run.status.success(), "{stdout}{}", text(&run.stderr));

        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
        let routes: Vec<Vec<u32>> = serde_json::from_value(json["routes"].clone()).unwrap();
        let distance = check(&instance, &routes).unwrap_or_else(|e| panic!("{objective}: {e}"));

        assert!(
            stdout.contains("instance C101: 100 customers, 25 vehicles of capacity 200"),
            "{stdout}"
        );
        let expected = format!("solution: {} vehicles, distance {distance:.2},", routes.len());
        assert!(stdout.contains(&expected), "expected `{expected}` in\n{stdout}");
        // BKS.json is found above the instance's directory; C101 has both conventions
        let versus_best = format!(
            "10 vehicles, distance 828.94; ours {:+} vehicles, gap {:+.2} %",
            routes.len() as i64 - 10,
            100.0 * (distance - 828.94) / 828.94
        );
        for convention in ["shortest distance", "fewest vehicles first"] {
            let expected = format!("best known ({convention}): {versus_best}");
            assert!(stdout.contains(&expected), "expected `{expected}` in\n{stdout}");
        }
    }
}

#[test]
fn bad_input_names_the_line_and_field_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let c101 = std::fs::read_to_string(data_dir("data/vrptw/solomon/C101.txt")).unwrap();
    let bad = dir.path().join("bad.txt");
    // customer 1 is on line 11 of the file
    std::fs::write(
        &bad,
        c101.replacen("45         68         10", "45         68         ten", 1),
    )
    .unwrap();
    let run = dispatch_solve(&["--solomon", bad.to_str().unwrap(), "--time-limit", "1"]);
    assert!(!run.status.success());
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("line 11: DEMAND: `ten` is not a valid number"),
        "{stderr}"
    );

    let missing = dir.path().join("missing.txt");
    let run = dispatch_solve(&["--solomon", missing.to_str().unwrap()]);
    assert!(!run.status.success());
    assert!(text(&run.stderr).contains("missing.txt"), "{}", text(&run.stderr));

    let good = data_dir("data/vrptw/solomon/C101.txt");
    let run = dispatch_solve(&["--solomon", good.to_str().unwrap(), "--time-limit", "0"]);
    assert!(!run.status.success());
    assert!(text(&run.stderr).contains("--time-limit"), "{}", text(&run.stderr));

    let run = dispatch_solve(&["--solomon", good.to_str().unwrap(), "--objective", "cheapest"]);
    assert_eq!(
        run.status.code(),
        Some(2),
        "clap rejects an unknown objective as a usage error"
    );
}
