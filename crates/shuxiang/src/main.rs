//! `shuxiang`: the one binary. Serves the platform on its embedded default
//! (SQLite in a data directory) or on PostgreSQL, and carries the operator
//! commands: migrate, import, user, token, and the offline `trace verify`.

mod config;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use shuxiang_core::Db;
use shuxiang_core::auth::{self, GrantInput, NewUser};
use shuxiang_core::import::{self, ImportError};
use shuxiang_telemetry::alarm::engine::{AlarmEngine, run_offline_detector};
use shuxiang_telemetry::alarm::notify::run_webhook_deliverer;
use shuxiang_telemetry::alarm::{Clock, SystemClock};
use shuxiang_telemetry::gateway::TelemetrySink;
use shuxiang_telemetry::ingest::{TelemetryConfig, TelemetryState};
use shuxiang_telemetry::store::Retention;
use shuxiang_trace::api::InclusionProofBody;
use shuxiang_trace::checkpoint::Verifier;
use shuxiang_trace::keys::TraceLogKeys;
use shuxiang_trace::log_store;
use shuxiang_web::WebConfig;

use crate::config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "shuxiang",
    version,
    about = "数乡 Shuxiang — Jiangxi's digital-village platform"
)]
struct Cli {
    /// Config file (TOML); also SHUXIANG_CONFIG.
    #[arg(long, global = true, env = "SHUXIANG_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory for the embedded SQLite database.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://...) instead of the embedded SQLite.
    #[arg(long, global = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: web UI and API.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Address of the embedded MQTT endpoint for devices (port 0 picks
        /// a free port).
        #[arg(long)]
        mqtt: Option<std::net::SocketAddr>,
        /// Add simulated devices in a few Jiangxi villages that report
        /// realistic values every few seconds.
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Import reference data.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check the trace log's proofs (offline, no database).
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Vehicle dispatch (调度) tools (offline, no database).
    #[command(subcommand)]
    Dispatch(DispatchCommand),
}

#[derive(Subcommand)]
enum DispatchCommand {
    /// Solve a Solomon-format VRPTW instance through the product's dispatch
    /// and compare it with the best known (BKS.json beside or above the file).
    Solve {
        /// The instance file (Solomon / Gehring & Homberger text format).
        #[arg(long)]
        solomon: PathBuf,
        /// Search time limit in seconds.
        #[arg(long, default_value_t = 10.0)]
        time_limit: f64,
        /// distance: shortest total distance; vehicles: fewest vehicles, then distance.
        #[arg(long, value_enum, default_value = "distance")]
        objective: DispatchObjective,
        /// Write {"routes": [[customer numbers in visiting order], ...]} to this file.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Best-known solutions file (default: BKS.json beside or above the instance).
        #[arg(long)]
        bks: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DispatchObjective {
    Distance,
    Vehicles,
}

#[derive(Subcommand)]
enum TraceCommand {
    /// Verify that an event is in the signed trace log, from the body of
    /// GET /api/v1/trace/proof and the log's verifier key.
    Verify(VerifyProof),
}

#[derive(Args)]
struct VerifyProof {
    /// The event's EPCIS hash ID (ni:///sha-256;…?ver=CBV2.0).
    #[arg(long)]
    event: String,
    /// File holding the JSON body returned by /api/v1/trace/proof.
    #[arg(long)]
    proof: PathBuf,
    /// The verifier key string (from /api/v1/trace/public-key).
    #[arg(long, required_unless_present = "key_file", conflicts_with = "key_file")]
    key: Option<String>,
    /// File holding the verifier key string.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Region files (provinces|cities|counties|townships|villages.csv, .gz accepted).
    Regions { dir: PathBuf },
    /// Boundary files, one GeoJSON geometry per region named by its code.
    Boundaries { dir: PathBuf },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from SHUXIANG_NEW_PASSWORD or generated and printed.
    Create(CreateUser),
    /// List users.
    List,
}

#[derive(Args)]
struct CreateUser {
    #[arg(long)]
    username: String,
    #[arg(long)]
    display_name: String,
    /// ROLE:SCOPE, e.g. official:360102; repeatable.
    #[arg(long = "role", required = true)]
    roles: Vec<String>,
    #[arg(long)]
    phone: Option<String>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token acting as USER; prints the secret once.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    /// List all tokens.
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let listen = match &cli.command {
        Command::Serve { listen, .. } => *listen,
        _ => None,
    };
    let mqtt_listen = match &cli.command {
        Command::Serve { mqtt, .. } => *mqtt,
        _ => None,
    };
    let flags = Overrides {
        data_dir: cli.data_dir.clone(),
        listen,
        database: cli.database.clone(),
        mqtt_listen,
    };
    let cfg = config::load(cli.config.as_deref(), &flags).context("reading the configuration")?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cfg.log).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(cli.command, cfg))
}

