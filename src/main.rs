use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use ecr_deployd::commands;
use ecr_deployd::config::{DEFAULT_CONFIG_PATH, Settings};
use ecr_deployd::control::socket::Request;
use tracing_subscriber::EnvFilter;

mod manual;

/// `--version`: the version, the git revision and the build date (stamped by build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("STAMP_GIT_REVISION"),
    ", built ",
    env!("STAMP_BUILD_DATE"),
    ")"
);

/// Pull-only agent: redeploys local Docker containers when Amazon ECR tags they follow move.
#[derive(Parser, Debug)]
#[command(name = "ecr-deployd", version = VERSION, about, propagate_version = true)]
struct Cli {
    /// Configuration file [default: /etc/ecr-deployd/config.toml]
    #[arg(long, global = true, env = "ECR_DEPLOYD_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log line format (logs go to standard error)
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// More log detail (-v debug, -vv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug, Clone)]
enum Command {
    /// Run the agent: queue intake, periodic sweep and deploys
    Run,
    /// One reconciliation pass over all managed containers, then exit
    Sweep {
        /// Report what would be deployed without changing anything
        #[arg(long)]
        dry_run: bool,
    },
    /// Managed containers, what ECR says, last deployment outcome
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Past deployments, newest first
    History {
        /// Only this container
        container: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Redeploy the previous good digest (or DIGEST) and block the current one
    Rollback {
        container: String,
        #[arg(long, value_name = "DIGEST")]
        to: Option<String>,
    },
    /// Deploy what ECR names now for a manual/window container (or clear a block for DIGEST)
    Approve {
        container: String,
        /// Only if the tag still names this digest; also clears a block on it
        #[arg(long, value_name = "DIGEST")]
        digest: Option<String>,
    },
    /// Hold deploys of containers (kept across restarts) until `resume`
    Pause {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        containers: Vec<String>,
        /// Every managed container and service, including ones created later
        #[arg(long)]
        all: bool,
        /// Shown by `status`
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Release paused containers
    Resume {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        containers: Vec<String>,
        #[arg(long)]
        all: bool,
    },
    /// Check configuration, AWS, queue, rule, Docker and state store
    Doctor,
    /// The fleet from its ledger in S3: which digest runs on which host, since when, what ran before
    Fleet {
        #[command(subcommand)]
        what: Option<FleetCommand>,
        /// The ledger, s3://BUCKET/PREFIX/ [default: the config's [fleet] ledger; no config file needed with it]
        #[arg(long, global = true, value_name = "S3URL")]
        ledger: Option<String>,
        /// One JSON document on stdout
        #[arg(long, global = true)]
        json: bool,
        /// Write a self-contained HTML page (a table per repository:tag) to FILE
        #[arg(long, value_name = "FILE", conflicts_with = "json")]
        html: Option<PathBuf>,
    },
    /// Validate the configuration and print it with secrets redacted
    CheckConfig,
    /// Print the shell completion script for SHELL (bash, zsh or fish)
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff), generated from these definitions
    #[command(hide = true)]
    Manpage,
}

#[derive(Subcommand, Debug, Clone)]
enum FleetCommand {
    /// Every digest running, or kept for rollback, anywhere in the fleet: what a clean-up must not expire
    InUse {
        /// Only this ECR repository
        repository: Option<String>,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The async runtime's worker threads.
const RUNTIME_WORKERS: usize = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = generated(&cli.command) {
        return code;
    }
    init_tracing(cli.log_format, cli.verbose);
    let (path, is_default) = match &cli.config {
        Some(p) => (p.clone(), false),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), true),
    };
    let settings = match load_settings(&cli.command, &path, is_default) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Some(code) = without_runtime(&cli.command, &settings) {
        return code;
    }
    // Two workers whatever the host's core count: the agent waits on sockets (SQS, ECR, the
    // Engine); one worker per core would cost a thread stack and a malloc arena each on a
    // large host for nothing.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKERS)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ecr-deployd: cannot start the async runtime: {e}");
            return ExitCode::from(commands::EXIT_CANNOT_RUN);
        }
    };
    // Read once here; nothing below looks at the environment.
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let code = runtime.block_on(with_runtime(cli.command, settings, &path, docker_host));
    ExitCode::from(code)
}

