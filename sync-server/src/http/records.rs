//! The dispatcher's lists, read from the relational rows: jobs (filtered, paged), technicians,
//! stock. Every query is scoped to the caller's org (and on Postgres runs under its row-level
//! security).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, NaiveDate, Utc};
use schemas::JobStatus;
use schemas::api::{
    CatalogItem, Counted, CustomerRecord, JobList, JobSummary, NamedRef, NewCustomer, NewSite,
    NewStockLocation, SiteRecord, StockLevel, StockLocationRecord, StockReceipt, TechnicianProfile,
    TechnicianSummary, job_number,
};
use uuid::Uuid;

use super::auth::Caller;
use super::extract::{Body, PathParam};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::records::{JobFilter, JobListRow};

/// The most jobs one page holds, and the default.
const MAX_PAGE: i64 = 500;
const DEFAULT_PAGE: i64 = 100;

/// Query parameters, each checked by name: an unknown parameter is refused rather than ignored
/// (a misspelt filter would otherwise silently list everything).
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<HashMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Query(map)) => Ok(Params(map)),
            Err(e) => Err(ApiError::Rejected(
                StatusCode::BAD_REQUEST,
                "bad-query",
                e.body_text(),
            )),
        }
    }
}

impl Params {
    pub(crate) fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        let mut unknown: Vec<&str> = self
            .0
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        unknown.sort_unstable();
        match unknown.first() {
            None => Ok(()),
            Some(_) => Err(bad_param(
                &unknown.join(", "),
                &format!("unknown query parameter (known: {})", known.join(", ")),
            )),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn parse<T>(
        &self,
        name: &str,
        what: &str,
        f: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| bad_param(name, what)),
        }
    }
}

pub(crate) fn bad_param(name: &str, what: &str) -> ApiError {
    ApiError::Rejected(
        StatusCode::BAD_REQUEST,
        "bad-query",
        format!("{name}: {what}"),
    )
}

/// A time bound: RFC 3339, or a date (midnight UTC).
fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        })
}

/// A cursor is the last row's (sort time, id): `<microseconds>_<uuid>`.
fn cursor_of(row: &JobListRow) -> String {
    format!("{}_{}", row.sort_at.timestamp_micros(), row.id)
}

fn parse_cursor(v: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = v.split_once('_')?;
    Some((
        DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        Uuid::parse_str(id).ok()?,
    ))
}

/// `GET /api/v1/jobs?status=&technician=&customer=&from=&to=&q=&flagged=&cursor=&limit=`
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(("status" = Option<String>, Query, description = "a job status"), ("technician" = Option<String>, Query, description = "a technician's user id or name"), ("customer" = Option<Uuid>, Query, description = "one customer's jobs"), ("from" = Option<String>, Query, description = "RFC 3339 time or date: scheduled from"), ("to" = Option<String>, Query, description = "RFC 3339 time or date: scheduled before"), ("q" = Option<String>, Query, description = "text in the title, customer, site or number"), ("flagged" = Option<bool>, Query), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"), ("limit" = Option<i64>, Query, description = "1 to 500, default 100")), responses((status = 200, body = schemas::api::JobList), (status = 400, description = "bad-query: names the parameter", body = schemas::api::ErrorBody), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn list_jobs(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Json<JobList>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    params.only(&[
        "status",
        "technician",
        "customer",
        "from",
        "to",
        "q",
        "flagged",
        "cursor",
        "limit",
    ])?;
    let status = params.parse("status", "not a job status", |v| {
        JobStatus::ALL
            .iter()
            .find(|s| s.as_str() == v)
            .map(|s| s.as_str().to_string())
    })?;
    // A technician by user id or by user name, of the caller's org.
    let technician = match params.get("technician") {
        None => None,
        Some(v) => {
            let user = match Uuid::parse_str(v) {
                Ok(id) => app.store.user(id).await?,
                Err(_) => app.store.user_by_name(v).await?,
            };
            match user.filter(|u| u.org_id == me.org_id) {
                Some(u) => Some(u.id),
                None => return Err(bad_param("technician", "no such user in your org")),
            }
        }
    };
    let customer = params.parse("customer", "not a customer id", |v| v.parse::<Uuid>().ok())?;
    if let Some(c) = customer
        && !app.store.records().customer_exists(me.org_id, c).await?
    {
        return Err(bad_param("customer", "no such customer in your org"));
    }
    let from = params.parse("from", "not an RFC 3339 time or a date", parse_time)?;
    let to = params.parse("to", "not an RFC 3339 time or a date", parse_time)?;
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        return Err(bad_param("to", "is before from"));
    }
    let q = params.parse(
        "q",
        "longer than 200 characters or holds control characters",
        |v| (v.chars().count() <= 200 && !v.chars().any(char::is_control)).then(|| v.to_string()),
    )?;
    let flagged = params.parse("flagged", "not true or false", |v| v.parse::<bool>().ok())?;
    let after = params.parse("cursor", "not a cursor this list gave", parse_cursor)?;
    let limit = params
        .parse(
            "limit",
            &format!("not a number from 1 to {MAX_PAGE}"),
            |v| v.parse::<i64>().ok().filter(|n| (1..=MAX_PAGE).contains(n)),
        )?
        .unwrap_or(DEFAULT_PAGE);
    let filter = JobFilter {
        status,
        technician,
        customer,
        from,
        to,
        q,
        flagged,
        after,
        // One more than the page, to know whether another follows.
        limit: limit + 1,
    };
    let mut rows = app.store.records().list_jobs(me.org_id, &filter).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(cursor_of)
    } else {
        None
    };
    Ok(Json(JobList {
        items: rows.into_iter().map(summary).collect(),
        next_cursor,
    }))
}

