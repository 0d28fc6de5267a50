//! A real browser through the UI: Debian's Chromium driven by chromedriver
//! signs in through the form, opens the province map, clicks a county and
//! finds its townships. Skipped (with a note) where chromedriver is not
//! installed, except under CI, where its absence is a failure.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shuxiang_core::db::Backend;
use thirtyfour::prelude::*;

use crate::support::{ADMIN_PASSWORD, TestServer, client};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The chromedriver process, in a process group of its own so that the
/// browsers it started go with it, even when the test fails.
struct DriverProcess {
    child: Child,
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

async fn start_chromedriver() -> (DriverProcess, String) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start chromedriver");
    let driver = DriverProcess { child };
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client().get(format!("{url}/status")).send().await
            && r.status().is_success()
        {
            return (driver, url);
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not answer on {url} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_path(driver: &WebDriver, path: &str) -> WebDriverResult<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = driver.current_url().await?;
        if url.path() == path {
            return Ok(());
        }
        assert!(Instant::now() < deadline, "stayed on {url} instead of reaching {path}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_and_drills_down_the_map() {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("browser test needs {CHROMEDRIVER} and {CHROMIUM} (apt-get install chromium chromium-driver)");
        }
        eprintln!("browser test skipped: chromedriver not installed");
        return;
    }
    let srv = TestServer::start(Backend::Sqlite).await.expect("SQLite server");
    let (_process, driver_url) = start_chromedriver().await;
    let profile = tempfile::tempdir().expect("profile dir");

    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(CHROMIUM).unwrap();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1400",
    ] {
        caps.add_arg(arg).unwrap();
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))
        .unwrap();
    let driver = WebDriver::new(&driver_url, caps).await.expect("browser session");

    let outcome = drill_down(&driver, &srv).await;
    let _ = driver.quit().await;
    srv.stop().await;
    outcome.expect("browser run");
}

async fn drill_down(driver: &WebDriver, srv: &TestServer) -> WebDriverResult<()> {
    // The province page sends a stranger to the sign-in form first.
    driver.goto(srv.url("/regions/36")).await?;
    wait_for_path(driver, "/login").await?;
    driver
        .find(By::Css("input[name=username]"))
        .await?
        .send_keys("admin")
        .await?;
    driver
        .find(By::Css("input[name=password]"))
        .await?
        .send_keys(ADMIN_PASSWORD)
        .await?;
    driver
        .find(By::Css("form[action='/login'] button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_for_path(driver, "/regions/36").await?;

    // Click 东湖区 on the map itself.
    let map = driver.find(By::Id("region-map")).await?;
    let county = map.find(By::Css("a[href='/regions/360102']")).await?;
    assert_eq!(
        county.find(By::Css("path")).await?.attr("data-code").await?.as_deref(),
        Some("360102")
    );
    county.click().await?;
    wait_for_path(driver, "/regions/360102").await?;

    let heading = driver.find(By::Tag("h1")).await?.text().await?;
    assert_eq!(heading, "东湖区");
    let townships = driver.find(By::Id("children")).await?.text().await?;
    assert!(townships.contains("滕王阁街道"), "township list: {townships}");
    Ok(())
}
