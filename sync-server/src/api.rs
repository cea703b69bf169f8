//! The HTTP API (JSON): sign-in, and enough of the dispatcher's API to drive and observe sync.
//! A dispatcher's edit is an Automerge change made by the server on the job's documents, stored
//! in the same change log as a device's and fanned out the same way.

use std::sync::Arc;

use automerge::AutoCommit;
use automerge::transaction::CommitOptions;
use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use schemas::api::{
    AssignRequest, CreateJob, ErrorBody, LoginReply, LoginRequest, LoginUser, PatchJob,
    RefreshReply, RefreshRequest, RevokeReply, Validate,
};
use schemas::job::NewJob;
use schemas::view::JobView;
use schemas::{DocKind, JobStatus, checklist, job, parts, photo, template};
use serde_json::json;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{self, AuthError, Principal};
use crate::store::{DocMeta, Role, StoreError, TokenKind, User};

/// Errors of the HTTP API (and of the sync endpoint before the upgrade): a status, a stable
/// code and a short message in the body `{"error", "message"}`. Internal causes are logged with
/// their whole chain of sources, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(AuthError),
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("this needs the {0} role")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// A request axum could not take apart (body, path): its status, a stable code, the reason.
    #[error("{2}")]
    Rejected(StatusCode, &'static str, String),
    #[error("too many failed sign-ins: try again in {} s", retry_after_secs(*.0))]
    Throttled(std::time::Duration),
    /// The store failed in a way that may pass: 503 with `Retry-After`.
    #[error("the store is unavailable: try again shortly")]
    Unavailable(#[source] StoreError),
    /// Anything else that is not the caller's fault: 500.
    #[error("internal error")]
    Internal(#[source] crate::store::BoxError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            e if e.is_retryable() => ApiError::Unavailable(e),
            e => ApiError::Internal(Box::new(e)),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(e) => e.into(),
            e => ApiError::Unauthorized(e),
        }
    }
}

impl From<schemas::DocError> for ApiError {
    fn from(e: schemas::DocError) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

impl ApiError {
    /// Something failed that is nobody's input: 500, the cause logged.
    pub fn internal(cause: impl Into<crate::store::BoxError>) -> ApiError {
        ApiError::Internal(cause.into())
    }
}

/// `error: cause: cause's cause...`, for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized(_) | ApiError::BadCredentials => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Rejected(status, code, _) => (*status, *code),
            ApiError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "too-many-attempts"),
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %error_chain(e), "store unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable")
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %error_chain(e.as_ref()), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let body = Json(ErrorBody {
            error: code.to_owned(),
            message: self.to_string(),
        });
        let retry_after = match &self {
            ApiError::Throttled(wait) => Some(retry_after_secs(*wait)),
            ApiError::Unavailable(_) => Some(1),
            _ => None,
        };
        match retry_after {
            Some(secs) => (
                status,
                [(axum::http::header::RETRY_AFTER, secs.to_string())],
                body,
            )
                .into_response(),
            None => (status, body).into_response(),
        }
    }
}

/// Whole seconds to wait, rounded up so that a client waiting that long is let in.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// A JSON body of type `T`, checked by its [`Validate`] rules. Every way it can be wrong is
/// answered with the JSON error body: not JSON (400 `bad-json`), not declared as JSON (415
/// `unsupported-media-type`), the wrong shape, a missing or unknown field (422 `invalid-body`),
/// too large (413 `body-too-large`), text that breaks the rules (400 `bad-request`).
pub struct Body<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        use axum::extract::rejection::JsonRejection;
        match Json::<T>::from_request(req, state).await {
            Ok(Json(body)) => {
                body.validate()
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                Ok(Body(body))
            }
            Err(rejection) => {
                let status = rejection.status();
                let code = match &rejection {
                    JsonRejection::JsonDataError(_) => "invalid-body",
                    JsonRejection::JsonSyntaxError(_) => "bad-json",
                    JsonRejection::MissingJsonContentType(_) => "unsupported-media-type",
                    _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
                    _ => "bad-request",
                };
                Err(ApiError::Rejected(status, code, rejection.body_text()))
            }
        }
    }
}

