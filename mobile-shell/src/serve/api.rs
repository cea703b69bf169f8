//! The local API of the app (`mobile-shell/ui/README.md` is its contract): JSON over HTTP on the
//! device, answered from the replica. Every write returns after its change is committed, so
//! what the page was told is saved survives the app being killed; no write needs the server
//! but sign-in. Events tell the page when to read again: any commit to the replica (this API's,
//! the sync loop's, another process's) moves SQLite's `data_version`, watched by a thread of
//! its own ([`watch_replica`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use client_core::{JobFilter, JobView, Options, Replica};
use schemas::JobStatus;
use schemas::checklist::ItemValue;
use schemas::parts::NewPartLine;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Link;
use super::errors::ApiError;

/// The largest photo the page may hand over (a phone camera's JPEG is 3–12 MB).
const MAX_PHOTO: usize = 64 * 1024 * 1024;

type Answer<T = Json<Value>> = Result<T, ApiError>;

/// A JSON request body; one that does not parse is a `400 bad-request` like any other error.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
struct Body<T>(T);

#[derive(Clone)]
pub struct App {
    replica: Arc<Mutex<Replica>>,
    dir: PathBuf,
    link: Arc<Link>,
    /// (replica version, state): moves whenever either does.
    watch: tokio::sync::watch::Receiver<(u64, Value)>,
}

impl App {
    pub fn new(
        replica: Replica,
        dir: PathBuf,
        options: Options,
        link: Arc<Link>,
    ) -> anyhow::Result<App> {
        let (tx, rx) = tokio::sync::watch::channel((0, Value::Null));
        let watcher = Replica::open_with(&dir, options)?;
        let l = link.clone();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || watch_replica(watcher, &l, &tx))?;
        Ok(App {
            replica: Arc::new(Mutex::new(replica)),
            dir,
            link,
            watch: rx,
        })
    }

    /// Run `f` on the replica, on a blocking thread (a write may wait for the sync loop's).
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Replica) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let replica = self.replica.clone();
        tokio::task::spawn_blocking(move || {
            let mut r = replica
                .lock()
                .map_err(|_| ApiError::internal("replica lock"))?;
            f(&mut r)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
    }
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/api/state", get(state))
        .route("/api/login", post(login))
        .route("/api/jobs", get(jobs))
        .route("/api/jobs/{id}", get(job))
        .route("/api/jobs/{id}/status", post(set_status))
        .route("/api/jobs/{id}/notes", put(set_notes))
        .route("/api/jobs/{id}/time", post(time))
        .route("/api/jobs/{id}/checklist/{item}", put(check))
        .route("/api/catalog", get(catalog))
        .route("/api/jobs/{id}/parts", post(add_part))
        .route(
            "/api/jobs/{id}/parts/{line}",
            put(set_part).delete(remove_part),
        )
        .route(
            "/api/jobs/{id}/photos",
            post(add_photo).layer(DefaultBodyLimit::max(MAX_PHOTO)),
        )
        .route("/api/blobs/{sha256}", get(blob))
        .route("/api/jobs/{id}/summary", get(summary))
        .route(
            "/api/jobs/{id}/signoff",
            post(sign_off).layer(DefaultBodyLimit::max(8 * 1024 * 1024)),
        )
        .route("/api/notices/{id}/dismiss", post(dismiss))
        .route("/api/events", get(events))
        .route("/api/{*rest}", axum::routing::any(no_such_endpoint))
        .fallback(super::assets::file)
        .with_state(app)
}

async fn no_such_endpoint() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
}

fn job_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no job `{raw}` on this device"),
        )
    })
}

// ---- state and events ---------------------------------------------------------------------------

