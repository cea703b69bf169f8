//! Server configuration, from flags and the environment (see `.env.sample`).

use std::path::PathBuf;
use std::time::Duration;

/// Where the server keeps its state.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// The embedded default: one SQLite file.
    Sqlite(PathBuf),
    /// `postgres://…`: production, and several nodes on one database.
    Postgres(String),
}

impl std::fmt::Debug for Database {
    /// Never prints a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Database::Postgres(url) => {
                let redacted = match (url.find("://"), url.rfind('@')) {
                    (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
                    _ => url.clone(),
                };
                write!(f, "Postgres({redacted})")
            }
        }
    }
}

impl Database {
    /// `DATABASE_URL` as given; unset means the embedded SQLite file in `data_dir`.
    pub fn from_url(url: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<Database> {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            None => Ok(Database::Sqlite(data_dir.join("server.sqlite"))),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Database::Postgres(u.into()))
            }
            Some(u) if u.starts_with("sqlite://") => {
                Ok(Database::Sqlite(PathBuf::from(&u["sqlite://".len()..])))
            }
            Some(u) => anyhow::bail!(
                "DATABASE_URL must be postgres://… or sqlite://PATH, got `{}`",
                u.split(':').next().unwrap_or("")
            ),
        }
    }
}

/// Where the S3 blob store is (`FIELDSYNC_S3_*`); without it blobs go to the data dir.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Config {
    /// Never prints the secret key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish()
    }
}

/// Photo and signature uploads (`/api/v1/uploads`).
#[derive(Clone, Debug)]
pub struct UploadConfig {
    /// Largest blob accepted, in bytes (`FIELDSYNC_MAX_UPLOAD_MB`, default 100 MB).
    pub max_bytes: u64,
    /// An unfinished upload is dropped this long after it was created.
    pub expires_after: Duration,
    /// Images wider or taller than this are refused before they are decoded.
    pub max_image_dimension: u32,
    /// Memory one image decode may allocate.
    pub max_image_alloc: u64,
    /// Thumbnails made at once (each on a blocking thread).
    pub thumbnail_workers: usize,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_bytes: 100 * 1000 * 1000,
            expires_after: Duration::from_secs(24 * 3600),
            max_image_dimension: 16_384,
            max_image_alloc: 512 * 1024 * 1024,
            thumbnail_workers: 2,
        }
    }
}

/// Postgres connections per node, unless `FIELDSYNC_PG_POOL_SIZE` says otherwise.
pub const DEFAULT_PG_POOL_SIZE: u32 = 16;