/// Path parameters; a malformed one (a job id that is not a UUID) is a 400 with the JSON body.
pub struct PathParam<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParam<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(PathParam(v)),
            Err(rejection) => Err(ApiError::Rejected(
                StatusCode::BAD_REQUEST,
                "bad-request",
                rejection.body_text(),
            )),
        }
    }
}

/// Unknown routes.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::Rejected(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no such endpoint: {}", uri.path()),
    )
}

/// Known routes called with a method they do not have.
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::Rejected(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("this endpoint does not take {method}"),
    )
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The caller, from `Authorization: Bearer <access token>`.
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let principal = auth::authenticate(
            app.store.as_ref(),
            auth::bearer(header),
            TokenKind::Access,
            Utc::now(),
        )
        .await?;
        Ok(Caller(principal))
    }
}

impl Caller {
    fn require(&self, roles: &[Role], name: &'static str) -> Result<&User, ApiError> {
        if roles.contains(&self.0.user.role) {
            Ok(&self.0.user)
        } else {
            Err(ApiError::Forbidden(name))
        }
    }

    fn dispatcher(&self) -> Result<&User, ApiError> {
        self.require(&[Role::Dispatcher, Role::Admin], "dispatcher")
    }
}

/// Readiness: 200 `{"status": "ready"}` when the store answers, else 503 with the error body.
/// The store's error goes to the log only: it may name hosts, users or databases.
pub async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    match app.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "readiness check: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(ErrorBody {
                    error: "store-unavailable".into(),
                    message: "the store does not answer".into(),
                }),
            )
                .into_response()
        }
    }
}

pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    let body = app.metrics.render();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The client's address, when the server was started with connection info (`serve` does).
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The name a login without `device_name` registers its session under.
pub const SESSION_DEVICE_NAME: &str = "session";

/// Sign in. Every sign-in registers a device (named `device_name`, or a session), so that every
/// token issued can be revoked. Repeated failures for one name or from one address are refused
/// for growing intervals (see [`crate::throttle`]); unknown names get the same answers, at the
/// same cost, as known ones.
pub async fn login(
    State(app): State<Arc<AppState>>,
    ClientAddr(addr): ClientAddr,
    Body(body): Body<LoginRequest>,
) -> ApiResult<LoginReply> {
    if let Err(wait) = app
        .throttle
        .check(&body.name, addr, std::time::Instant::now())
    {
        return Err(ApiError::Throttled(wait));
    }
    let user = app.store.user_by_name(&body.name).await?;
    // Verify against a dummy hash for unknown users too, so timing does not reveal names.
    let hash = user
        .as_ref()
        .map_or(DUMMY_HASH.as_str(), |u| u.password_hash.as_str())
        .to_string();
    let password = body.password.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &password))
        .await
        .map_err(ApiError::internal)?;
    let user = match (user, ok) {
        (Some(u), true) => u,
        _ => {
            app.throttle
                .failed(&body.name, addr, std::time::Instant::now());
            return Err(ApiError::BadCredentials);
        }
    };
    app.throttle.succeeded(&body.name);
    let device_name = body
        .device_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(SESSION_DEVICE_NAME);
    let device = Some(app.store.register_device(user.id, device_name).await?.id);
    let issued = auth::issue(
        app.store.as_ref(),
        &user,
        device,
        Utc::now(),
        ttl(app.config.access_ttl),
        ttl(app.config.refresh_ttl),
    )
    .await?;
    Ok(Json(LoginReply {
        user: LoginUser {
            id: user.id,
            name: user.name,
            role: user.role,
            org_id: user.org_id,
        },
        device_id: device,
        tokens: issued,
    }))
}

static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| auth::hash_password("not a password"));

fn ttl(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::minutes(15))
}

