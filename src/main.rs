//! The `xdpacct` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};

use xdpacct::capture::replay;
use xdpacct::collector::replay::Tap;
use xdpacct::engine::Engine;
use xdpacct::settings::{CliOverrides, Settings};

/// Exact traffic accounting for ISP links, served as Prometheus metrics.
///
/// With no command, runs live capture (promacct-style:
/// `xdpacct -i eth1 -p 9112 -r 198.51.100.1-198.51.100.254:customer=acme`).
#[derive(Parser, Debug)]
#[command(name = "xdpacct", version, about, long_about = None)]
struct Cli {
    /// Config file (TOML). Defaults to /etc/xdpacct/xdpacct.toml when present.
    #[arg(
        short,
        long,
        global = true,
        value_name = "FILE",
        env = "XDPACCT_CONFIG"
    )]
    config: Option<PathBuf>,
    /// Interface to capture on (repeatable); overrides capture.interfaces.
    #[arg(short = 'i', long = "interface", global = true, value_name = "IFACE")]
    interfaces: Vec<String>,
    /// Port for /metrics; overrides the port of metrics.listen.
    #[arg(short = 'p', long, global = true)]
    port: Option<u16>,
    /// Address:port for /metrics; overrides metrics.listen.
    #[arg(long, global = true, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Host range FIRST-LAST[:key=value...] or PREFIX[:key=value...] (repeatable).
    #[arg(short = 'r', long = "range", global = true, value_name = "RANGE")]
    ranges: Vec<String>,
    /// Log filter (error, warn, info, debug, trace). Defaults to info, or RUST_LOG.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Capture live traffic and serve /metrics (the default).
    Run,
    /// Account pcap/pcapng files through the same workers, print the metrics page.
    Replay {
        /// Capture files, read in order.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Worker threads (shards); frames spread by a symmetric flow hash.
        #[arg(short, long, default_value_t = 1)]
        workers: usize,
        /// Value of the `interface` label.
        #[arg(long, default_value = "replay", value_name = "NAME")]
        interface_name: String,
        /// Replay each file as its own interface, named after the file
        /// (its name without extension), each with --workers workers: e.g.
        /// the two fibres of an optical tap. The files are read at once;
        /// with --billing-db by one reader, in timestamp order across them.
        #[arg(long)]
        interface_per_file: bool,
        /// Write billing samples at the capture's own timestamps to this
        /// ledger (the [billing] settings, or their defaults); with
        /// --interface-per-file, one ledger for all the files' interfaces.
        #[arg(long, value_name = "FILE")]
        billing_db: Option<PathBuf>,
    },
    /// The billing ledger: 95th-percentile reports.
    #[command(subcommand)]
    Billing(xdpacct::billing::cli::BillingCommand),
    /// Validate the configuration and exit (status 2 when it is wrong).
    CheckConfig,
}

/// Exit status for errors found at start-up (bad config, bad arguments).
const EXIT_STARTUP: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref());
    let overrides = CliOverrides {
        config: cli.config.clone(),
        interfaces: cli.interfaces.clone(),
        port: cli.port,
        listen: cli.listen.clone(),
        ranges: cli.ranges.clone(),
    };
    let settings = match Settings::load(&overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xdpacct: config error: {e}");
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => match xdpacct::engine::check(&settings) {
            Ok(()) => {
                println!("{}: ok", settings.origin);
                Ok(())
            }
            Err(e) => Err(xdpacct::StartupError(e).into()),
        },
        Command::Replay {
            files,
            workers,
            interface_name,
            interface_per_file,
            billing_db,
        } => cmd_replay(
            &settings,
            files,
            workers,
            &interface_name,
            interface_per_file,
            billing_db,
        ),
        Command::Billing(cmd) => xdpacct::billing::cli::run(&settings, cmd),
        Command::Run => xdpacct::daemon::run(settings, overrides),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let startup = e.downcast_ref::<xdpacct::StartupError>().is_some();
            eprintln!("xdpacct: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(if startup { EXIT_STARTUP } else { 1 })
        }
    }
}

fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(l),
        None => {
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn cmd_replay(
    settings: &Settings,
    files: Vec<PathBuf>,
    workers: usize,
    iface: &str,
    interface_per_file: bool,
    billing_db: Option<PathBuf>,
) -> anyhow::Result<()> {
    if workers == 0 || workers > 256 {
        return Err(xdpacct::StartupError("--workers must be between 1 and 256".into()).into());
    }
    for f in &files {
        if !f.is_file() {
            return Err(xdpacct::StartupError(format!("{}: no such file", f.display())).into());
        }
    }
    let startup = |e: xdpacct::engine::EngineError| xdpacct::StartupError(e.to_string());
    let mut engine = Engine::build(settings).map_err(startup)?;
    engine.start_export().map_err(startup)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }

    let started = Instant::now();
    // One interface of all files (read in order), or one per file: a reader
    // each, concurrently; with a ledger one reader that merges the files by
    // timestamp, so that a boundary closes when every file has passed it
    // (one thread reads them all, README "Billing" has the cost).
    let names: Vec<String> = if interface_per_file {
        files
            .iter()
            .map(|f| {
                f.file_stem()
                    .map_or_else(|| iface.to_string(), |s| s.to_string_lossy().into_owned())
            })
            .collect()
    } else {
        vec![iface.to_string()]
    };
    // Every shard is built before any thread starts: one that does not fit
    // in memory is a start-up error, not an abort.
    let mut planned = Vec::with_capacity(names.len());
    for (g, name) in names.iter().enumerate() {
        let mut group = Vec::with_capacity(workers);
        for i in 0..workers {
            let worker = engine
                .add_queue(name, i as u32, g as u32 + 1)
                .map_err(startup)?;
            // With [collector], datagrams to its listen ports are decoded
            // as flows (README "Flow input") instead of counted as frames.
            let flow = engine.add_flow_input("", (g * workers + i) as u32);
            group.push((worker, flow));
        }
        planned.push(group);
    }
    let listen = engine
        .flow_settings()
        .map_or_else(Vec::new, |c| c.listen.clone());
    let (mut readers, queues): (Vec<_>, Vec<_>) = if !interface_per_file {
        let (reader, queues) = replay::replay(files, workers);
        (vec![reader], vec![queues])
    } else if billing_db.is_some() {
        let (reader, groups) = replay::replay_merged(files, workers);
        (vec![reader], groups)
    } else {
        files
            .into_iter()
            .map(|f| replay::replay(vec![f], workers))
            .unzip()
    };
    let mut handles = Vec::new();
    for (g, (queues, group)) in queues.into_iter().zip(planned).enumerate() {
        for (i, (mut queue, (mut worker, flow))) in queues.into_iter().zip(group).enumerate() {
            let stop = stop.clone();
            let listen = listen.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("xdpacct-w{g}.{i}"))
                    .spawn(move || match flow {
                        Some(input) => worker.run(&mut Tap::new(queue, input, listen), &stop),
                        None => worker.run(&mut queue, &stop),
                    })
                    .expect("spawning a worker thread"),
            );
        }
    }
    let first = readers.remove(0);
    let (first, ledger) = match billing_db {
        Some(db) => {
            let (reader, ledger) =
                xdpacct::billing::replay_ledger(&mut engine, settings, db, first)
                    .map_err(|e| xdpacct::StartupError(e.to_string()))?;
            (reader, Some(ledger))
        }
        None => (first, None),
    };
    let others: Vec<_> = readers
        .into_iter()
        .map(|r| {
            let stop = stop.clone();
            std::thread::spawn(move || r.run(&stop))
        })
        .collect();
    let mut reads = vec![first.run(&stop)];
    for r in others {
        reads.push(r.join().map_err(|_| anyhow::anyhow!("a reader panicked"))?);
    }
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
    }
    let mut stats = replay::ReplayStats::default();
    for read in reads {
        let s = read.map_err(|e| xdpacct::StartupError(e.to_string()))?;
        stats.frames += s.frames;
        stats.bytes += s.bytes;
        stats.skipped += s.skipped;
        stats.unread_bytes += s.unread_bytes;
        stats.damaged.extend(s.damaged);
    }
    if let Some(ledger) = ledger {
        xdpacct::billing::finish_replay(&ledger)?;
    }
    let secs = started.elapsed().as_secs_f64();

    // Workers flushed their flow caches at end of input; send what is queued.
    let exposition = engine.exposition();
    engine
        .shutdown()
        .map_err(|e| anyhow::anyhow!("flow export: {e}"))?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(&exposition.render())?;
    out.flush()?;
    eprintln!(
        "replayed {} frames, {} bytes in {:.3} s ({:.2} Mpps) on {} worker(s){}",
        stats.frames,
        stats.bytes,
        secs,
        stats.frames as f64 / secs.max(1e-9) / 1e6,
        workers,
        if stats.skipped > 0 {
            format!(", {} non-Ethernet frames skipped", stats.skipped)
        } else {
            String::new()
        }
    );
    if !stats.damaged.is_empty() {
        // The page above misses the unread bytes: status 1, so that scripts
        // and billing jobs notice.
        for d in &stats.damaged {
            eprintln!("{d}");
        }
        std::process::exit(1);
    }
    Ok(())
}