async fn open_db(cfg: &Config) -> Result<Db> {
    let db = if cfg.database.is_empty() {
        Db::open_sqlite_dir(&cfg.data_dir)
            .await
            .with_context(|| format!("opening the database in {}", cfg.data_dir.display()))?
    } else {
        // The URL may hold a password: never echo it.
        Db::open(&cfg.database)
            .await
            .context("connecting to the configured PostgreSQL database")?
    };
    db.migrate(&shuxiang_web::all_migrations())
        .await
        .context("applying migrations")?;
    Ok(db)
}

async fn run(command: Command, cfg: Config) -> Result<()> {
    match command {
        // Offline: consumers run it without any database.
        Command::Trace(TraceCommand::Verify(v)) => verify_proof(&v),
        Command::Dispatch(cmd) => dispatch(cmd),
        Command::Serve { demo, .. } => serve(cfg, demo).await,
        Command::Migrate => {
            let db = open_db(&cfg).await?;
            println!("migrations applied ({})", db.backend().as_str());
            Ok(())
        }
        Command::Import(ImportCommand::Regions { dir }) => import_regions(&open_db(&cfg).await?, &dir).await,
        Command::Import(ImportCommand::Boundaries { dir }) => {
            let db = open_db(&cfg).await?;
            let files = import::boundary_files_in(&dir)?;
            let (written, skipped) = import::import_boundaries(&db, &files).await?;
            println!("{} boundary file(s) read, {written} written", files.len());
            if !skipped.is_empty() {
                println!("skipped (no such region loaded): {}", skipped.join(", "));
            }
            Ok(())
        }
        Command::User(cmd) => user(&open_db(&cfg).await?, cmd).await,
        Command::Token(cmd) => token(&open_db(&cfg).await?, cmd).await,
    }
}