/// Trade a refresh token for new tokens; the old refresh token stops working (rotation).
pub async fn refresh(
    State(app): State<Arc<AppState>>,
    Body(body): Body<RefreshRequest>,
) -> ApiResult<RefreshReply> {
    let principal = auth::authenticate(
        app.store.as_ref(),
        Some(&body.refresh_token),
        TokenKind::Refresh,
        Utc::now(),
    )
    .await?;
    // Single use: of concurrent refreshes with one token only the one that deletes it goes on.
    if !app.store.delete_token(&principal.token_hash).await? {
        return Err(ApiError::Unauthorized(AuthError::Invalid));
    }
    let issued = auth::issue(
        app.store.as_ref(),
        &principal.user,
        principal.device,
        Utc::now(),
        ttl(app.config.access_ttl),
        ttl(app.config.refresh_ttl),
    )
    .await?;
    Ok(Json(RefreshReply {
        device_id: principal.device,
        tokens: issued,
    }))
}

pub async fn revoke_device(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<RevokeReply> {
    let admin = caller.require(&[Role::Admin], "admin")?;
    let device = app
        .store
        .device(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("device {id}")))?;
    let owner = app
        .store
        .user(device.user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("device {id}")))?;
    if owner.org_id != admin.org_id {
        return Err(ApiError::NotFound(format!("device {id}")));
    }
    app.store.revoke_device(id).await?;
    // Connections on this node close now; other nodes notice within their token recheck.
    app.hub.device_revoked(id);
    Ok(Json(RevokeReply { revoked: id }))
}

pub async fn create_job(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<CreateJob>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let me = caller.dispatcher()?.clone();
    if body.title.trim().is_empty() {
        return Err(ApiError::BadRequest("a job needs a title".into()));
    }
    let tpl_name = body
        .template
        .as_deref()
        .unwrap_or(template::DEFAULT_TEMPLATE);
    let tpl = template::find(tpl_name)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown checklist template `{tpl_name}`")))?;
    let mut assignees = Vec::new();
    for name in &body.assignees {
        match app.store.user_by_name(name).await? {
            Some(u) if u.org_id == me.org_id && u.role == Role::Technician => assignees.push(u),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "`{name}` is not a technician of this organisation"
                )));
            }
        }
    }
    let new = NewJob {
        title: body.title.trim().to_string(),
        description: body.description,
        customer: body.customer.unwrap_or_default(),
        site: body.site.unwrap_or_default(),
        asset: None,
        assignees: assignees.iter().map(|u| u.name.clone()).collect(),
        schedule: body.schedule,
        priority: body.priority.unwrap_or_default(),
        follow_up_of: None,
    };
    let job_id = create_job_documents(&app, &me, &new, &tpl).await?;
    for u in &assignees {
        app.store.assign(job_id, u.id).await?;
    }
    let users: Vec<Uuid> = assignees.iter().map(|u| u.id).collect();
    app.hub.sets_changed(&users, me.org_id);
    app.publish_sets_changed(&users, me.org_id).await;
    Ok((
        StatusCode::CREATED,
        Json(job_view(&app, me.org_id, job_id).await?),
    ))
}

/// Make a job's three documents on the server and write them to the log.
pub async fn create_job_documents(
    app: &AppState,
    by: &User,
    new: &NewJob,
    tpl: &template::Template,
) -> Result<Uuid, ApiError> {
    let actor = automerge::ActorId::random();
    let now = Utc::now();
    let bundle = job::new_bundle(&actor, new, tpl, &by.name, now)?;
    let job_id = bundle.job_id;
    for (id, kind, mut doc) in bundle.into_docs() {
        doc.commit_with(
            CommitOptions::default()
                .with_message("create job")
                .with_time(now.timestamp()),
        );
        let meta = DocMeta {
            id,
            org_id: by.org_id,
            kind: kind.as_str().to_string(),
            job_id,
        };
        app.store.create_document(&meta).await?;
        let mut sd = app.docs.lock(&meta).await?;
        let before = sd.doc.get_heads();
        sd.doc.merge(&mut doc).map_err(ApiError::internal)?;
        if let Err(e) = app.docs.persist(&mut sd, &before).await {
            app.docs.discard(sd);
            return Err(e.into());
        }
    }
    Ok(job_id)
}

