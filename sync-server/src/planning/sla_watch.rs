//! The SLA watcher: a task on every node that, every `FIELDSYNC_SLA_INTERVAL_MS`, reads the
//! open jobs of the orgs with SLA policies, asks [`super::sla::due`] which breaches (or
//! approaching ones) are due, and records each **once**; and a sender task that delivers the
//! recorded events to `FIELDSYNC_SLA_WEBHOOK_URL`.
//!
//! - **Once per (job, kind, level)**: an event is *claimed* by inserting its row, keyed by (job,
//!   kind, level) (`ON CONFLICT DO NOTHING`); only the node whose insert went in counts it in
//!   `/metrics` and hands it to the sender. Another node, or a restarted one, finds the row.
//! - **Delivered until taken, never blocking the watch**: the sender is its own task, woken by
//!   the watcher and by its own tick. It leases due rows (moving `next_attempt_at` on by the
//!   request timeout and a margin, so two nodes never send one event at once), POSTs each as
//!   JSON ([`schemas::api::SlaWebhook`]), and marks it delivered on a 2xx, or schedules the next
//!   attempt with exponential backoff (`FIELDSYNC_SLA_RETRY_MS` doubled per attempt, at most
//!   `FIELDSYNC_SLA_RETRY_MAX_MS`, with jitter). A node killed after the receiver took an event
//!   but before it marked it delivered sends it again after the lease: delivery is at least
//!   once, and the body's `id` (stable per event) lets a receiver drop the repeat.
//! - Without a webhook URL the events are still recorded, counted and shown; they stay
//!   undelivered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use schemas::api::{JobSla, SlaEventRecord, SlaWebhook};
use schemas::{JobStatus, Priority};
use uuid::Uuid;

use super::sla::{self, Hours, Kind, Level, Policy, Timeline};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sla::{SlaDelivery, SlaEvent, SlaJob, SlaJobs, SlaPolicy};

/// What one watcher run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// Jobs looked at.
    pub jobs: usize,
    /// Events this node claimed (recorded).
    pub recorded: usize,
}

/// How far back a run also looks at jobs that were completed or cancelled (so a clock that
/// stopped late between two runs is still recorded as breached).
fn lookback(app: &AppState) -> chrono::Duration {
    let interval = chrono::Duration::from_std(app.config.sla_interval).unwrap_or_default();
    (interval * 3).max(chrono::Duration::hours(1))
}

/// The clocks' view of a stored policy; `None` (logged) for one whose hours do not parse.
pub fn policy(p: &SlaPolicy) -> Option<Policy> {
    match Hours::from_api(p.business_hours.as_ref()) {
        Ok(hours) => Some(Policy {
            id: p.id,
            job_type: p.job_type.clone(),
            priority: p.priority.clone(),
            acknowledge_within: chrono::Duration::seconds(i64::from(p.acknowledge_within_seconds)),
            resolve_within: chrono::Duration::seconds(i64::from(p.resolve_within_seconds)),
            hours,
        }),
        Err(e) => {
            tracing::warn!(policy = %p.id, error = %e, "an SLA policy's hours do not parse");
            None
        }
    }
}

/// The clocks' view of a job.
pub fn timeline(j: &SlaJob) -> Timeline {
    Timeline {
        created_at: j.created_at,
        history: j
            .history
            .iter()
            .filter_map(|(s, at)| JobStatus::parse(s).map(|s| (s, *at)))
            .collect(),
    }
}

/// Stored policies by org, as the clocks read them.
#[derive(Clone, Debug, Default)]
pub struct Policies(HashMap<Uuid, Vec<Policy>>);

