//! `sync-server`: parses the command line, installs logging and calls the library.

use std::io::Read;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use sync_server::config::Config;
use sync_server::store::Role;

#[derive(Parser)]
#[command(name = "sync-server", version, about = "Fieldsync sync server")]
struct Cli {
    /// postgres://… for production; unset runs on an embedded SQLite file in --data-dir.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[arg(
        long,
        global = true,
        env = "FIELDSYNC_DATA_DIR",
        default_value = "fieldsync-data"
    )]
    data_dir: PathBuf,
    #[arg(
        long,
        global = true,
        value_enum,
        env = "FIELDSYNC_LOG_FORMAT",
        default_value = "pretty"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Pretty,
}

#[derive(Subcommand)]
enum Command {
    /// Serve devices and the API. Every other setting comes from the environment (`.env.sample`).
    Serve {
        #[arg(long, env = "FIELDSYNC_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Create the demo org, users and jobs (once) and print how to sign in.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (and their org, if new), reading the password from standard input.
    Add {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["technician", "dispatcher", "back_office", "admin"])]
        role: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// jemalloc, not glibc malloc: documents loaded and unloaded by the cache leave glibc's arenas
/// holding several times the live heap (BENCHMARKS.md, "Which allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The runtime is built by hand for one setting: the embedded SQLite store runs every query on
/// a blocking thread, and tokio's default of up to 512 of them let 10,000 idle connections grow
/// hundreds of threads whose malloc arenas held over a GiB (BENCHMARKS.md, `idle`). SQLite takes
/// one writer at a time anyway, so a few threads lose nothing.
fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    match cli.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Pretty => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    let mut config = Config::from_env(&cli.data_dir, cli.database_url.as_deref())?;
    match cli.command {
        Command::Serve { listen, demo } => {
            config.demo = demo;
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            sync_server::launch(config, listener, shutdown).await
        }
        Command::Migrate => {
            sync_server::open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    org,
                    name,
                    role,
                    password_stdin: _,
                },
        } => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(
                password.len() >= 8,
                "the password must have at least 8 characters"
            );
            let role = Role::parse(&role).expect("clap checked the role");
            let store = sync_server::open_store(&config).await?;
            let org = match store.org_by_name(&org).await? {
                Some(o) => o,
                None => store.create_org(&org).await?,
            };
            let user = store
                .create_user(
                    org.id,
                    &name,
                    role,
                    &sync_server::auth::hash_password(password),
                )
                .await?;
            println!(
                "{}",
                serde_json::json!({"id": user.id, "name": user.name, "role": role.as_str(), "org": org.name})
            );
            Ok(())
        }
    }
}
