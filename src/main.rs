//! The `tongdai` command: `run`, `check-config`, `schedule`, `report`, `version`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tongdai::config::{Config, ConfigError, DEFAULT_PATH, LogFormat};
use tongdai::runtime::Daemon;
use tongdai::runtime::lifecycle::{self, ConfigSource};

/// Exit status for a configuration that was refused (nothing was bound).
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(name = "tongdai", about = "SIP call distribution for the 111 child-protection hotline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (foreground; systemd `Type=notify` aware).
    Run {
        /// Configuration file. Default: /etc/tongdai/tongdai.toml if it exists, else the built-in
        /// loopback configuration.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Log format; overrides `log.format`.
        #[arg(long, value_enum)]
        log_format: Option<Format>,
    },
    /// Validate a configuration file, print every problem with file:line:col, and exit (0 = good,
    /// 2 = refused).
    CheckConfig {
        /// The file to check.
        path: PathBuf,
    },
    /// Print who is on duty when, day by day, and flag stretches with nobody on duty.
    Schedule {
        /// How many days to print.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// The first day (YYYY-MM-DD, local); default today in the configured zone.
        #[arg(long)]
        from: Option<String>,
        /// Configuration file. Default: as for `run`.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print daily call figures from the records: offered, answered, abandoned, overflowed,
    /// service level, waits and talk time, overall, by province and by agent.
    Report {
        /// The first day (YYYY-MM-DD, in the schedule's zone); default 7 days before `--to`.
        #[arg(long)]
        from: Option<String>,
        /// The last day (YYYY-MM-DD); default today.
        #[arg(long)]
        to: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Configuration file (for `[records] path` and the zone). Default: as for `run`.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Table,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Version => {
            println!("tongdai {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::CheckConfig { path } => check_config(&path),
        Command::Run { config, log_format } => run(config, log_format),
        Command::Schedule { days, from, config } => schedule(days, from.as_deref(), config),
        Command::Report { from, to, format, config } => {
            report(from.as_deref(), to.as_deref(), format, config)
        }
    }
}

fn config_source(path: Option<PathBuf>) -> ConfigSource {
    match path {
        Some(p) => ConfigSource::File(p),
        None if Path::new(DEFAULT_PATH).exists() => ConfigSource::File(DEFAULT_PATH.into()),
        None => ConfigSource::Builtin,
    }
}

fn schedule(days: u32, from: Option<&str>, path: Option<PathBuf>) -> ExitCode {
    let config = match config_source(path).load() {
        Ok(c) => c,
        Err(e) => return refuse(&e),
    };
    let plan = tongdai::acd::schedule::Schedule::new(
        config.schedule.zone.clone(),
        &config.shifts,
        &config.holidays,
    );
    let first = match from {
        None => plan.local_date(jiff::Timestamp::now()),
        Some(text) => match text.parse() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("tongdai: --from `{text}` is not a date (YYYY-MM-DD): {e}");
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
        },
    };
    print!("{}", tongdai::acd::schedule::render(&plan, first, days.min(366)));
    ExitCode::SUCCESS
}

fn parse_day(flag: &str, text: &str) -> Result<jiff::civil::Date, ExitCode> {
    text.parse().map_err(|e| {
        eprintln!("tongdai: {flag} `{text}` is not a date (YYYY-MM-DD): {e}");
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

fn report(
    from: Option<&str>,
    to: Option<&str>,
    format: ReportFormat,
    path: Option<PathBuf>,
) -> ExitCode {
    use tongdai::records::report::{self, Format};
    let config = match config_source(path).load() {
        Ok(c) => c,
        Err(e) => return refuse(&e),
    };
    let zone = config.schedule.zone.clone();
    let to = match to {
        None => zone.to_datetime(jiff::Timestamp::now()).date(),
        Some(t) => match parse_day("--to", t) {
            Ok(d) => d,
            Err(code) => return code,
        },
    };
    let from = match from {
        None => to.checked_sub(jiff::Span::new().days(6)).unwrap_or(to),
        Some(t) => match parse_day("--from", t) {
            Ok(d) => d,
            Err(code) => return code,
        },
    };
    let Some(db) = &config.records.path else {
        eprintln!("tongdai: no call records are kept ([records] path is empty)");
        return ExitCode::FAILURE;
    };
    if !db.exists() {
        eprintln!("tongdai: no records database at {}", db.display());
        return ExitCode::FAILURE;
    }
    let sl = config.service_level;
    let built =
        tongdai::store::open(db).and_then(|conn| report::build(&conn, &zone, from, to, &sl));
    match built {
        Ok(r) => {
            let format = match format {
                ReportFormat::Table => Format::Table,
                ReportFormat::Csv => Format::Csv,
            };
            print!("{}", r.render(format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tongdai: records database {}: {e}", db.display());
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok((config, warnings)) => {
            for w in &warnings {
                eprintln!("{w}");
            }
            println!(
                "{}: OK ({} agents, {} lines, {} shifts)",
                path.display(),
                config.agents.len(),
                config.centre.lines,
                config.shifts.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => refuse(&e),
    }
}

fn refuse(e: &ConfigError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(EXIT_BAD_CONFIG)
}

fn run(path: Option<PathBuf>, log_format: Option<Format>) -> ExitCode {
    let source = config_source(path);
    let config = match source.load() {
        Ok(c) => c,
        Err(e) => return refuse(&e),
    };
    let format = match log_format {
        Some(Format::Human) => LogFormat::Human,
        Some(Format::Json) => LogFormat::Json,
        None => config.log.format,
    };
    tongdai::logging::init(&config.log.level, format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tongdai: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let signals = lifecycle::Signals::install()?;
        let daemon = Daemon::start(config).await?;
        print_banner(&daemon);
        lifecycle::run(daemon, source, signals).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tongdai: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_banner(daemon: &Daemon) {
    let config = daemon.shared().config();
    let list = |addrs: &[std::net::SocketAddr]| {
        addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    };
    println!("tongdai {} — {}", env!("CARGO_PKG_VERSION"), config.centre.name);
    println!("  config:  {}", config.origin.display());
    println!(
        "  SIP:     udp {} | tcp {}",
        list(daemon.sip_udp_addrs()),
        list(daemon.sip_tcp_addrs())
    );
    println!("  HTTP:    http://{}/metrics", daemon.http_addr());
    println!(
        "  RTP:     {} ports {}-{}",
        config.media.address, config.media.rtp_port_min, config.media.rtp_port_max
    );
    println!(
        "  service: numbers {} | {} agents | {} lines",
        config.trunk.numbers.join(", "),
        config.agents.len(),
        config.centre.lines
    );
    match &config.records.path {
        Some(path) => println!("  records: {}", path.display()),
        None => println!("  records: none kept ([records] path is empty)"),
    }
}