/// A job's registry entry, if it is a job of `org`.
async fn job_meta(app: &AppState, org: Uuid, id: Uuid) -> Result<DocMeta, ApiError> {
    match app.store.document(id).await? {
        Some(m) if m.org_id == org && m.kind == DocKind::Job.as_str() => Ok(m),
        _ => Err(ApiError::NotFound(format!("job {id}"))),
    }
}

/// Make a server change on a document: edit, commit, append to the log, fan out.
pub async fn edit_doc(
    app: &AppState,
    meta: &DocMeta,
    message: &str,
    f: impl FnOnce(&mut AutoCommit) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let mut sd = app.docs.lock(meta).await?;
    let before = sd.doc.get_heads();
    if let Err(e) = f(&mut sd.doc) {
        sd.doc.rollback();
        return Err(e);
    }
    sd.doc.commit_with(
        CommitOptions::default()
            .with_message(message.to_string())
            .with_time(Utc::now().timestamp()),
    );
    match app.docs.persist(&mut sd, &before).await {
        Ok(Some(seq)) => {
            drop(sd);
            app.hub.doc_changed(meta.id, None);
            app.publish(meta.id, seq).await;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            app.docs.discard(sd);
            Err(e.into())
        }
    }
}

async fn read<T>(
    app: &AppState,
    meta: &DocMeta,
    f: impl FnOnce(&AutoCommit) -> Result<T, schemas::DocError>,
) -> Result<T, ApiError> {
    let sd = app.docs.lock(meta).await?;
    Ok(f(&sd.doc)?)
}

/// The server's merged state of a job's documents, in the device's `job show --json` shape.
pub async fn job_view(app: &AppState, org: Uuid, id: Uuid) -> Result<JobView, ApiError> {
    let meta = job_meta(app, org, id).await?;
    let job = read(app, &meta, job::read).await?;
    let docs = app.store.job_documents(id).await?;
    let find = |kind: DocKind, want: Uuid| {
        docs.iter()
            .find(|d| d.kind == kind.as_str() && d.id == want)
            .cloned()
    };
    let cl_meta = find(DocKind::Checklist, job.checklist_id)
        .ok_or_else(|| ApiError::NotFound("the job's checklist".into()))?;
    let parts_meta = find(DocKind::Parts, job.parts_id)
        .ok_or_else(|| ApiError::NotFound("the job's parts".into()))?;
    let cl = read(app, &cl_meta, checklist::read).await?;
    let pl = read(app, &parts_meta, parts::read).await?;
    let mut photos = Vec::new();
    for m in docs.iter().filter(|d| d.kind == DocKind::Photo.as_str()) {
        // A photo document whose first changes have not arrived yet is skipped.
        if let Ok(p) = read(app, m, photo::read).await {
            photos.push(p);
        }
    }
    Ok(JobView::assemble(job, cl, pl, photos))
}