fn summary(r: JobListRow) -> JobSummary {
    JobSummary {
        id: r.id,
        number: job_number(r.number),
        title: r.title,
        status: r.status,
        priority: r.priority,
        scheduled_start: r.scheduled_start,
        scheduled_end: r.scheduled_end,
        customer: NamedRef {
            id: r.customer_id,
            name: r.customer_name,
        },
        site: NamedRef {
            id: r.site_id,
            name: r.site_name,
        },
        assignees: r.assignees,
        template: r.template,
        checklist: Counted {
            done: r.items_done,
            total: r.items_total,
        },
        parts: r.parts,
        photos: r.photos,
        signed_off: r.signed_off,
        flagged: r.flagged,
    }
}

/// `GET /api/v1/technicians`
#[utoipa::path(get, path = "/api/v1/technicians", tag = "dispatch", responses((status = 200, body = Vec<schemas::api::TechnicianSummary>), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn technicians(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<TechnicianSummary>>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    params.only(&[])?;
    let rows = app.store.records().technicians(me.org_id).await?;
    let presence = crate::presence::of_org(&app, me.org_id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|t| TechnicianSummary {
                online: presence.get(&t.user_id).is_some_and(|p| p.0),
                last_sync_at: presence.get(&t.user_id).and_then(|p| p.1),
                id: t.user_id,
                name: t.name,
                display_name: t.display_name,
                phone: t.phone,
                skills: t.skills,
                van: t.van,
            })
            .collect(),
    ))
}

/// `GET /api/v1/stock/mine`: what the caller's own van holds, for a technician searching parts
/// on the device (any role; an empty list for someone without a van).
#[utoipa::path(get, path = "/api/v1/stock/mine", tag = "dispatch", responses((status = 200, body = Vec<schemas::api::StockLevel>), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn my_stock(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<StockLevel>>, ApiError> {
    let me = caller.actor();
    let records = app.store.records();
    let van = records
        .locations(me.org_id)
        .await?
        .into_iter()
        .find(|l| l.kind == "van" && l.technician_id == Some(me.user_id));
    let Some(van) = van else {
        return Ok(Json(Vec::new()));
    };
    let rows = records.stock(me.org_id, Some(van.id)).await?;
    Ok(Json(rows.into_iter().map(stock_level).collect()))
}

/// `GET /api/v1/stock?location=ID`
#[utoipa::path(get, path = "/api/v1/stock", tag = "dispatch", params(("location" = Option<Uuid>, Query, description = "one stock location")), responses((status = 200, body = Vec<schemas::api::StockLevel>), (status = 400, body = schemas::api::ErrorBody), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn stock(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<StockLevel>>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    params.only(&["location"])?;
    let location = params.parse("location", "not a stock location id", |v| {
        Uuid::parse_str(v).ok()
    })?;
    let rows = app.store.records().stock(me.org_id, location).await?;
    Ok(Json(rows.into_iter().map(stock_level).collect()))
}

fn stock_level(s: crate::store::records::StockRow) -> StockLevel {
    StockLevel {
        location_id: s.location_id,
        location: s.location_code,
        sku: s.sku,
        on_hand: s.on_hand,
    }
}

// ---- the dispatcher's reference data -------------------------------------------------------------

fn customer_record(
    c: crate::store::records::Customer,
    sites: Vec<crate::store::records::Site>,
) -> CustomerRecord {
    CustomerRecord {
        id: c.id,
        name: c.name,
        phone: c.phone,
        email: c.email,
        sites: sites.into_iter().map(site_record).collect(),
    }
}

fn site_record(s: crate::store::records::Site) -> SiteRecord {
    SiteRecord {
        id: s.id,
        customer_id: s.customer_id,
        name: s.name,
        address: s.address,
        time_zone: s.time_zone,
    }
}