/// Every setting of the server, with its default in [`Config::embedded`] and its environment
/// variable in [`Config::from_env`] (and `.env.sample`).
#[derive(Clone, Debug)]
pub struct Config {
    pub database: Database,
    /// Folder for the embedded database and, later, local blobs.
    pub data_dir: PathBuf,
    /// Postgres connections in this node's pool.
    pub pg_pool_size: u32,
    /// Create the demo org, users and jobs (once) at start.
    pub demo: bool,
    /// Largest sync frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Sync messages a connection may send per second before it is told to slow down.
    pub max_messages_per_second: u32,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// A used refresh token presented again later than this after its use revokes its device
    /// (taken as stolen); sooner, it is only refused (a client's own concurrent retry).
    pub refresh_reuse_grace: Duration,
    /// Memory budget for loaded documents; least recently used ones are unloaded beyond it.
    pub doc_cache_bytes: usize,
    /// A document is compacted into a new snapshot after this many appended changes (and loaded
    /// afresh from it, which gives back the memory the changes took as they came in).
    pub compact_every: usize,
    /// A document that took changes in, then none for this long, is loaded afresh from its own
    /// save (`sync::docs`). Zero (the default): never. Since changes taken in no longer keep
    /// Automerge's patches, that gives back about 4 MiB at 1,000 jobs for a tenth more CPU per
    /// edit (BENCHMARKS.md), so it is off unless set.
    pub doc_settle_after: Duration,
    /// What one device change may cost, checked before anything is applied or stored.
    pub limits: crate::sync::bounds::Limits,
    /// Bytes a connection may send per second (frames are counted as they arrive).
    pub max_bytes_per_second: usize,
    /// Document messages (one per document in a `sync` frame) a connection may send per second.
    pub max_doc_messages_per_second: u32,
    /// Backoff after failed sign-ins, per user name and per client address.
    pub login_throttle: crate::throttle::LoginThrottle,
    /// Memory that password checks may use at once (argon2 with its defaults needs 19 MiB per
    /// check); sign-ins beyond it wait their turn.
    pub password_memory: usize,
    /// The S3 blob store, or `None` for the folder `blobs/` in `data_dir`.
    pub s3: Option<S3Config>,
    pub uploads: UploadConfig,
    /// Keep the relational rows in step with the log on this node (`projection/`). Off, the
    /// node only serves; another node (or a later start) projects what it commits.
    pub projection: bool,
    /// Changes the projection reads per transaction.
    pub projection_batch: i64,
    /// How often the projection looks at the log without being woken (the catch-up that covers
    /// a lost notice).
    pub projection_interval: Duration,
    /// How long the projection waits, once woken by a commit, for the commits right behind it,
    /// so that they share one step (zero: a step per wake).
    pub projection_coalesce: Duration,
    /// How often a node rewrites who is connected to it (the heartbeat of `presence`).
    pub presence_interval: Duration,
    /// Board event streams (`/api/v1/board/events`) one user may hold open at once.
    pub max_board_streams: usize,
    /// How often the preventive-maintenance scheduler runs (`planning::scheduler`).
    pub pm_interval: Duration,
    /// A schedule's days between a job's creation and its due date, when it names none.
    pub pm_horizon_days: u32,
    /// The local time (in the site's zone) a PM job starts on its due date.
    pub pm_start_time: chrono::NaiveTime,
    /// How long a claimed occurrence may wait for its job before another run takes it over (its
    /// node died between the claim and the job). Longer than making one job ever takes.
    pub pm_claim_lease: Duration,
    /// How often the SLA watcher evaluates the open jobs' clocks (`planning::sla_watch`).
    pub sla_interval: Duration,
    /// The fraction of a limit from which a running SLA clock is `approaching` (0 < f ≤ 1).
    pub sla_approaching: f64,
    /// Where SLA breaches (and approaching ones) are POSTed as JSON; none: only recorded.
    pub sla_webhook_url: Option<WebhookUrl>,
    /// How long one webhook request may take.
    pub sla_webhook_timeout: Duration,
    /// The wait after a failed delivery, doubled per attempt up to `sla_retry_max`.
    pub sla_retry_base: Duration,
    pub sla_retry_max: Duration,
    /// Sensor readings over MQTT (`iot/mqtt.rs`); `None` (`FIELDSYNC_MQTT_URL=off`) reads them
    /// over HTTP only.
    pub mqtt: Option<MqttConfig>,
    /// Readings older than this are deleted (`FIELDSYNC_READINGS_RETENTION_DAYS`, 90).
    pub readings_retention_days: u32,
    /// Readings written per store transaction, at most (`FIELDSYNC_READINGS_BATCH`).
    pub readings_batch: usize,
    /// How often a node reloads the sensors (those other nodes created), finishes firings whose
    /// node died, and prunes old readings (`FIELDSYNC_SENSOR_SWEEP_MS`).
    pub sensor_sweep_interval: Duration,
    /// How long a claimed firing may wait for its job before another node makes it
    /// (`FIELDSYNC_SENSOR_CLAIM_LEASE_MS`).
    pub sensor_claim_lease: Duration,
}

/// A webhook's URL (`http://` or `https://`). Its `Debug` shows the scheme and host only: a
/// path or query may carry the receiver's secret token.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(pub String);

impl WebhookUrl {
    pub fn parse(url: &str) -> anyhow::Result<WebhookUrl> {
        let uri: axum::http::Uri = url.parse().map_err(|e| anyhow::anyhow!("not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some() => Ok(WebhookUrl(url.to_string())),
            _ => anyhow::bail!("must be an http:// or https:// URL with a host"),
        }
    }
}

/// The MQTT broker the sensors publish to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttConfig {
    /// `mqtt://host:port` (`FIELDSYNC_MQTT_URL`, default `mqtt://127.0.0.1:1883`).
    pub url: String,
    /// The shared-subscription group (`$share/{group}/fieldsync/+/sensors/+`): the nodes of one
    /// deployment share one group, so each reading reaches one of them (`FIELDSYNC_MQTT_GROUP`).
    pub group: String,
    /// The subscription's QoS (`FIELDSYNC_MQTT_QOS`, 0 or 1; 0 by default). At 1 the broker keeps
    /// each reading until this node acknowledges it, but sends only a window of readings at a
    /// time (Mosquitto's `max_inflight_messages`, 20 by default) and drops what queues beyond
    /// `max_queued_messages` (1,000): a storm is then cut short unless the broker's window is
    /// raised. At 0 readings stream as fast as the node reads them; a node that stops loses
    /// what the broker had sent it and it had not stored.
    pub qos: u8,
}