/// What the always-visible bar shows: signed in, online, changes and uploads waiting, last sync,
/// and notices to read.
fn state_of(r: &mut Replica, link: &Link) -> Result<Value, ApiError> {
    let server = r.meta("server")?;
    let waiting = r.uploads_waiting()?;
    let pending = waiting
        .iter()
        .filter(|u| u.state == client_core::uploads::UploadState::Pending)
        .count();
    let refused = waiting.len() - pending;
    let current = link
        .current_upload()
        .map(|(sha256, sent, size)| json!({"sha256": sha256, "sent": sent, "size": size}));
    Ok(json!({
        "signed_in": server.is_some(),
        "server": server,
        "user": r.user(),
        "online": link.online(),
        "problem": link.problem(),
        "pending_changes": r.unacked()?.len(),
        "uploads": {"waiting": pending, "refused": refused, "current": current},
        "last_sync_at": r.meta("last_sync_at")?,
        "notices": r.notices()?,
    }))
}

/// Every 100 ms: the replica's `data_version` (moved by any other connection's commit: this
/// API's, the sync loop's, the CLI's) and the state; what moved is published.
fn watch_replica(mut r: Replica, link: &Link, tx: &tokio::sync::watch::Sender<(u64, Value)>) {
    let mut version = 0u64;
    let mut last = None;
    loop {
        let seen = r.data_version().ok();
        let state = state_of(&mut r, link).unwrap_or(Value::Null);
        let moved = seen != last;
        if moved {
            version += 1;
            last = seen;
        }
        // `send_replace`: the value is kept even while no page listens (the app holds a
        // receiver, so there is always one).
        if moved || tx.borrow().1 != state {
            tx.send_replace((version, state));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn state(State(app): State<App>) -> Answer {
    let link = app.link.clone();
    Ok(Json(app.with(move |r| state_of(r, &link)).await?))
}

/// `changed` when the replica moved, `state` when the bar's state did; the current state first.
async fn events(State(app): State<App>) -> impl IntoResponse {
    let rx = app.watch.clone();
    let first = rx.borrow().clone();
    let stream = futures_util::stream::unfold(
        (rx, first, true),
        |(mut rx, mut seen, initial)| async move {
            if initial {
                let ev = Event::default().event("state").data(seen.1.to_string());
                return Some((Ok::<_, std::convert::Infallible>(ev), (rx, seen, false)));
            }
            loop {
                rx.changed().await.ok()?;
                let now = rx.borrow_and_update().clone();
                let ev = if now.0 != seen.0 {
                    Event::default().event("changed").data("{}")
                } else if now.1 != seen.1 {
                    Event::default().event("state").data(now.1.to_string())
                } else {
                    continue;
                };
                // A change of both sends `changed` now and `state` on the next turn.
                if now.0 != seen.0 && now.1 != seen.1 {
                    seen.0 = now.0;
                    rx.mark_changed();
                } else {
                    seen = now;
                }
                return Some((Ok(ev), (rx, seen, false)));
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(Deserialize)]
struct Login {
    server: String,
    user: String,
    password: String,
}

async fn login(State(app): State<App>, Body(body): Body<Login>) -> Answer {
    let server = body.server.trim().to_string();
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(ApiError::bad(
            "the server address starts with https:// (or http://)",
        ));
    }
    if body.user.trim().is_empty() || body.password.is_empty() {
        return Err(ApiError::bad("user name and password are required"));
    }
    let link = app.link.clone();
    let answer = app
        .with(move |r| {
            client_core::sync::account::login(
                r,
                &server,
                body.user.trim(),
                &body.password,
                "Fieldsync app",
            )?;
            state_of(r, &link)
        })
        .await
        .map_err(|mut e| {
            if e.code == "sign-in-refused" {
                e.message = "wrong user name or password".into();
            }
            e
        })?;
    app.link.signed_in();
    Ok(Json(answer))
}

async fn dismiss(State(app): State<App>, Path(id): Path<i64>) -> Answer {
    let found = app.with(move |r| Ok(r.dismiss_notice(id)?)).await?;
    if !found {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such notice",
        ));
    }
    Ok(Json(json!({"ok": true})))
}

// ---- jobs -------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ListQuery {
    filter: Option<String>,
}

async fn jobs(State(app): State<App>, Query(q): Query<ListQuery>) -> Answer {
    let filter = match q.filter.as_deref().unwrap_or("all") {
        "all" => JobFilter::All,
        "today" => JobFilter::Today,
        "upcoming" => JobFilter::Upcoming,
        other => {
            return Err(ApiError::bad(format!(
                "unknown filter `{other}` (today, upcoming, all)"
            )));
        }
    };
    let list = app.with(move |r| Ok(r.list_jobs(filter)?)).await?;
    Ok(Json(
        serde_json::to_value(list).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// The job as its screen shows it: the view, plus what the flow allows next, the changes not
/// yet on the server, whether it is locked, the technician's running timer, and where each of
/// its blobs' uploads stands.
fn detail(r: &mut Replica, id: Uuid) -> Result<Value, ApiError> {
    let view = r.job(id)?;
    let mut v = serde_json::to_value(&view).map_err(|e| ApiError::internal(e.to_string()))?;
    let next: Vec<&str> = JobStatus::ALL
        .into_iter()
        .filter(|s| view.status.can_transition_to(*s))
        .map(JobStatus::as_str)
        .collect();
    let me = r.user().to_string();
    let running = view
        .time_entries
        .iter()
        .any(|t| t.by == me && t.stopped_at.is_none());
    let mut uploads = BTreeMap::new();
    let shas = view
        .photos
        .iter()
        .map(|p| p.sha256.clone())
        .chain(view.signoff.iter().map(|s| s.signature_sha256.clone()));
    for sha in shas {
        if let Some(u) = r.upload(&sha)? {
            uploads.insert(
                sha,
                json!({"state": u.state, "sent": u.sent, "size": u.size, "reason": u.error}),
            );
        }
    }
    v["next_statuses"] = json!(next);
    v["unsynced"] = json!(r.unsynced_changes(id)?);
    v["locked"] = json!(view.signoff.is_some() || view.status.is_terminal());
    v["running_timer"] = json!(running);
    v["uploads"] = json!(uploads);
    Ok(v)
}

async fn job(State(app): State<App>, Path(id): Path<String>) -> Answer {
    let id = job_id(&id)?;
    Ok(Json(app.with(move |r| detail(r, id)).await?))
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
}

async fn set_status(
    State(app): State<App>,
    Path(id): Path<String>,
    Body(body): Body<StatusBody>,
) -> Answer {
    let id = job_id(&id)?;
    let to = JobStatus::parse(&body.status)
        .ok_or_else(|| ApiError::from(client_core::Error::UnknownStatus(body.status.clone())))?;
    Ok(Json(
        app.with(move |r| {
            r.set_status(id, to)?;
            detail(r, id)
        })
        .await?,
    ))
}

#[derive(Deserialize)]
struct NotesBody {
    notes: String,
}

async fn set_notes(
    State(app): State<App>,
    Path(id): Path<String>,
    Body(body): Body<NotesBody>,
) -> Answer {
    let id = job_id(&id)?;
    app.with(move |r| Ok(r.set_notes(id, &body.notes)?)).await?;
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize)]
struct TimeBody {
    action: String,
}

async fn time(
    State(app): State<App>,
    Path(id): Path<String>,
    Body(body): Body<TimeBody>,
) -> Answer {
    let id = job_id(&id)?;
    Ok(Json(
        app.with(move |r| {
            match body.action.as_str() {
                "start" => {
                    r.start_time(id)?;
                }
                "stop" => r.stop_time(id)?,
                other => {
                    return Err(ApiError::bad(format!(
                        "unknown time action `{other}` (start, stop)"
                    )));
                }
            }
            detail(r, id)
        })
        .await?,
    ))
}

#[derive(Deserialize)]
struct CheckBody {
    value: Value,
}

async fn check(
    State(app): State<App>,
    Path((id, item)): Path<(String, String)>,
    Body(body): Body<CheckBody>,
) -> Answer {
    let id = job_id(&id)?;
    // The page sends what was typed; a JSON number is taken as typed too.
    let raw = match body.value {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => return Err(ApiError::bad("`value` is a string (or a number)")),
    };
    Ok(Json(
        app.with(move |r| {
            r.set_check_str(id, &item, &raw)?;
            detail(r, id)
        })
        .await?,
    ))
}

// ---- parts ------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct CatalogQuery {
    q: Option<String>,
}

async fn catalog(State(app): State<App>, Query(q): Query<CatalogQuery>) -> Answer {
    let query = q.q.unwrap_or_default();
    let found = app.with(move |r| Ok(r.search_catalog(&query, 50)?)).await?;
    Ok(Json(json!(found)))
}

#[derive(Deserialize)]
struct PartBody {
    sku: String,
    #[serde(default)]
    description: String,
    qty: f64,
    #[serde(default)]
    unit: Option<String>,
}

async fn add_part(
    State(app): State<App>,
    Path(id): Path<String>,
    Body(body): Body<PartBody>,
) -> Answer {
    let id = job_id(&id)?;
    Ok(Json(
        app.with(move |r| {
            // A part picked from the catalog is named and measured as the catalog says.
            let known = r.catalog_entry(body.sku.trim())?;
            let description = match (body.description.trim(), &known) {
                ("", Some(k)) => k.name.clone(),
                (d, _) => d.to_string(),
            };
            let unit = body.unit.or_else(|| known.and_then(|k| k.unit));
            r.add_part(
                id,
                NewPartLine {
                    sku: body.sku.trim().to_string(),
                    description,
                    qty: body.qty,
                    unit,
                    source: None,
                },
            )?;
            detail(r, id)
        })
        .await?,
    ))
}

#[derive(Deserialize)]
struct QtyBody {
    qty: f64,
}

async fn set_part(
    State(app): State<App>,
    Path((id, line)): Path<(String, String)>,
    Body(body): Body<QtyBody>,
) -> Answer {
    let id = job_id(&id)?;
    Ok(Json(
        app.with(move |r| {
            r.set_part_qty(id, &line, body.qty)?;
            detail(r, id)
        })
        .await?,
    ))
}

async fn remove_part(State(app): State<App>, Path((id, line)): Path<(String, String)>) -> Answer {
    let id = job_id(&id)?;
    Ok(Json(
        app.with(move |r| {
            r.remove_part(id, &line)?;
            detail(r, id)
        })
        .await?,
    ))
}

// ---- photos and blobs -------------------------------------------------------------------------

#[derive(Deserialize)]
struct PhotoQuery {
    item: Option<String>,
    caption: Option<String>,
}

/// A file of the page's bytes in the data dir, removed when dropped: client-core takes images
/// from a path (as the camera of a native shell hands them over).
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn stage(dir: &std::path::Path, bytes: &[u8], ext: &str) -> Result<Staged, ApiError> {
    let path = dir.join(format!(".incoming-{}.{ext}", Uuid::now_v7().simple()));
    std::fs::write(&path, bytes)
        .map_err(|e| ApiError::internal(format!("cannot keep the image: {e}")))?;
    Ok(Staged(path))
}

async fn add_photo(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<PhotoQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let id = job_id(&id)?;
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not-an-image",
            "the photo is empty",
        ));
    }
    let ext = match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        Some("image/png") => "png",
        Some("image/webp") => "webp",
        _ => "jpg",
    };
    let dir = app.dir.clone();
    Ok(Json(
        app.with(move |r| {
            let staged = stage(&dir, &body, ext)?;
            let item = q.item.filter(|i| !i.is_empty());
            r.attach_photo(
                id,
                &staged.0,
                item.as_deref(),
                q.caption.as_deref().unwrap_or(""),
            )
            .map_err(|e| match e {
                // The staged file's name means nothing to the technician.
                client_core::Error::NotAnImage { reason, .. } => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "not-an-image",
                    format!("this file is not a usable image ({reason})"),
                ),
                e => e.into(),
            })?;
            detail(r, id)
        })
        .await?,
    ))
}