fn dispatch(cmd: DispatchCommand) -> Result<()> {
    use shuxiang_logistics::dispatch::{Objective, Settings};
    use shuxiang_logistics::solomon::{self, BestKnown};

    let DispatchCommand::Solve {
        solomon: path,
        time_limit,
        objective,
        output,
        bks,
    } = cmd;
    if !(time_limit > 0.0 && time_limit.is_finite()) {
        bail!("--time-limit must be a positive number of seconds");
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let instance = solomon::parse(&text).with_context(|| path.display().to_string())?;
    let best = match bks.or_else(|| BestKnown::find_near(&path)) {
        Some(file) => Some(
            std::fs::read_to_string(&file)
                .map_err(anyhow::Error::from)
                .and_then(|json| Ok(BestKnown::parse(&json)?))
                .with_context(|| format!("reading {}", file.display()))?,
        ),
        None => None,
    };
    let settings = Settings {
        objective: match objective {
            DispatchObjective::Distance => Objective::Distance,
            DispatchObjective::Vehicles => Objective::Vehicles,
        },
        ..Settings::new(Duration::from_secs_f64(time_limit))
    };
    let started = std::time::Instant::now();
    let solved = solomon::solve(&instance, &settings)?;
    print!(
        "{}",
        solomon::describe(&instance, &solved, started.elapsed().as_secs_f64(), best.as_ref())
    );
    if let Some(output) = output {
        let json = serde_json::json!({ "routes": solved.routes });
        std::fs::write(&output, format!("{json}\n")).with_context(|| format!("writing {}", output.display()))?;
    }
    if !solved.unassigned.is_empty() {
        bail!("{} customer(s) could not be served", solved.unassigned.len());
    }
    solomon::check(&instance, &solved.routes).context("the solution fails the feasibility check")?;
    Ok(())
}

async fn serve(cfg: Config, demo: bool) -> Result<()> {
    let db = open_db(&cfg).await?;
    if import::load_shipped_jiangxi(&db)
        .await
        .context("loading Jiangxi's regions")?
    {
        tracing::info!("loaded Jiangxi's 1 province, 11 cities, 100 counties, 1,767 townships and 22,080 villages");
    }
    let admin_password = std::env::var("SHUXIANG_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty());
    if let Some(generated) = auth::ensure_admin(&db, admin_password.as_deref()).await? {
        // Printed once on the terminal, deliberately not through the logger.
        println!("First start: created user \"admin\" with password {generated}");
        println!("Change it after signing in; it is not shown again.");
    }
    let web = WebConfig {
        session_ttl: chrono::Duration::hours(cfg.session_ttl_hours.max(1)),
        secure_cookies: cfg.secure_cookies,
        trust_forwarded_for: cfg.trust_forwarded_for,
        cache_ttl: Duration::from_secs(cfg.cache_ttl_seconds),
    };
    let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
        Ok(l) => l,
        Err(e) => bail!(
            "cannot listen on {}: {e} (is another program using the port? choose one with --listen)",
            cfg.listen
        ),
    };
    // Devices connect to the embedded endpoint unless the node consumes an
    // external broker; a taken port stops the start like the web port does.
    let gateway = if cfg.mqtt_broker.is_empty() {
        Some(
            shuxiang_mqtt::bind(cfg.mqtt_listen)
                .await
                .map_err(|e| anyhow::anyhow!("{e} (--mqtt)"))?,
        )
    } else {
        None
    };
    let keys =
        TraceLogKeys::load(&cfg.data_dir, &cfg.trace_log_origin).context("loading the trace log's signing key")?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut background = tokio::task::JoinSet::new();
    if cfg.trace_checkpoint_interval_seconds > 0 {
        let (db, keys) = (db.clone(), keys.clone());
        let every = Duration::from_secs(cfg.trace_checkpoint_interval_seconds);
        let stop = until_stopped();
        background.spawn(async move {
            tokio::select! {
                () = publish_checkpoints(db, keys, every) => {}
                () = stop => {}
            }
        });
    }

    // Capture jobs a previous run accepted but had not stored yet.
    {
        let db = db.clone();
        background.spawn(async move {
            match shuxiang_trace::epcis::capture::run_pending(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "EPCIS capture jobs left by the previous run are processed"),
                Err(e) => tracing::error!(error = %e, "EPCIS capture jobs left by the previous run failed"),
            }
        });
    }

    let retention = telemetry_retention(&cfg);
    let telemetry = TelemetryState::new(
        db.clone(),
        TelemetryConfig {
            retention: retention.clone(),
            ..Default::default()
        },
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = AlarmEngine::start(db.clone(), clock.clone())
        .await
        .context("starting the alarm engine")?;
    telemetry
        .set_alarm_engine(engine.clone())
        .context("starting the alarm engine")?;
    background.spawn(run_offline_detector(engine, until_stopped()));
    background.spawn(run_webhook_deliverer(db.clone(), clock, until_stopped()));
    {
        let (db, stop) = (db.clone(), until_stopped());
        let every = cfg.telemetry_maintenance_interval_seconds;
        background.spawn(async move {
            tokio::select! {
                () = maintain_telemetry(db, retention, every) => {}
                () = stop => {}
            }
        });
    }
    let sink = Arc::new(TelemetrySink::new(telemetry.clone()));
    match gateway {
        Some(listener) => {
            println!("MQTT devices: mqtt://{}", listener.local_addr());
            let stop = until_stopped();
            background.spawn(async move {
                if let Err(e) = shuxiang_mqtt::serve(listener, sink, stop).await {
                    tracing::error!(error = %e, "the MQTT device gateway stopped");
                }
            });
        }
        None => {
            let (url, group, stop) = (cfg.mqtt_broker.clone(), cfg.mqtt_share_group.clone(), until_stopped());
            background.spawn(async move {
                if let Err(e) = shuxiang_mqtt::consume_shared(&url, &group, sink, stop).await {
                    tracing::error!(error = %e, "consuming telemetry from the MQTT broker stopped");
                }
            });
        }
    }
    if demo {
        background.spawn(shuxiang_telemetry::demo::run(
            telemetry.clone(),
            DEMO_INTERVAL,
            until_stopped(),
        ));
    }

    let addr = listener.local_addr()?;
    println!("Shuxiang listening on http://{addr} ({})", db.backend().as_str());
    let state = shuxiang_web::new_state(db.clone(), web, keys, telemetry);
    let served = shuxiang_web::serve(listener, state, async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    })
    .await;
    // Background work gets a moment to finish what it holds (the gateway
    // acknowledges what it committed), then is cut off.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while background.join_next().await.is_some() {}
    })
    .await;
    background.abort_all();
    db.close().await;
    Ok(served?)
}

