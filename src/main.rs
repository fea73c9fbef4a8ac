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
    },
    /// Print the profile language's JSON Schema.
    Schema,
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { profiles } => {
            let mut all = Vec::new();
            for p in &profiles {
                match envc::profile::load(p) {
                    Ok((profile, _)) => {
                        let plan = envc::compile::compile(&profile);
                        if let Err(e) = plan.check() {
                            all.push(Problem::new(format!(
                                "internal: the compiled plan is inconsistent: {e}"
                            )));
                        } else {
                            eprintln!("{}: ok ({} steps)", p.display(), plan.steps.len());
                        }
                    }
                    Err(mut problems) => all.append(&mut problems),
                }
            }
            if all.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprint!("{}", render(&all, Style::for_stderr()));
                ExitCode::from(2)
            }
        }
        Command::Plan {
            profile,
            format,
            output,
        } => match compile_profile(&profile) {
            Ok(plan) => emit_plan(&plan, format, output.as_deref()),
            Err(code) => code,
        },
        Command::Apply {
            profile,
            plan,
            dry_run,
            format,
            report,
            rootfs,
        } => {
            let (compiled, sources, base) = match (&profile, &plan) {
                (Some(p), _) => match envc::profile::load(p) {
                    Ok((profile, sources)) => {
                        let plan = envc::compile::compile(&profile);
                        if let Err(e) = plan.check() {
                            eprintln!(
                                "envc: internal error: the compiled plan is inconsistent: {e}"
                            );
                            return ExitCode::from(125);
                        }
                        (plan, Some(sources), parent_dir(p))
                    }
                    Err(problems) => {
                        eprint!("{}", render(&problems, Style::for_stderr()));
                        return ExitCode::from(if dry_run { 2 } else { 125 });
                    }
                },
                (None, Some(file)) => match load_plan(file) {
                    Ok(p) => (p, None, parent_dir(file)),
                    Err(_) if !dry_run => return ExitCode::from(125),
                    Err(code) => return code,
                },
                (None, None) => unreachable!("clap requires one"),
            };
            if dry_run {
                return emit_plan(&compiled, format, None);
            }
            let rootfs = rootfs.unwrap_or_else(|| base.join(&compiled.rootfs));
            apply(&compiled, rootfs, sources.as_ref(), report.as_deref())
        }
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

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn apply(
    plan: &Plan,
    rootfs: PathBuf,
    sources: Option<&envc::profile::Sources>,
    report_file: Option<&Path>,
) -> ExitCode {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "envc: apply needs root: envc runs privileged containers (the host's root is the container's root)"
        );
        return ExitCode::from(125);
    }
    let state = match envc::state::State::acquire(&plan.name) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("envc: {e}");
            return ExitCode::from(125);
        }
    };
    let logs = envc::state::log_dir().join(&plan.name);
    let opts = envc::exec::supervise::ApplyOptions {
        rootfs,
        console_log: Some(logs.join("console.log")),
        syslog: Some(logs.join("syslog.log")),
        echo_console: true,
    };
    let applied = envc::exec::supervise::apply(plan, &opts);
    state.release();
    let report = &applied.report;
    if let Some(f) = report.failure() {
        let message = match &f.status {
            envc::exec::report::Status::Failed { error, .. } => {
                format!("step {} ({}) failed: {error}", f.step, f.op)
            }
            _ => unreachable!("a failure"),
        };
        let problem = match sources {
            Some(s) => s.problem(&f.origin, message, "this asked for it", false),
            None => Problem::new(format!("{message} (asked for by {})", f.origin)),
        };
        eprint!("{}", render_failure(&problem));
    }
    eprint!("{}", report.summary());
    if let Some(path) = report_file
        && let Err(e) = std::fs::write(path, report.to_json())
    {
        eprintln!("envc: cannot write the report to {}: {e}", path.display());
    }
    ExitCode::from(applied.exit_code)
}

fn render_failure(p: &Problem) -> String {
    let text = render(std::slice::from_ref(p), Style::for_stderr());
    // The summary line of `render` speaks of profile problems; a failed
    // start says so in the report's summary instead.
    text.lines()
        .filter(|l| !l.starts_with("error: 1 problem"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn compile_profile(path: &Path) -> Result<Plan, ExitCode> {
    match envc::profile::load(path) {
        Ok((profile, _)) => {
            let plan = envc::compile::compile(&profile);
            if let Err(e) = plan.check() {
                eprintln!("envc: internal error: the compiled plan is inconsistent: {e}");
                return Err(ExitCode::from(125));
            }
            Ok(plan)
        }
        Err(problems) => {
            eprint!("{}", render(&problems, Style::for_stderr()));
            Err(ExitCode::from(2))
        }
    }
}

fn load_plan(path: &Path) -> Result<Plan, ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("envc: cannot read plan {}: {e}", path.display());
        ExitCode::from(2)
    })?;
    Plan::from_json(&text).map_err(|e| {
        eprintln!("envc: {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn emit_plan(plan: &Plan, format: Format, output: Option<&Path>) -> ExitCode {
    let text = match format {
        Format::Text => plan.to_text(),
        Format::Json => plan.to_json(),
    };
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