/// The configuration at `path` (with the environment's overrides), or the exit code of a
/// configuration that cannot be read: `doctor` reports it as a failed check, and
/// `fleet --ledger`, which runs on any machine with read access, needs no config file.
fn load_settings(command: &Command, path: &Path, is_default: bool) -> Result<Settings, ExitCode> {
    let e = match Settings::load(path, is_default, std::env::vars()) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    if let Command::Fleet {
        ledger: Some(_), ..
    } = command
        && let Ok(s) = Settings::from_env(std::env::vars())
    {
        return Ok(s);
    }
    if let Command::Doctor = command {
        println!("FAIL config valid: {e}");
        return Err(ExitCode::from(commands::EXIT_FAILED));
    }
    eprintln!("ecr-deployd: invalid configuration: {e}");
    Err(ExitCode::from(commands::EXIT_CANNOT_RUN))
}

/// `check-config` and `history`: answered from the configuration and the state store, no
/// async runtime started.
fn without_runtime(command: &Command, settings: &Settings) -> Option<ExitCode> {
    match command {
        Command::CheckConfig => {
            print!("{}", settings.to_redacted_toml());
            if settings.require_queue().is_err() {
                eprintln!("note: queue.url is not set; `run` needs it");
            }
            Some(ExitCode::SUCCESS)
        }
        Command::History {
            container,
            limit,
            json,
        } => Some(ExitCode::from(commands::history(
            settings,
            container.as_deref(),
            *limit,
            *json,
        ))),
        _ => None,
    }
}

/// Every other command, on the async runtime: `run`, `fleet`, the acting commands (through
/// the daemon or in-process), `status` and `doctor`.
async fn with_runtime(
    command: Command,
    settings: Settings,
    path: &Path,
    docker_host: Option<String>,
) -> u8 {
    if let Command::Run = command {
        return match ecr_deployd::app::run(settings, docker_host, shutdown_signal()).await {
            Ok(()) => commands::EXIT_OK,
            Err(e) => {
                eprintln!("ecr-deployd: {e}");
                commands::EXIT_CANNOT_RUN
            }
        };
    }
    if let Command::Fleet {
        what,
        ledger,
        json,
        html,
    } = &command
    {
        let ledger = ledger.as_deref();
        return match what {
            Some(FleetCommand::InUse { repository }) => {
                commands::fleet::in_use(&settings, ledger, repository.as_deref(), *json).await
            }
            None => commands::fleet::fleet(&settings, ledger, *json, html.as_deref()).await,
        };
    }
    if let Some(request) = acting(&command) {
        return commands::dispatch::run(settings, docker_host.as_deref(), request).await;
    }
    let ctx = match commands::Context::new(settings, docker_host.as_deref()).await {
        Ok(c) => c,
        Err(e) if matches!(command, Command::Doctor) => {
            println!("FAIL Docker reachable: {e}");
            eprintln!("ecr-deployd: {e}");
            return commands::EXIT_FAILED;
        }
        Err(e) => {
            eprintln!("ecr-deployd: {e}");
            return commands::EXIT_CANNOT_RUN;
        }
    };
    match &command {
        Command::Status { json } => commands::status(&ctx, *json).await,
        Command::Doctor => commands::doctor(&ctx, &path.display().to_string()).await,
        _ => commands::EXIT_OK,
    }
}

/// `completions` and `manpage`: printed from the clap definitions, no configuration read.
fn generated(command: &Command) -> Option<ExitCode> {
    let mut cmd = Cli::command();
    // Rendered whole first: a reader that goes away (`| head`) is a write error, not a panic.
    let mut text = Vec::new();
    match command {
        Command::Completions { shell } => {
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut cmd, "ecr-deployd", &mut text);
        }
        Command::Manpage => {
            if let Err(e) = manual::render(cmd, &mut text) {
                eprintln!("ecr-deployd: cannot render the manual page: {e}");
                return Some(ExitCode::from(commands::EXIT_CANNOT_RUN));
            }
        }
        _ => return None,
    }
    use std::io::Write;
    Some(match std::io::stdout().lock().write_all(&text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ecr-deployd: cannot write to standard output: {e}");
            ExitCode::from(commands::EXIT_CANNOT_RUN)
        }
    })
}

/// The request of a command that acts (carried out by the daemon when one runs).
fn acting(command: &Command) -> Option<Request> {
    Some(match command.clone() {
        Command::Sweep { dry_run } => Request::Sweep { dry_run },
        Command::Rollback { container, to } => Request::Rollback { container, to },
        Command::Approve { container, digest } => Request::Approve { container, digest },
        Command::Pause {
            containers,
            all,
            reason,
        } => Request::Pause {
            containers,
            all,
            reason,
        },
        Command::Resume { containers, all } => Request::Resume { containers, all },
        _ => return None,
    })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_tracing(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "warn,ecr_deployd=info",
        1 => "warn,ecr_deployd=debug",
        _ => "info,ecr_deployd=trace",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into journald or a log file.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