/// How often `--demo` devices report.
const DEMO_INTERVAL: Duration = Duration::from_secs(10);

/// Retention from the settings, where 0 days means for ever.
fn telemetry_retention(cfg: &Config) -> Retention {
    let days = |d: u32| (d > 0).then_some(d);
    Retention {
        raw_days: days(cfg.telemetry_raw_days),
        minute_days: days(cfg.telemetry_minute_days),
        hour_days: days(cfg.telemetry_hour_days),
        day_days: days(cfg.telemetry_day_days),
        ..Retention::default()
    }
}

/// Compacts telemetry, writes roll-ups and applies retention every
/// `interval_seconds` (never when 0); like checkpoints, a failed run is
/// retried at the next tick.
async fn maintain_telemetry(db: Db, retention: Retention, interval_seconds: u64) {
    if interval_seconds == 0 {
        return std::future::pending().await;
    }
    let mut ticks = tokio::time::interval(Duration::from_secs(interval_seconds));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = chrono::Utc::now().timestamp_millis();
        if let Err(e) = shuxiang_telemetry::store::maintain(&db, now, &retention).await {
            tracing::warn!(error = %e, "telemetry maintenance failed; retrying at the next interval");
        }
    }
}

/// Signs a checkpoint of the trace log every `interval` if it grew. Failures
/// are logged and retried at the next tick: a missed checkpoint only delays
/// proofs, so it must never take the server down.
async fn publish_checkpoints(db: Db, keys: TraceLogKeys, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match log_store::publish_checkpoint(&db, &keys.signer, &keys.origin).await {
            Ok(Some(cp)) => tracing::debug!(tree_size = cp.tree_size, "trace log checkpoint published"),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "publishing a trace log checkpoint failed; retrying at the next interval")
            }
        }
    }
}