impl Policies {
    pub fn new(stored: &[SlaPolicy]) -> Policies {
        let mut by_org: HashMap<Uuid, Vec<Policy>> = HashMap::new();
        for p in stored {
            if let Some(q) = policy(p) {
                by_org.entry(p.org_id).or_default().push(q);
            }
        }
        Policies(by_org)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The policy that applies to a job, among its org's.
    pub fn of(&self, j: &SlaJob) -> Option<&Policy> {
        let priority = Priority::parse(&j.priority).unwrap_or_default();
        sla::policy_for(self.0.get(&j.org_id)?, j.template.as_deref(), priority)
    }
}

/// A job's SLA as the API shows it.
pub fn job_sla(p: &Policy, j: &SlaJob, now: DateTime<Utc>, approaching: f64) -> JobSla {
    let (acknowledge, resolve) = sla::clocks(p, &timeline(j), now, approaching);
    let breached = [&acknowledge, &resolve]
        .iter()
        .any(|c| c.state == schemas::api::SlaState::Breached);
    JobSla {
        job_id: j.id,
        number: schemas::api::job_number(j.number),
        title: j.title.clone(),
        status: j.status.clone(),
        priority: j.priority.clone(),
        job_type: j.template.clone(),
        policy_id: p.id,
        acknowledge,
        resolve,
        breached,
        events: j
            .events
            .iter()
            .map(|e| SlaEventRecord {
                kind: e.kind.clone(),
                level: e.level.clone(),
                deadline: e.deadline,
                at: e.at,
                delivered_at: e.delivered_at,
            })
            .collect(),
    }
}

/// Run the watcher (and the webhook sender beside it) until the task is dropped.
pub async fn run(app: Arc<AppState>) {
    let wake = Arc::new(tokio::sync::Notify::new());
    let sender = tokio::spawn(send_loop(app.clone(), wake.clone()));
    let _sender = AbortOnDrop(sender);
    let mut ticker = tokio::time::interval(app.config.sla_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match run_once(&app, Utc::now()).await {
            Ok(run) => {
                if run.recorded > 0 {
                    tracing::info!(?run, "SLA events recorded");
                    wake.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = %e, "the SLA watcher's run failed"),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One run at `now`: record the events due.
pub async fn run_once(app: &AppState, now: DateTime<Utc>) -> Result<Run, ApiError> {
    let store = app.store.sla();
    let policies = Policies::new(&store.sla_policies(None).await?);
    let mut run = Run::default();
    if policies.is_empty() {
        return Ok(run);
    }
    let jobs = store
        .sla_jobs(SlaJobs::Open(None, now - lookback(app)))
        .await?;
    run.jobs = jobs.len();
    for j in &jobs {
        let Some(p) = policies.of(j) else {
            continue;
        };
        let recorded: Vec<(Kind, Level)> = j
            .events
            .iter()
            .filter_map(|e| Some((Kind::parse(&e.kind)?, Level::parse(&e.level)?)))
            .collect();
        for d in sla::due(p, &timeline(j), now, app.config.sla_approaching, &recorded) {
            let e = SlaEvent {
                org_id: j.org_id,
                job_id: j.id,
                kind: d.kind.as_str().into(),
                level: d.level.as_str().into(),
                deadline: d.deadline,
                policy_id: p.id,
                at: now,
                delivered_at: None,
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
            };
            if store.claim_sla_event(&e).await? {
                run.recorded += 1;
                match d.level {
                    Level::Breached => app.metrics.sla_breached(d.kind.as_str()),
                    Level::Approaching => app.metrics.sla_approaching(d.kind.as_str()),
                }
                tracing::info!(job = %j.id, number = j.number, kind = d.kind.as_str(),
                               level = d.level.as_str(), deadline = %d.deadline, "SLA event");
            }
        }
    }
    Ok(run)
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<bytes::Bytes>>;

fn client() -> Option<HttpsClient> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(b) => b,
        Err(e) => {
            // Plain http:// still works; https:// fails its handshake (and is retried).
            tracing::warn!(error = %e, "no TLS roots for the SLA webhook; https:// will fail");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .ok()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let https = builder.https_or_http().enable_http1().build();
    Some(Client::builder(TokioExecutor::new()).build(https))
}

/// Deliver recorded events to the webhook until the task is dropped.
async fn send_loop(app: Arc<AppState>, wake: Arc<tokio::sync::Notify>) {
    let Some(url) = app.config.sla_webhook_url.clone() else {
        return;
    };
    let Some(client) = client() else {
        return;
    };
    loop {
        match send_due(&app, &client, &url, Utc::now()).await {
            // A full batch: more may be waiting.
            Ok(n) if n >= BATCH as usize => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the SLA webhook sender could not read its events")
            }
        }
        let _ = tokio::time::timeout(
            app.config.sla_retry_base.max(Duration::from_millis(50)),
            wake.notified(),
        )
        .await;
    }
}

const BATCH: u32 = 50;

/// Send the events due at `now`; how many were taken.
async fn send_due(
    app: &AppState,
    client: &HttpsClient,
    url: &str,
    now: DateTime<Utc>,
) -> Result<usize, ApiError> {
    let store = app.store.sla();
    let timeout = app.config.sla_webhook_timeout;
    let lease = chrono::Duration::from_std(timeout * 2 + Duration::from_secs(1))
        .unwrap_or(chrono::Duration::minutes(1));
    let taken = store.take_sla_deliveries(now, now + lease, BATCH).await?;
    let n = taken.len();
    for d in taken {
        let result = post(client, url, &d, timeout).await;
        let e = &d.event;
        match result {
            Ok(()) => {
                store
                    .sla_delivered(e.job_id, &e.kind, &e.level, Utc::now())
                    .await?;
                app.metrics.sla_webhook_deliveries.inc();
            }
            Err(why) => {
                app.metrics.sla_webhook_failures.inc();
                let next = Utc::now() + backoff(app, e.attempts);
                tracing::warn!(job = %e.job_id, kind = %e.kind, level = %e.level,
                               attempts = e.attempts + 1, error = %why, retry_at = %next,
                               "the SLA webhook did not take an event");
                store
                    .sla_delivery_failed(e.job_id, &e.kind, &e.level, &why, next)
                    .await?;
            }
        }
    }
    Ok(n)
}

/// The wait before attempt `attempts + 1`: the base doubled per attempt, capped, ±20 % jitter.
fn backoff(app: &AppState, attempts: u32) -> chrono::Duration {
    let base = app.config.sla_retry_base.as_millis() as f64;
    let max = app.config.sla_retry_max.as_millis() as f64;
    let ms = (base * 2f64.powi(attempts.min(30) as i32)).min(max);
    let jitter = rand::rng().random_range(0.8..1.2);
    chrono::Duration::milliseconds((ms * jitter) as i64)
}

/// The webhook's body for an event.
pub fn webhook_body(d: &SlaDelivery) -> SlaWebhook {
    let e = &d.event;
    SlaWebhook {
        event: format!("sla.{}", e.level),
        id: format!("{}:{}:{}", e.job_id, e.kind, e.level),
        org_id: e.org_id,
        job_id: e.job_id,
        number: schemas::api::job_number(d.number),
        title: d.title.clone(),
        kind: e.kind.clone(),
        level: e.level.clone(),
        deadline: e.deadline,
        at: e.at,
    }
}

async fn post(
    client: &HttpsClient,
    url: &str,
    d: &SlaDelivery,
    timeout: Duration,
) -> Result<(), String> {
    let body = serde_json::to_vec(&webhook_body(d)).map_err(|e| e.to_string())?;
    let req = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "fieldsync-sla/1")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| format!("bad request: {e}"))?;
    let res = tokio::time::timeout(timeout, async {
        let res = client.request(req).await.map_err(|e| format!("{e}"))?;
        let status = res.status();
        // Read (and drop) the body so the connection can be reused.
        let _ = res.into_body().collect().await;
        Ok::<_, String>(status)
    })
    .await
    .map_err(|_| format!("no answer within {timeout:?}"))??;
    if res.is_success() {
        Ok(())
    } else {
        Err(format!("answered {res}"))
    }
}