pub async fn get_job(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<JobView> {
    let me = caller.require(
        &[Role::Dispatcher, Role::Admin, Role::BackOffice],
        "dispatcher or back office",
    )?;
    Ok(Json(job_view(&app, me.org_id, id).await?))
}

pub async fn assign(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<AssignRequest>,
) -> ApiResult<JobView> {
    change_assignment(&app, &caller, id, &body.user, true).await
}

pub async fn unassign(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<AssignRequest>,
) -> ApiResult<JobView> {
    change_assignment(&app, &caller, id, &body.user, false).await
}

async fn change_assignment(
    app: &AppState,
    caller: &Caller,
    id: Uuid,
    name: &str,
    assign: bool,
) -> ApiResult<JobView> {
    let me = caller.dispatcher()?.clone();
    let meta = job_meta(app, me.org_id, id).await?;
    let user = match app.store.user_by_name(name).await? {
        Some(u) if u.org_id == me.org_id && u.role == Role::Technician => u,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "`{name}` is not a technician of this organisation"
            )));
        }
    };
    // Everything that can be refused is checked, and the document edit made (not yet committed),
    // before anything changes: a request that fails changes neither the assignment nor the job.
    // The job document stays locked throughout, so assignments of one job run one at a time.
    let mut sd = app.docs.lock(&meta).await?;
    let current = job::read(&sd.doc)?;
    let mut names = current.assignees.clone();
    names.retain(|n| n != &user.name);
    if assign {
        names.push(user.name.clone());
    }
    let edit = names != current.assignees;
    let before = sd.doc.get_heads();
    if edit {
        let edited = (|| -> Result<(), schemas::DocError> {
            job::set_assignees(&mut sd.doc, &names)?;
            // A pending job becomes assigned with its first technician.
            if assign && current.status == JobStatus::Pending {
                job::set_status(
                    &mut sd.doc,
                    JobStatus::Pending,
                    JobStatus::Assigned,
                    &me.name,
                    Utc::now(),
                )?;
            }
            Ok(())
        })();
        if let Err(e) = edited {
            sd.doc.rollback();
            return Err(e.into());
        }
    }
    let stored = if assign {
        app.store.assign(id, user.id).await
    } else {
        app.store.unassign(id, user.id).await
    };
    let store_changed = match stored {
        Ok(changed) => changed,
        Err(e) => {
            sd.doc.rollback();
            return Err(e.into());
        }
    };
    if edit {
        sd.doc.commit_with(
            CommitOptions::default()
                .with_message(if assign { "assign" } else { "unassign" })
                .with_time(Utc::now().timestamp()),
        );
        match app.docs.persist(&mut sd, &before).await {
            Ok(Some(seq)) => {
                drop(sd);
                app.hub.doc_changed(meta.id, None);
                app.publish(meta.id, seq).await;
            }
            Ok(None) => {}
            Err(e) => {
                app.docs.discard(sd);
                // Put the assignment back as it was: the job document still says so.
                if store_changed {
                    let undone = if assign {
                        app.store.unassign(id, user.id).await
                    } else {
                        app.store.assign(id, user.id).await
                    };
                    if let Err(undo) = undone {
                        tracing::error!(job = %id, user = %user.id, error = %undo,
                            "could not undo an assignment change whose job edit failed");
                    }
                }
                return Err(e.into());
            }
        }
    } else {
        drop(sd);
    }
    app.hub.sets_changed(&[user.id], me.org_id);
    app.publish_sets_changed(&[user.id], me.org_id).await;
    Ok(Json(job_view(app, me.org_id, id).await?))
}

/// A dispatcher's edit. Any status may be set (dispatchers override the technician's workflow,
/// e.g. to cancel or reopen), and it is recorded in the status history like any other.
pub async fn patch_job(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<PatchJob>,
) -> ApiResult<JobView> {
    let me = caller.dispatcher()?.clone();
    let meta = job_meta(&app, me.org_id, id).await?;
    if body.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(ApiError::BadRequest("the title cannot be empty".into()));
    }
    let current = read(&app, &meta, job::read).await?;
    edit_doc(&app, &meta, "dispatcher edit", |d| {
        if let Some(t) = &body.title {
            job::set_title(d, t.trim())?;
        }
        if let Some(p) = body.priority {
            job::set_priority(d, p)?;
        }
        if let Some(s) = &body.schedule {
            job::set_schedule(d, s.as_ref())?;
        }
        if let Some(n) = &body.notes {
            job::set_notes(d, n)?;
        }
        if let Some(s) = body.status.filter(|s| *s != current.status) {
            job::set_status(d, current.status, s, &me.name, Utc::now())?;
        }
        Ok(())
    })
    .await?;
    Ok(Json(job_view(&app, me.org_id, id).await?))
}