/// `shuxiang trace verify`: prints what was verified, or fails with why not.
fn verify_proof(v: &VerifyProof) -> Result<()> {
    let key = match (&v.key, &v.key_file) {
        (Some(k), _) => k.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("reading the key file {}", path.display()))?
        }
        (None, None) => bail!("give the verifier key with --key or --key-file"),
    };
    let verifier = Verifier::from_verifier_key_str(key.trim()).context("the verifier key is malformed")?;
    let text = std::fs::read_to_string(&v.proof).with_context(|| format!("reading {}", v.proof.display()))?;
    let body: InclusionProofBody = serde_json::from_str(&text)
        .with_context(|| format!("{} is not the JSON body of /api/v1/trace/proof", v.proof.display()))?;
    let checkpoint = body.verify(&v.event, &verifier).context("not verified")?;
    println!(
        "verified: leaf {} in tree of size {}, checkpoint {}",
        body.leaf_index,
        checkpoint.size(),
        checkpoint.origin()
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

async fn import_regions(db: &Db, dir: &Path) -> Result<()> {
    let files = import::region_files_in(dir)?;
    let total: u64 = files.iter().map(|f| bytecount_lines(&f.bytes)).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} regions ({per_sec}, {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("writing");
    bar.enable_steady_tick(Duration::from_millis(200));
    let result = import::import_regions(db, &files, &|n| bar.inc(n)).await;
    bar.finish_and_clear();
    match result {
        Ok(s) => {
            println!(
                "{} regions read, {} written ({} unchanged)",
                s.read,
                s.written,
                s.read - s.written
            );
            Ok(())
        }
        Err(ImportError::Lines(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            bail!("{} problem(s) found; nothing was imported", errors.len())
        }
        Err(ImportError::Tree(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            bail!("{} region(s) lack a parent; nothing was imported", problems.len())
        }
        Err(ImportError::Core(e)) => Err(e.into()),
    }
}

/// Data lines of a CSV file (all lines but the header).
fn bytecount_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count().saturating_sub(1) as u64
}

async fn user(db: &Db, cmd: UserCommand) -> Result<()> {
    let op = auth::operator();
    match cmd {
        UserCommand::Create(c) => {
            let (password, generated) = match std::env::var("SHUXIANG_NEW_PASSWORD") {
                Ok(p) if !p.is_empty() => (p, false),
                _ => (auth::generate_password(), true),
            };
            let roles = c
                .roles
                .iter()
                .map(|r| {
                    r.split_once(':')
                        .map(|(role, scope)| GrantInput {
                            role: role.into(),
                            scope: scope.into(),
                        })
                        .with_context(|| format!("--role {r:?} must be ROLE:SCOPE, e.g. official:360102"))
                })
                .collect::<Result<Vec<_>>>()?;
            let new = NewUser {
                username: c.username,
                password: password.clone(),
                display_name: c.display_name,
                phone: c.phone,
                roles,
            };
            let u = auth::create_user(db, &op, &shuxiang_core::auth::Actor::system("cli"), new).await?;
            println!("created user {} (id {})", u.username, u.id);
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        UserCommand::List => {
            for u in auth::list_users(db, &op).await? {
                let roles: Vec<String> = u
                    .roles
                    .iter()
                    .map(|g| format!("{}:{}", g.role.as_str(), g.scope))
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}{}",
                    u.id,
                    u.username,
                    u.display_name,
                    roles.join(","),
                    if u.disabled { "\tdisabled" } else { "" }
                );
            }
            Ok(())
        }
    }
}

async fn token(db: &Db, cmd: TokenCommand) -> Result<()> {
    let op = auth::operator();
    let actor = shuxiang_core::auth::Actor::system("cli");
    match cmd {
        TokenCommand::Create {
            user,
            name,
            expires_in_days,
        } => {
            let owner = auth::principal_for_username(db, &user).await?;
            let (t, secret) = auth::create_token(db, &owner, &actor, &name, expires_in_days).await?;
            println!("token {} for {user}: {secret}", t.id);
            println!("store it now; only its hash is kept.");
        }
        TokenCommand::List => {
            for t in auth::list_tokens(db, &op).await? {
                let state = if t.revoked_at.is_some() { "revoked" } else { "active" };
                println!("{}\tuser {}\t{}\t{}…\t{state}", t.id, t.user_id, t.name, t.prefix);
            }
        }
        TokenCommand::Revoke { id } => {
            auth::revoke_token(db, &op, &actor, id).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}