impl MqttConfig {
    /// Host and port of `url` (`mqtt://host:port`, `tcp://…` or a bare `host:port`).
    pub fn host_port(&self) -> anyhow::Result<(String, u16)> {
        let rest = self
            .url
            .strip_prefix("mqtt://")
            .or_else(|| self.url.strip_prefix("tcp://"))
            .unwrap_or(&self.url)
            .trim_end_matches('/');
        match rest.rsplit_once(':') {
            Some((host, port)) => Ok((
                host.to_string(),
                port.parse()
                    .map_err(|e| anyhow::anyhow!("MQTT URL {:?}: bad port: {e}", self.url))?,
            )),
            None if !rest.is_empty() => Ok((rest.to_string(), 1883)),
            None => anyhow::bail!("MQTT URL {:?} names no host", self.url),
        }
    }
}

impl std::ops::Deref for WebhookUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.parse::<axum::http::Uri>() {
            Ok(u) => write!(
                f,
                "{}://{}/***",
                u.scheme_str().unwrap_or("?"),
                u.authority().map(|a| a.host()).unwrap_or("?")
            ),
            Err(_) => f.write_str("***"),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: "mqtt://127.0.0.1:1883".into(),
            group: "fieldsync".into(),
            qos: 0,
        }
    }
}

impl Config {
    /// The defaults, with the embedded store in `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir = data_dir.into();
        Config {
            database: Database::Sqlite(data_dir.join("server.sqlite")),
            data_dir,
            pg_pool_size: DEFAULT_PG_POOL_SIZE,
            demo: false,
            max_frame_bytes: schemas::wire::DEFAULT_MAX_FRAME_BYTES,
            max_messages_per_second: 500,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_reuse_grace: Duration::from_secs(10),
            doc_cache_bytes: 256 * 1024 * 1024,
            compact_every: 64,
            doc_settle_after: Duration::ZERO,
            limits: crate::sync::bounds::Limits::default(),
            max_bytes_per_second: 16 * 1024 * 1024,
            max_doc_messages_per_second: 2_000,
            login_throttle: crate::throttle::LoginThrottle::default(),
            // One default check at a time (about 40 sign-ins a second on one core): sign-ins are
            // rare (a refresh needs no password), and each check held adds 19 MiB to the peak.
            password_memory: 24 * 1024 * 1024,
            s3: None,
            uploads: UploadConfig::default(),
            projection: true,
            projection_batch: 2_000,
            projection_interval: Duration::from_secs(1),
            // At 100 edits/s a step per edit cost more than the edits' own Automerge work; the
            // board's rows wait this much longer, the devices' acks and live fan-out not at all.
            projection_coalesce: Duration::from_millis(20),
            presence_interval: Duration::from_secs(5),
            max_board_streams: 8,
            pm_interval: Duration::from_secs(60),
            pm_horizon_days: 14,
            pm_start_time: chrono::NaiveTime::from_hms_opt(8, 0, 0).expect("08:00"),
            pm_claim_lease: Duration::from_secs(5 * 60),
            sla_interval: Duration::from_secs(15),
            sla_approaching: 0.8,
            sla_webhook_url: None,
            sla_webhook_timeout: Duration::from_secs(5),
            sla_retry_base: Duration::from_secs(1),
            sla_retry_max: Duration::from_secs(5 * 60),
            mqtt: Some(MqttConfig::default()),
            readings_retention_days: 90,
            readings_batch: 5_000,
            sensor_sweep_interval: Duration::from_secs(10),
            sensor_claim_lease: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// The defaults of [`Config::embedded`], each overridden by its environment variable when
    /// set. A value that does not parse is an error naming the variable, not a silent default.
    pub fn from_env(
        data_dir: impl Into<PathBuf>,
        database_url: Option<&str>,
    ) -> anyhow::Result<Config> {
        Config::from_vars(data_dir, database_url, |k| std::env::var(k).ok())
    }

    /// [`Config::from_env`] over any source of variables (tests pass a map).
    pub fn from_vars(
        data_dir: impl Into<PathBuf>,
        database_url: Option<&str>,
        var: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let mut c = Config::embedded(data_dir);
        c.database = Database::from_url(database_url, &c.data_dir)?;
        fn get<T: std::str::FromStr>(
            var: &impl Fn(&str) -> Option<String>,
            name: &str,
            into: &mut T,
        ) -> anyhow::Result<()>
        where
            T::Err: std::fmt::Display,
        {
            if let Some(v) = var(name).filter(|v| !v.trim().is_empty()) {
                *into = v
                    .trim()
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{name}={v:?} is not valid: {e}"))?;
            }
            Ok(())
        }
        let mut cache_mb = c.doc_cache_bytes / (1024 * 1024);
        let mut password_mb = c.password_memory / (1024 * 1024);
        let mut access_s = c.access_ttl.as_secs();
        let mut refresh_s = c.refresh_ttl.as_secs();
        get(&var, "FIELDSYNC_MAX_FRAME_BYTES", &mut c.max_frame_bytes)?;
        get(&var, "FIELDSYNC_DOC_CACHE_MB", &mut cache_mb)?;
        get(&var, "FIELDSYNC_PG_POOL_SIZE", &mut c.pg_pool_size)?;
        get(&var, "FIELDSYNC_PASSWORD_MEMORY_MB", &mut password_mb)?;
        get(
            &var,
            "FIELDSYNC_MAX_MESSAGES_PER_SECOND",
            &mut c.max_messages_per_second,
        )?;
        get(
            &var,
            "FIELDSYNC_MAX_BYTES_PER_SECOND",
            &mut c.max_bytes_per_second,
        )?;
        get(
            &var,
            "FIELDSYNC_MAX_DOC_MESSAGES_PER_SECOND",
            &mut c.max_doc_messages_per_second,
        )?;
        get(&var, "FIELDSYNC_ACCESS_TTL_SECONDS", &mut access_s)?;
        get(&var, "FIELDSYNC_REFRESH_TTL_SECONDS", &mut refresh_s)?;
        get(&var, "FIELDSYNC_COMPACT_EVERY", &mut c.compact_every)?;
        let mut settle_ms = c.doc_settle_after.as_millis() as u64;
        get(&var, "FIELDSYNC_DOC_SETTLE_MS", &mut settle_ms)?;
        c.doc_settle_after = Duration::from_millis(settle_ms);
        get(&var, "FIELDSYNC_PROJECTION", &mut c.projection)?;
        get(&var, "FIELDSYNC_PROJECTION_BATCH", &mut c.projection_batch)?;
        let mut projection_ms = c.projection_interval.as_millis() as u64;
        get(&var, "FIELDSYNC_PROJECTION_INTERVAL_MS", &mut projection_ms)?;
        c.projection_interval = Duration::from_millis(projection_ms.max(10));
        let mut coalesce_ms = c.projection_coalesce.as_millis() as u64;
        get(&var, "FIELDSYNC_PROJECTION_COALESCE_MS", &mut coalesce_ms)?;
        c.projection_coalesce = Duration::from_millis(coalesce_ms);
        c.projection_batch = c.projection_batch.max(1);
        let mut presence_ms = c.presence_interval.as_millis() as u64;
        get(&var, "FIELDSYNC_PRESENCE_INTERVAL_MS", &mut presence_ms)?;
        get(
            &var,
            "FIELDSYNC_MAX_BOARD_STREAMS",
            &mut c.max_board_streams,
        )?;
        c.presence_interval = Duration::from_millis(presence_ms.max(100));
        let mut pm_ms = c.pm_interval.as_millis() as u64;
        get(&var, "FIELDSYNC_PM_INTERVAL_MS", &mut pm_ms)?;
        c.pm_interval = Duration::from_millis(pm_ms.max(10));
        let mut lease_ms = c.pm_claim_lease.as_millis() as u64;
        get(&var, "FIELDSYNC_PM_CLAIM_LEASE_MS", &mut lease_ms)?;
        c.pm_claim_lease = Duration::from_millis(lease_ms);
        get(&var, "FIELDSYNC_PM_HORIZON_DAYS", &mut c.pm_horizon_days)?;
        if c.pm_horizon_days > 366 {
            anyhow::bail!(
                "FIELDSYNC_PM_HORIZON_DAYS={} is over 366",
                c.pm_horizon_days
            );
        }
        get(&var, "FIELDSYNC_PM_START_TIME", &mut c.pm_start_time)?;
        let mut sla_ms = c.sla_interval.as_millis() as u64;
        get(&var, "FIELDSYNC_SLA_INTERVAL_MS", &mut sla_ms)?;
        c.sla_interval = Duration::from_millis(sla_ms.max(10));
        get(&var, "FIELDSYNC_SLA_APPROACHING", &mut c.sla_approaching)?;
        if !(c.sla_approaching > 0.0 && c.sla_approaching <= 1.0) {
            anyhow::bail!(
                "FIELDSYNC_SLA_APPROACHING={} is not a fraction above 0 and at most 1",
                c.sla_approaching
            );
        }
        if let Some(url) = var("FIELDSYNC_SLA_WEBHOOK_URL").filter(|v| !v.trim().is_empty()) {
            c.sla_webhook_url = Some(
                WebhookUrl::parse(url.trim())
                    .map_err(|e| anyhow::anyhow!("FIELDSYNC_SLA_WEBHOOK_URL: {e}"))?,
            );
        }
        let mut timeout_ms = c.sla_webhook_timeout.as_millis() as u64;
        get(&var, "FIELDSYNC_SLA_WEBHOOK_TIMEOUT_MS", &mut timeout_ms)?;
        c.sla_webhook_timeout = Duration::from_millis(timeout_ms.max(10));
        let mut retry_ms = c.sla_retry_base.as_millis() as u64;
        get(&var, "FIELDSYNC_SLA_RETRY_MS", &mut retry_ms)?;
        c.sla_retry_base = Duration::from_millis(retry_ms.max(10));
        let mut retry_max_ms = c.sla_retry_max.as_millis() as u64;
        get(&var, "FIELDSYNC_SLA_RETRY_MAX_MS", &mut retry_max_ms)?;
        c.sla_retry_max = Duration::from_millis(retry_max_ms).max(c.sla_retry_base);
        if let Some(url) = var("FIELDSYNC_MQTT_URL").map(|v| v.trim().to_string()) {
            c.mqtt = match url.as_str() {
                "off" | "false" | "none" => None,
                "" => c.mqtt.take(),
                _ => Some(MqttConfig {
                    url,
                    ..MqttConfig::default()
                }),
            };
        }
        if let Some(m) = &mut c.mqtt {
            get(&var, "FIELDSYNC_MQTT_GROUP", &mut m.group)?;
            get(&var, "FIELDSYNC_MQTT_QOS", &mut m.qos)?;
            if m.qos > 1 {
                anyhow::bail!("FIELDSYNC_MQTT_QOS={} is not 0 or 1", m.qos);
            }
            m.host_port()?;
        }
        get(
            &var,
            "FIELDSYNC_READINGS_RETENTION_DAYS",
            &mut c.readings_retention_days,
        )?;
        c.readings_retention_days = c.readings_retention_days.max(1);
        get(&var, "FIELDSYNC_READINGS_BATCH", &mut c.readings_batch)?;
        c.readings_batch = c.readings_batch.clamp(1, 50_000);
        let mut sweep_ms = c.sensor_sweep_interval.as_millis() as u64;
        get(&var, "FIELDSYNC_SENSOR_SWEEP_MS", &mut sweep_ms)?;
        c.sensor_sweep_interval = Duration::from_millis(sweep_ms.max(10));
        let mut sensor_lease_ms = c.sensor_claim_lease.as_millis() as u64;
        get(
            &var,
            "FIELDSYNC_SENSOR_CLAIM_LEASE_MS",
            &mut sensor_lease_ms,
        )?;
        c.sensor_claim_lease = Duration::from_millis(sensor_lease_ms);
        get(
            &var,
            "FIELDSYNC_MAX_CHANGE_BYTES",
            &mut c.limits.max_change_bytes,
        )?;
        get(
            &var,
            "FIELDSYNC_MAX_STRING_BYTES",
            &mut c.limits.max_string_bytes,
        )?;
        get(
            &var,
            "FIELDSYNC_MAX_OPS_PER_CHANGE",
            &mut c.limits.max_ops_per_change,
        )?;
        get(&var, "FIELDSYNC_MAX_DOC_BYTES", &mut c.limits.max_doc_bytes)?;
        c.doc_cache_bytes = cache_mb * 1024 * 1024;
        c.password_memory = password_mb * 1024 * 1024;
        c.access_ttl = Duration::from_secs(access_s);
        c.refresh_ttl = Duration::from_secs(refresh_s);
        let mut upload_mb = c.uploads.max_bytes / (1000 * 1000);
        get(&var, "FIELDSYNC_MAX_UPLOAD_MB", &mut upload_mb)?;
        c.uploads.max_bytes = upload_mb * 1000 * 1000;
        get(
            &var,
            "FIELDSYNC_THUMBNAIL_WORKERS",
            &mut c.uploads.thumbnail_workers,
        )?;
        c.s3 = s3_from_vars(&var)?;
        Ok(c)
    }
}

/// `FIELDSYNC_S3_*`: all of them, or none (the local store).
fn s3_from_vars(var: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<S3Config>> {
    const NAMES: [&str; 5] = [
        "FIELDSYNC_S3_ENDPOINT",
        "FIELDSYNC_S3_BUCKET",
        "FIELDSYNC_S3_REGION",
        "FIELDSYNC_S3_ACCESS_KEY_ID",
        "FIELDSYNC_S3_SECRET_ACCESS_KEY",
    ];
    let values: Vec<Option<String>> = NAMES
        .iter()
        .map(|n| {
            var(n)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        })
        .collect();
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let missing: Vec<&str> = NAMES
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "the S3 blob store needs every FIELDSYNC_S3_* variable: {} missing",
            missing.join(", ")
        );
    }
    let mut v = values.into_iter().map(Option::unwrap_or_default);
    let mut next = || v.next().unwrap_or_default();
    Ok(Some(S3Config {
        endpoint: next(),
        bucket: next(),
        region: next(),
        access_key_id: next(),
        secret_access_key: next(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_defaults_and_bad_values_are_named() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = Config::from_vars("d", None, vars(&[])).unwrap();
        assert_eq!(c.max_frame_bytes, Config::embedded("d").max_frame_bytes);
        let c = Config::from_vars(
            "d",
            Some("postgres://u@h/db"),
            vars(&[
                ("FIELDSYNC_DOC_CACHE_MB", "64"),
                ("FIELDSYNC_MAX_STRING_BYTES", "10"),
                ("FIELDSYNC_DOC_SETTLE_MS", "250"),
            ]),
        )
        .unwrap();
        assert_eq!(c.doc_cache_bytes, 64 * 1024 * 1024);
        assert_eq!(c.doc_settle_after, Duration::from_millis(250));
        assert!(
            Config::embedded("d").doc_settle_after.is_zero(),
            "off unless set"
        );
        assert_eq!(c.limits.max_string_bytes, 10);
        assert!(matches!(c.database, Database::Postgres(_)));
        let e = Config::from_vars("d", None, vars(&[("FIELDSYNC_COMPACT_EVERY", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("FIELDSYNC_COMPACT_EVERY"), "{e}");
        let c = Config::from_vars(
            "d",
            None,
            vars(&[
                (
                    "FIELDSYNC_SLA_WEBHOOK_URL",
                    "https://hooks.example/sla?token=s3cret",
                ),
                ("FIELDSYNC_SLA_INTERVAL_MS", "250"),
            ]),
        )
        .unwrap();
        assert_eq!(c.sla_interval, Duration::from_millis(250));
        let shown = format!("{:?}", c.sla_webhook_url.unwrap());
        assert!(
            !shown.contains("s3cret") && shown.contains("hooks.example"),
            "{shown}"
        );
        for (name, value) in [
            ("FIELDSYNC_SLA_WEBHOOK_URL", "ftp://x/y"),
            ("FIELDSYNC_SLA_APPROACHING", "1.5"),
        ] {
            let e = Config::from_vars("d", None, |k: &str| (k == name).then(|| value.into()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(name), "{e}");
        }
    }
}
