#![deny(unsafe_code)]

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use envc::diag::{Problem, Style, render};
use envc::plan::Plan;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Build LXD-style system containers from TOML profiles, and run them.
#[derive(Parser)]
#[command(name = "envc", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ExportTarget {
    Lxd,
    Oci,
}

#[derive(Subcommand)]
enum Command {
    /// Validate profiles: TOML, schema and meaning. Exit 2 if any is invalid.
    Check {
        /// Profile files; each is checked as the top of its own stack.
        #[arg(required = true)]
        profiles: Vec<PathBuf>,
    },
    /// Compile a profile into its plan, without touching the host.
    Plan {
        profile: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Write the plan to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Print where the time went (load, compile, check, output) on stderr.
        #[arg(long)]
        timings: bool,
    },
    /// Build the container and run its init in the foreground.
    Apply {
        /// The profile (or use --plan).
        #[arg(required_unless_present = "plan", conflicts_with = "plan")]
        profile: Option<PathBuf>,
        /// Replay a saved JSON plan instead of compiling a profile.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// Print the plan and stop (same output as `envc plan`).
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Write the report as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Use this rootfs instead of the plan's.
        #[arg(long, value_name = "DIR")]
        rootfs: Option<PathBuf>,
        /// Detach: return once PID 1 runs, leaving the supervisor in the background.
        #[arg(short, long)]
        detach: bool,
        /// Print where the time went (milestones, and the steps per phase).
        #[arg(long)]
        timings: bool,
    },
    /// List containers (running, or left behind by a supervisor that died).
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Stop a container cleanly (SIGRTMIN+3 or SIGPWR, then SIGKILL after the timeout).
    Stop {
        name: String,
        /// Seconds to wait before killing (default: the profile's stop-timeout).
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Kill at once.
        #[arg(long)]
        force: bool,
    },
    /// Reboot a container (the profile's reboot-signal; stop and start if ignored).
    Reboot { name: String },
    /// Attach to a running container's console (Ctrl-a q detaches).
    Console { name: String },
    /// Run a command inside a running container. Exit status: the command's;
    /// 128+N if it died of signal N; 126 not executable; 127 not found; 125
    /// when envc failed.
    Exec {
        name: String,
        /// Give the command a terminal (the default when stdin and stdout are terminals).
        #[arg(short = 't', long = "tty", conflicts_with = "no_tty")]
        tty: bool,
        /// Never give the command a terminal.
        #[arg(short = 'T', long = "no-tty")]
        no_tty: bool,
        /// Set an environment variable (after the profile's `environment.*`).
        #[arg(long = "env", value_name = "KEY=VALUE", value_parser = envc::attach::environment::parse_env)]
        env: Vec<(String, String)>,
        /// Run as this user (and group; default: the user's group in the container's /etc/passwd).
        #[arg(long, value_name = "UID[:GID]", default_value = "0")]
        user: envc::attach::environment::UserSpec,
        /// Start in this directory (default: the user's home).
        #[arg(long, value_name = "DIR")]
        cwd: Option<String>,
        /// The command and its arguments, found on the container's PATH.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// A login shell as root inside a running container (`su -l`, else `sh -l`).
    Shell { name: String },
    /// A container's state, PID 1, uptime, id map, interfaces and resource use.
    Info {
        name: String,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// A container's console log (running or not).
    Logs {
        name: String,
        /// Keep printing what is written until the container stops.
        #[arg(short, long)]
        follow: bool,
        /// What the guest sent to /dev/log instead of the console.
        #[arg(long)]
        syslog: bool,
    },
    /// Remove what containers whose supervisor died left behind.
    Gc,
    /// Export a profile for a cluster: an LXD/Incus profile (YAML) or an OCI bundle.
    Export {
        profile: PathBuf,
        #[arg(long, value_enum)]
        to: ExportTarget,
        /// The OCI bundle's directory (with --to oci).
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Write the LXD profile to FILE instead of stdout (with --to lxd).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Fail, writing nothing, if any key cannot be exported.
        #[arg(long)]
        strict: bool,
        /// Write the OCI bundle into a directory that is not empty.
        #[arg(long)]
        force: bool,
    },
    /// Import an LXD profile or `lxc config show --expanded` output as a TOML profile.
    Import {
        file: PathBuf,
        /// Write the profile to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The container's name (default: the YAML's `name`).
        #[arg(long)]
        name: Option<String>,
        /// The rootfs directory the profile names (relative to the profile).
        #[arg(long, value_name = "DIR", default_value = "rootfs")]
        rootfs: String,
    },
    /// Print the profile language's JSON Schema.
    Schema,
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    envc::timing::start();
    match Cli::parse().command {
        Command::Check { profiles } => check(&profiles),
        Command::Plan {
            profile,
            format,
            output,
            timings,
        } => {
            let plan = match load_and_compile(&profile) {
                Ok(plan) => plan,
                Err(problems) => return invalid(&problems, 2),
            };
            let code = write_plan(plan_text(&plan, format), output.as_deref());
            if timings {
                envc::timing::mark("plan written");
                let marks = envc::timing::early();
                eprint!(
                    "{}",
                    envc::timing::format_milestones(marks.iter().map(|(w, us)| (w.as_str(), *us)))
                );
            }
            code
        }
        Command::Apply {
            profile,
            plan,
            dry_run,
            format,
            report,
            rootfs,
            detach,
            timings,
        } => {
            // A problem stops `apply` with 125 (envc failed), `--dry-run`
            // with 2 (an invalid profile), as `plan` does.
            let failed = if dry_run { 2 } else { 125 };
            let (compiled, sources, base) = match (&profile, &plan) {
                (Some(p), _) => match load(p) {
                    Ok((profile, sources)) => match compile_checked(&profile) {
                        Ok(plan) => (plan, Some(sources), parent_dir(p)),
                        Err(problems) => return invalid(&problems, failed),
                    },
                    Err(problems) => return invalid(&problems, failed),
                },
                (None, Some(file)) => match load_plan(file) {
                    Ok(p) => (p, None, parent_dir(file)),
                    Err(problems) => return invalid(&problems, failed),
                },
                (None, None) => unreachable!("clap requires one"),
            };
            if dry_run {
                return write_plan(plan_text(&compiled, format), None);
            }
            let rootfs = rootfs.unwrap_or_else(|| base.join(&compiled.rootfs));
            envc::lifecycle::start(
                &compiled,
                rootfs,
                sources.as_ref(),
                report.as_deref(),
                detach,
                timings,
            )
        }
        Command::List { format } => envc::lifecycle::list(format == Format::Json),
        Command::Stop {
            name,
            timeout,
            force,
        } => envc::lifecycle::stop(&name, timeout, force),
        Command::Reboot { name } => envc::lifecycle::reboot(&name),
        Command::Console { name } => envc::lifecycle::console(&name),
        Command::Exec {
            name,
            tty,
            no_tty,
            env,
            user,
            cwd,
            command,
        } => ExitCode::from(envc::attach::exec(&envc::attach::ExecOptions {
            name,
            terminal: (tty || no_tty).then_some(tty),
            env,
            user,
            cwd,
            command,
        })),
        Command::Shell { name } => ExitCode::from(envc::attach::shell(&name)),
        Command::Info { name, format } => envc::info::info(&name, format == Format::Json),
        Command::Logs {
            name,
            follow,
            syslog,
        } => envc::logs::logs(&name, follow, syslog),
        Command::Gc => envc::lifecycle::gc(),
        Command::Export {
            profile,
            to,
            dir,
            output,
            strict,
            force,
        } => match (to, dir) {
            (ExportTarget::Lxd, None) if !force => {
                envc::export::cli::export_lxd(&profile, output.as_deref(), strict)
            }
            (ExportTarget::Oci, Some(dir)) if output.is_none() => {
                envc::export::cli::export_oci(&profile, &dir, strict, force)
            }
            (ExportTarget::Lxd, _) => {
                eprintln!("envc: --to lxd takes -o FILE, not a directory or --force");
                ExitCode::from(2)
            }
            (ExportTarget::Oci, _) => {
                eprintln!(
                    "envc: --to oci takes the bundle's directory: envc export PROFILE --to oci DIR"
                );
                ExitCode::from(2)
            }
        },
        Command::Import {
            file,
            output,
            name,
            rootfs,
        } => envc::export::cli::import(&file, output.as_deref(), name.as_deref(), &rootfs),
        Command::Schema => {
            print!("{}", envc::profile::raw::schema_text());
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "envc", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

/// `envc check`: every profile, each as the top of its own stack; all
/// problems of all of them at once.
fn check(profiles: &[PathBuf]) -> ExitCode {
    let mut all = Vec::new();
    for p in profiles {
        match load_and_compile(p) {
            Ok(plan) => eprintln!("{}: ok ({} steps)", p.display(), plan.steps.len()),
            Err(mut problems) => all.append(&mut problems),
        }
    }
    if all.is_empty() {
        ExitCode::SUCCESS
    } else {
        invalid(&all, 2)
    }
}

/// Loads the profile at `path` (stacked on the built-in base), compiles it
/// and checks the plan.
fn load_and_compile(path: &Path) -> Result<Plan, Vec<Problem>> {
    let (profile, _sources) = load(path)?;
    compile_checked(&profile)
}

fn load(path: &Path) -> Result<(envc::profile::Profile, envc::profile::Sources), Vec<Problem>> {
    let loaded = envc::profile::load(path)?;
    envc::timing::mark("profile loaded and checked");
    Ok(loaded)
}

/// The plan of `profile`, with its invariants checked (a failure there is
/// envc's bug, not the user's).
fn compile_checked(profile: &envc::profile::Profile) -> Result<Plan, Vec<Problem>> {
    let plan = envc::compile::compile(profile);
    envc::timing::mark("plan compiled");
    plan.check().map_err(|e| {
        vec![Problem::new(format!(
            "internal error: the compiled plan is inconsistent: {e}"
        ))]
    })?;
    envc::timing::mark("plan checked");
    Ok(plan)
}

/// Prints `problems` and returns `code`.
fn invalid(problems: &[Problem], code: u8) -> ExitCode {
    eprint!("{}", render(problems, Style::for_stderr()));
    ExitCode::from(code)
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn load_plan(path: &Path) -> Result<Plan, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem::new(format!(
            "cannot read plan {}: {e}",
            path.display()
        ))]
    })?;
    Plan::from_json(&text).map_err(|e| vec![Problem::new(format!("{}: {e}", path.display()))])
}

fn plan_text(plan: &Plan, format: Format) -> String {
    match format {
        Format::Text => plan.to_text(),
        Format::Json => plan.to_json(),
    }
}

fn write_plan(text: String, output: Option<&Path>) -> ExitCode {
    match output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("envc: cannot write {}: {e}", path.display());
                ExitCode::from(1)
            }
        },
    }
}