/// A name taken in the org: 409 naming the field.
fn taken(e: crate::store::StoreError, field: &str) -> ApiError {
    match e {
        crate::store::StoreError::Conflict(_) => {
            ApiError::Conflict(format!("`{field}` is already used in your org"))
        }
        e => e.into(),
    }
}

/// `GET /api/v1/customers`
#[utoipa::path(get, path = "/api/v1/customers", tag = "dispatch", responses((status = 200, body = Vec<CustomerRecord>), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn customers(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<CustomerRecord>>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    let all = app.store.records().customers(me.org_id).await?;
    Ok(Json(
        all.into_iter()
            .map(|(c, s)| customer_record(c, s))
            .collect(),
    ))
}

/// `POST /api/v1/customers`
#[utoipa::path(post, path = "/api/v1/customers", tag = "dispatch", request_body = NewCustomer, responses((status = 201, body = CustomerRecord), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 409, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn create_customer(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<NewCustomer>,
) -> Result<(StatusCode, Json<CustomerRecord>), ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let c = crate::store::records::Customer {
        id: Uuid::now_v7(),
        org_id: me.org_id,
        name: body.name.trim().to_string(),
        phone: body.phone,
        email: body.email,
        created_at: Utc::now(),
    };
    app.store
        .records()
        .create_customer(&c)
        .await
        .map_err(|e| taken(e, "name"))?;
    Ok((StatusCode::CREATED, Json(customer_record(c, vec![]))))
}

/// `POST /api/v1/customers/{id}/sites`
#[utoipa::path(post, path = "/api/v1/customers/{id}/sites", tag = "dispatch", params(("id" = Uuid, Path)), request_body = NewSite, responses((status = 201, body = SiteRecord), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody), (status = 409, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn create_site(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(customer): PathParam<Uuid>,
    Body(body): Body<NewSite>,
) -> Result<(StatusCode, Json<SiteRecord>), ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let s = crate::store::records::Site {
        id: Uuid::now_v7(),
        org_id: me.org_id,
        customer_id: customer,
        name: body.name.trim().to_string(),
        address: body.address,
        time_zone: body.time_zone.unwrap_or_else(|| "UTC".into()),
    };
    app.store
        .records()
        .create_site(&s)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound(_) => {
                ApiError::NotFound(format!("customer {customer}"))
            }
            e => taken(e, "name"),
        })?;
    Ok((StatusCode::CREATED, Json(site_record(s))))
}

/// `PUT /api/v1/customers/{id}`: the customer's name and contacts (its sites stay).
#[utoipa::path(put, path = "/api/v1/customers/{id}", tag = "dispatch", params(("id" = Uuid, Path)), request_body = NewCustomer, responses((status = 200, body = CustomerRecord), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody), (status = 409, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn update_customer(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<NewCustomer>,
) -> Result<Json<CustomerRecord>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let records = app.store.records();
    let c = crate::store::records::Customer {
        id,
        org_id: me.org_id,
        name: body.name.trim().to_string(),
        phone: body.phone,
        email: body.email,
        created_at: Utc::now(),
    };
    if !records
        .update_customer(&c)
        .await
        .map_err(|e| taken(e, "name"))?
    {
        return Err(ApiError::NotFound(format!("customer {id}")));
    }
    let (c, sites) = records
        .customers(me.org_id)
        .await?
        .into_iter()
        .find(|(c, _)| c.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("customer {id}")))?;
    Ok(Json(customer_record(c, sites)))
}

/// `PUT /api/v1/sites/{id}`: a site's name, address and time zone.
#[utoipa::path(put, path = "/api/v1/sites/{id}", tag = "dispatch", params(("id" = Uuid, Path)), request_body = NewSite, responses((status = 200, body = SiteRecord), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody), (status = 409, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn update_site(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<NewSite>,
) -> Result<Json<SiteRecord>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let mut s = crate::store::records::Site {
        id,
        org_id: me.org_id,
        customer_id: Uuid::nil(),
        name: body.name.trim().to_string(),
        address: body.address,
        time_zone: body.time_zone.unwrap_or_else(|| "UTC".into()),
    };
    s.customer_id = app
        .store
        .records()
        .update_site(&s)
        .await
        .map_err(|e| taken(e, "name"))?
        .ok_or_else(|| ApiError::NotFound(format!("site {id}")))?;
    Ok(Json(site_record(s)))
}

/// `GET /api/v1/catalog`: technicians too (they pick parts from it).
#[utoipa::path(get, path = "/api/v1/catalog", tag = "dispatch", responses((status = 200, body = Vec<CatalogItem>), (status = 401, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn catalog(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<CatalogItem>>, ApiError> {
    let me = caller.actor();
    let items = app.store.records().catalog(me.org_id).await?;
    Ok(Json(
        items
            .into_iter()
            .map(|i| CatalogItem {
                sku: i.sku,
                name: i.name,
                unit: i.unit,
                unit_price_cents: i.unit_price_cents,
                unit_cost_cents: i.unit_cost_cents,
            })
            .collect(),
    ))
}