async fn blob(State(app): State<App>, Path(sha256): Path<String>) -> Result<Response, ApiError> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such blob",
        ));
    }
    let sha = sha256.to_ascii_lowercase();
    let bytes = app
        .with(move |r| Ok(std::fs::read(client_core::blobs::blob_path(r.data_dir(), &sha)).ok()))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "this blob is no longer on the device",
            )
        })?;
    let mime = match image::guess_format(&bytes) {
        Ok(image::ImageFormat::Png) => "image/png",
        Ok(image::ImageFormat::WebP) => "image/webp",
        _ => "image/jpeg",
    };
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            // Content-addressed: the bytes under a hash never change.
            (
                header::CACHE_CONTROL,
                "private, max-age=31536000, immutable",
            ),
        ],
        bytes,
    )
        .into_response())
}

// ---- sign-off ---------------------------------------------------------------------------------

/// The labels of `view`'s required items not done (what the sign-off would refuse).
fn missing(view: &JobView) -> Vec<String> {
    view.checklist
        .items
        .iter()
        .filter(|i| i.template.required && i.value.is_none())
        .map(|i| i.template.label.clone())
        .collect()
}

fn shown(value: &Option<ItemValue>) -> Value {
    match value {
        Some(ItemValue::Number(n)) => json!(n),
        Some(ItemValue::Text(t)) => json!(t),
        None => Value::Null,
    }
}

