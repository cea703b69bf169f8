//! `mobile-shell`: the technician's actions on the command line, for scripts and support staff.
//! It is a face over `client-core` and adds nothing but argument parsing and presentation.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use client_core::{Error, JobFilter, Options, Replica, Synchronous};
use schemas::JobStatus;
use schemas::job::{Customer, NewJob, Site};
use schemas::parts::NewPartLine;

mod demo;
mod output;
mod serve;
mod sync;
mod uploads;

#[derive(Parser)]
#[command(
    name = "mobile-shell",
    version,
    about = "Fieldsync on a technician's device: works offline, syncs later"
)]
struct Cli {
    /// Folder holding this device's replica.
    #[arg(
        long,
        global = true,
        env = "FIELDSYNC_DATA_DIR",
        default_value = "fieldsync-device"
    )]
    data_dir: PathBuf,
    /// How each commit is made durable: FULL (survives a power cut) or NORMAL (faster; survives
    /// a crash of the app, not of the device).
    #[arg(
        long,
        global = true,
        env = "FIELDSYNC_SYNCHRONOUS",
        default_value = "FULL",
        value_parser = parse_synchronous
    )]
    synchronous: Synchronous,
    /// Machine-readable output (JSON on stdout).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List jobs (all by default).
    Jobs {
        #[arg(long, conflicts_with_all = ["upcoming", "status"])]
        today: bool,
        #[arg(long, conflicts_with = "status")]
        upcoming: bool,
        #[arg(long)]
        status: Option<String>,
    },
    /// Create, show and move jobs.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Set a checklist item's value: pass/fail/na, text, a number or one of the item's choices.
    Check {
        job: String,
        item: String,
        value: String,
    },
    /// Record, change and remove parts used.
    Part {
        #[command(subcommand)]
        command: PartCommand,
    },
    /// Attach photos.
    Photo {
        #[command(subcommand)]
        command: PhotoCommand,
    },
    /// Start or stop timing work on a job.
    Time {
        #[command(subcommand)]
        command: TimeCommand,
    },
    /// Record the customer's sign-off.
    Sign {
        job: String,
        /// The signer's name.
        #[arg(long)]
        name: String,
        /// The signature, as a PNG file.
        #[arg(long)]
        signature: PathBuf,
    },
    /// List the checklist templates.
    Templates,
    /// Local changes the server has not acknowledged yet.
    Pending,
    /// Fill an empty replica with sample jobs, then list them.
    Demo {
        /// How many jobs (the four samples, repeated over the coming days).
        #[arg(long, default_value_t = 4)]
        jobs: usize,
    },
    /// Sign in to a server and register this device.
    Login {
        /// The server, e.g. http://127.0.0.1:8080
        #[arg(long)]
        server: String,
        #[arg(long)]
        user: String,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// How this device is listed for the admin.
        #[arg(long, default_value = "mobile-shell")]
        device_name: String,
    },
    /// Sync with the server.
    Sync {
        /// Sync until nothing is left to send or receive, then exit.
        #[arg(long)]
        once: bool,
        /// Give up after this many seconds (with --once).
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Changes waiting for the server, the last successful sync, documents held.
    Status,
    /// Run the technician's app: sync in the background and the web UI on this device.
    Serve {
        /// Where the UI and its local API listen (port 0 picks a free one; the address is
        /// printed).
        #[arg(long, default_value = "127.0.0.1:7180")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum JobCommand {
    /// Create a job on this device.
    Create {
        #[arg(long)]
        title: String,
        /// Checklist template (see `templates`).
        #[arg(long)]
        template: Option<String>,
        #[arg(long, default_value = "")]
        customer: String,
        #[arg(long, default_value = "")]
        site: String,
        #[arg(long)]
        priority: Option<String>,
    },
    /// Show a job with its checklist, parts, photos and sign-off.
    Show { id: String },
    /// Move a job to a new status.
    Status { id: String, status: String },
    /// Replace a job's notes.
    Notes { id: String, text: String },
    /// Add a note as its own line at the end of a job's notes.
    Note { id: String, text: String },
    /// Create a follow-up job for the same customer and site.
    FollowUp {
        id: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        template: Option<String>,
    },
}

#[derive(Subcommand)]
enum PartCommand {
    /// Add a part line.
    Add {
        job: String,
        sku: String,
        #[arg(allow_negative_numbers = true)]
        qty: f64,
        #[arg(long, default_value = "")]
        description: String,
        /// Stock location the part came from (e.g. your van).
        #[arg(long)]
        source: Option<String>,
    },
    /// Change a line's quantity.
    Set {
        job: String,
        line: String,
        #[arg(allow_negative_numbers = true)]
        qty: f64,
    },
    /// Remove a line.
    Remove { job: String, line: String },
}

#[derive(Subcommand)]
enum PhotoCommand {
    /// Attach an image file (JPEG, PNG or WebP) to a job, optionally answering a checklist item.
    Add {
        job: String,
        file: PathBuf,
        #[arg(long)]
        item: Option<String>,
        #[arg(long, default_value = "")]
        caption: String,
    },
}

#[derive(Subcommand)]
enum TimeCommand {
    Start { job: String },
    Stop { job: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if cli.json {
                eprintln!("{}", serde_json::json!({"error": e.to_string()}));
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(if is_bad_input(&e) { 2 } else { 1 })
        }
    }
}

/// Exit status 2 is for input the user can fix; the network, the server, sign-in and storage
/// failures exit 1.
fn is_bad_input(e: &anyhow::Error) -> bool {
    if let Some(e) = e.downcast_ref::<Error>() {
        return e.is_bad_input();
    }
    e.downcast_ref::<client_core::sync::SyncError>()
        .is_some_and(client_core::sync::SyncError::is_bad_input)
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let options = Options {
        synchronous: cli.synchronous,
        ..Options::default()
    };
    // The app takes the data dir for itself before opening the replica.
    if let Command::Serve { listen } = &cli.command {
        return serve::run(serve::Serve {
            data_dir: cli.data_dir.clone(),
            listen: *listen,
            options,
        });
    }
    let mut r = Replica::open_with(&cli.data_dir, options)?;
    let out = output::Out { json: cli.json };
    match &cli.command {
        Command::Jobs {
            today,
            upcoming,
            status,
        } => {
            let filter = match (today, upcoming, status) {
                (true, _, _) => JobFilter::Today,
                (_, true, _) => JobFilter::Upcoming,
                (_, _, Some(s)) => JobFilter::Status(parse_status(s)?),
                _ => JobFilter::All,
            };
            out.jobs(&r.list_jobs(filter)?)
        }
        Command::Job { command } => match command {
            JobCommand::Create {
                title,
                template,
                customer,
                site,
                priority,
            } => {
                let priority = match priority {
                    Some(p) => schemas::Priority::parse(p).ok_or_else(|| {
                        Error::InvalidValue(format!(
                            "unknown priority `{p}` (low, medium, high, urgent)"
                        ))
                    })?,
                    None => Default::default(),
                };
                let new = NewJob {
                    title: title.clone(),
                    customer: Customer {
                        name: customer.clone(),
                        ..Default::default()
                    },
                    site: Site {
                        name: site.clone(),
                        ..Default::default()
                    },
                    priority,
                    ..Default::default()
                };
                out.job(&r.create_job(new, template.as_deref())?)
            }
            JobCommand::Show { id } => {
                let id = r.resolve_job(id)?;
                match r.job(id) {
                    // Shown, with why, rather than failing: the server repairs it on the next sync.
                    Err(client_core::Error::Broken { job, kind, reasons }) => {
                        out.broken(&job.to_string(), kind, &reasons)
                    }
                    other => out.job(&other?),
                }
            }
            JobCommand::Status { id, status } => {
                let id = r.resolve_job(id)?;
                r.set_status(id, parse_status(status)?)?;
                out.done(&format!("job {id} is now {status}"))
            }
            JobCommand::Notes { id, text } => {
                let id = r.resolve_job(id)?;
                r.set_notes(id, text)?;
                out.done("notes saved")
            }
            JobCommand::Note { id, text } => {
                let id = r.resolve_job(id)?;
                r.append_note(id, text)?;
                out.done("note added")
            }
            JobCommand::FollowUp {
                id,
                title,
                template,
            } => {
                let id = r.resolve_job(id)?;
                out.job(&r.create_follow_up(id, title, template.as_deref())?)
            }
        },
        Command::Check { job, item, value } => {
            let id = r.resolve_job(job)?;
            r.set_check_str(id, item, value)?;
            out.done(&format!("{item} = {value}"))
        }
        Command::Part { command } => match command {
            PartCommand::Add {
                job,
                sku,
                qty,
                description,
                source,
            } => {
                let id = r.resolve_job(job)?;
                let line = NewPartLine {
                    sku: sku.clone(),
                    description: description.clone(),
                    qty: *qty,
                    unit: None,
                    source: source.clone(),
                };
                let line_id = r.add_part(id, line)?;
                out.value(
                    serde_json::json!({"line": line_id}),
                    &format!("added line {line_id}"),
                )
            }
            PartCommand::Set { job, line, qty } => {
                let id = r.resolve_job(job)?;
                let line = r.resolve_part_line(id, line)?;
                r.set_part_qty(id, &line, *qty)?;
                out.done(&format!("line {line}: quantity {qty}"))
            }
            PartCommand::Remove { job, line } => {
                let id = r.resolve_job(job)?;
                let line = r.resolve_part_line(id, line)?;
                r.remove_part(id, &line)?;
                out.done(&format!("removed line {line}"))
            }
        },
        Command::Photo {
            command:
                PhotoCommand::Add {
                    job,
                    file,
                    item,
                    caption,
                },
        } => {
            let id = r.resolve_job(job)?;
            let photo = r.attach_photo(id, file, item.as_deref(), caption)?;
            out.value(
                serde_json::to_value(&photo)?,
                &format!(
                    "photo {} ({}x{}, {})",
                    photo.id, photo.width, photo.height, photo.mime
                ),
            )
        }
        Command::Time { command } => match command {
            TimeCommand::Start { job } => {
                let id = r.resolve_job(job)?;
                let entry = r.start_time(id)?;
                out.value(serde_json::json!({"entry": entry}), "timer started")
            }
            TimeCommand::Stop { job } => {
                let id = r.resolve_job(job)?;
                r.stop_time(id)?;
                out.done("timer stopped")
            }
        },
        Command::Sign {
            job,
            name,
            signature,
        } => {
            let id = r.resolve_job(job)?;
            let s = r.sign_off(id, name, signature)?;
            out.value(
                serde_json::to_value(&s)?,
                &format!("signed off by {} at {}", s.signer_name, s.signed_at),
            )
        }
        Command::Templates => {
            let pack = r.templates()?;
            let text: Vec<String> = pack
                .iter()
                .map(|t| {
                    format!(
                        "{:<20} v{} {} ({} items)",
                        t.name,
                        t.version,
                        t.title,
                        t.items.len()
                    )
                })
                .collect();
            out.value(serde_json::to_value(&pack)?, &text.join("\n"))
        }
        Command::Pending => {
            let pending = r.unacked()?;
            let json: Vec<_> = pending
                .iter()
                .map(|(d, h)| serde_json::json!({"document": d, "change": h}))
                .collect();
            out.value(
                serde_json::Value::Array(json),
                &format!(
                    "{} change(s) not yet acknowledged by the server",
                    pending.len()
                ),
            )
        }
        Command::Login {
            server,
            user,
            password_stdin: _,
            device_name,
        } => {
            let mut password = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut password)?;
            let device = client_core::sync::account::login(
                &mut r,
                server,
                user,
                password.trim_end_matches(['\n', '\r']),
                device_name,
            )?;
            out.value(
                serde_json::json!({"device_id": device, "user": user, "server": server}),
                &format!("signed in as {user}; device {device}"),
            )
        }
        Command::Sync { once, timeout } => sync::run(
            &mut r,
            &out,
            *once,
            std::time::Duration::from_secs(*timeout),
        ),
        Command::Serve { .. } => unreachable!("served above"),
        Command::Status => {
            let unacked = r.unacked()?.len();
            let last = r.meta("last_sync_at")?;
            let docs = r.documents()?.len();
            let server = r.meta("server")?;
            let repairs = r.repairs()?;
            let waiting = r.uploads_waiting()?;
            let mut text = format!(
                "{unacked} change(s) not yet acknowledged; last sync {}; {docs} document(s); server {}",
                last.as_deref().unwrap_or("never"),
                server.as_deref().unwrap_or("(not signed in)")
            );
            text.push_str(&output::repairs(&repairs));
            text.push_str(&uploads::describe(&waiting));
            out.value(
                serde_json::json!({"unacknowledged": unacked, "last_sync_at": last, "documents": docs, "server": server, "user": r.user(), "repairs": repairs, "uploads": waiting}),
                &text,
            )
        }
        Command::Demo { jobs } => {
            demo::fill(&mut r, *jobs)?;
            out.jobs(&r.list_jobs(JobFilter::All)?)
        }
    }
}

fn parse_synchronous(s: &str) -> Result<Synchronous, String> {
    Synchronous::parse(s).ok_or_else(|| format!("`{s}` is not FULL or NORMAL"))
}

fn parse_status(s: &str) -> anyhow::Result<JobStatus> {
    Ok(JobStatus::parse(s).ok_or_else(|| Error::UnknownStatus(s.to_string()))?)
}