/// `POST /api/v1/catalog`: adds the SKU, or updates it (prices apply to lines projected from
/// then on).
#[utoipa::path(post, path = "/api/v1/catalog", tag = "dispatch", request_body = CatalogItem, responses((status = 200, body = CatalogItem), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn put_catalog_item(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<CatalogItem>,
) -> Result<Json<CatalogItem>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    app.store
        .records()
        .put_catalog_item(&crate::store::records::CatalogItem {
            id: Uuid::now_v7(),
            org_id: me.org_id,
            sku: body.sku.trim().to_string(),
            name: body.name.trim().to_string(),
            unit: body.unit.clone(),
            unit_price_cents: body.unit_price_cents,
            unit_cost_cents: body.unit_cost_cents,
        })
        .await?;
    Ok(Json(body))
}

/// `GET /api/v1/stock/locations`
#[utoipa::path(get, path = "/api/v1/stock/locations", tag = "dispatch", responses((status = 200, body = Vec<StockLocationRecord>), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn locations(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<StockLocationRecord>>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    let all = app.store.records().locations(me.org_id).await?;
    Ok(Json(all.into_iter().map(location_record).collect()))
}

fn location_record(l: crate::store::records::StockLocation) -> StockLocationRecord {
    StockLocationRecord {
        id: l.id,
        code: l.code,
        name: l.name,
        kind: l.kind,
        technician_id: l.technician_id,
    }
}

/// `POST /api/v1/stock/locations`
#[utoipa::path(post, path = "/api/v1/stock/locations", tag = "dispatch", request_body = NewStockLocation, responses((status = 201, body = StockLocationRecord), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 409, description = "the code is taken, or the technician has a van already", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn create_location(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<NewStockLocation>,
) -> Result<(StatusCode, Json<StockLocationRecord>), ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let technician_id = match &body.technician {
        None => None,
        Some(name) => match app.store.user_by_name(name).await? {
            Some(u) if u.org_id == me.org_id && u.role == crate::store::Role::Technician => {
                Some(u.id)
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "`technician`: {name} is not a technician of this organisation"
                )));
            }
        },
    };
    let l = crate::store::records::StockLocation {
        id: Uuid::now_v7(),
        org_id: me.org_id,
        code: body.code.trim().to_string(),
        name: body.name.trim().to_string(),
        kind: body.kind,
        technician_id,
    };
    app.store
        .records()
        .create_location(&l)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => ApiError::Conflict(
                "`code` is already used in your org, or the technician has a van already".into(),
            ),
            e => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(location_record(l))))
}

/// `POST /api/v1/stock/receipts`
#[utoipa::path(post, path = "/api/v1/stock/receipts", tag = "dispatch", request_body = StockReceipt, responses((status = 201, body = Vec<StockLevel>), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn receive_stock(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<StockReceipt>,
) -> Result<(StatusCode, Json<Vec<StockLevel>>), ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let records = app.store.records();
    records
        .receive_stock(
            me.org_id,
            body.location_id,
            body.sku.trim(),
            body.qty,
            Utc::now(),
        )
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound(_) => {
                ApiError::NotFound(format!("stock location {}", body.location_id))
            }
            e => e.into(),
        })?;
    let rows = records.stock(me.org_id, Some(body.location_id)).await?;
    Ok((
        StatusCode::CREATED,
        Json(rows.into_iter().map(stock_level).collect()),
    ))
}

/// `PUT /api/v1/technicians/{id}`: the profile (display name, phone, skills).
#[utoipa::path(put, path = "/api/v1/technicians/{id}", tag = "dispatch", params(("id" = Uuid, Path)), request_body = TechnicianProfile, responses((status = 200, body = TechnicianProfile), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn put_technician(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<TechnicianProfile>,
) -> Result<Json<TechnicianProfile>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    match app.store.user(id).await? {
        Some(u) if u.org_id == me.org_id && u.role == crate::store::Role::Technician => {}
        _ => return Err(ApiError::NotFound(format!("technician {id}"))),
    }
    let mut skills: Vec<String> = body.skills.iter().map(|s| s.trim().to_string()).collect();
    skills.sort();
    skills.dedup();
    app.store
        .records()
        .put_technician(&crate::store::records::Technician {
            user_id: id,
            org_id: me.org_id,
            display_name: body.display_name.trim().to_string(),
            phone: body.phone.clone(),
            skills: skills.clone(),
        })
        .await?;
    Ok(Json(TechnicianProfile { skills, ..body }))
}