/// What the customer is shown before signing: the checklist's results, the parts (priced from
/// the catalog the device holds, when it prices them), and what is still missing.
async fn summary(State(app): State<App>, Path(id): Path<String>) -> Answer {
    let id = job_id(&id)?;
    Ok(Json(
        app.with(move |r| {
            let view = r.job(id)?;
            let checklist: Vec<Value> = view
                .checklist
                .items
                .iter()
                .map(|i| {
                    json!({"id": i.template.id, "label": i.template.label, "kind": i.template.kind,
                           "value": shown(&i.value), "unit": i.template.unit})
                })
                .collect();
            let mut total = 0i64;
            let mut priced = false;
            let mut parts = Vec::new();
            for line in &view.parts {
                let price = r.catalog_entry(&line.sku)?.map(|c| c.unit_price_cents);
                let line_total = price.map(|p| (p as f64 * line.qty).round() as i64);
                if let Some(t) = line_total {
                    total += t;
                    priced = true;
                }
                parts.push(json!({"sku": line.sku, "description": line.description,
                    "qty": line.qty, "unit": line.unit,
                    "unit_price_cents": price, "total_cents": line_total}));
            }
            let missing = missing(&view);
            Ok(json!({
                "job": detail(r, id)?,
                "checklist": checklist,
                "parts": parts,
                "show_prices": priced,
                "total_cents": total,
                "missing": missing,
            }))
        })
        .await?,
    ))
}

#[derive(Deserialize)]
struct SignBody {
    name: String,
    signature_png: String,
}

async fn sign_off(
    State(app): State<App>,
    Path(id): Path<String>,
    Body(body): Body<SignBody>,
) -> Answer {
    let id = job_id(&id)?;
    let b64 = body
        .signature_png
        .trim()
        .trim_start_matches("data:image/png;base64,");
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| ApiError::bad("the signature is not base64"))?;
    if png.len() < 67 {
        return Err(ApiError::bad(
            "the signature is empty: ask the customer to sign",
        ));
    }
    let dir = app.dir.clone();
    Ok(Json(
        app.with(move |r| {
            let staged = stage(&dir, &png, "png")?;
            match r.sign_off(id, &body.name, &staged.0) {
                Ok(_) => detail(r, id),
                Err(client_core::Error::ChecklistIncomplete(_)) => {
                    let view = r.job(id)?;
                    let labels = missing(&view);
                    let mut e = ApiError::new(
                        StatusCode::CONFLICT,
                        "checklist-incomplete",
                        format!("required items are not done: {}", labels.join(", ")),
                    );
                    e.missing = Some(labels);
                    Err(e)
                }
                Err(client_core::Error::NotAnImage { reason, .. }) => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "not-an-image",
                    format!("the signature is not a usable PNG ({reason})"),
                )),
                Err(e) => Err(e.into()),
            }
        })
        .await?,
    ))
}
