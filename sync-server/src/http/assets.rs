//! `/api/v1/assets`: the equipment at customers' sites that jobs are about (a rooftop unit, a
//! vehicle with its VIN). Dispatchers write; the org's readers list.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use schemas::api::{AssetRecord, NewAsset};
use uuid::Uuid;

use super::auth::Caller;
use super::extract::{Body, PathParam};
use super::records::Params;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::records::Asset;

/// `GET /api/v1/assets?site=&customer=`
#[utoipa::path(get, path = "/api/v1/assets", tag = "dispatch", params(("site" = Option<Uuid>, Query, description = "one site's assets"), ("customer" = Option<Uuid>, Query, description = "the assets at one customer's sites")), responses((status = 200, body = Vec<AssetRecord>), (status = 400, description = "bad-query", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<AssetRecord>>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    params.only(&["site", "customer"])?;
    let site = params.parse("site", "not a site id", |v| v.parse().ok())?;
    let customer = params.parse("customer", "not a customer id", |v| v.parse().ok())?;
    let rows = app
        .store
        .records()
        .assets(me.org_id, site, customer)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(a, customer)| record(a, customer))
            .collect(),
    ))
}

/// `POST /api/v1/assets`
#[utoipa::path(post, path = "/api/v1/assets", tag = "dispatch", request_body = NewAsset, responses((status = 201, body = AssetRecord), (status = 400, description = "names the bad field (a site of another org too)", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<NewAsset>,
) -> Result<(StatusCode, Json<AssetRecord>), ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let a = asset(Uuid::now_v7(), me.org_id, body);
    app.store
        .records()
        .create_asset(&a)
        .await
        .map_err(|e| site_refused(e, a.site_id))?;
    Ok((StatusCode::CREATED, Json(read_back(&app, &a).await?)))
}

/// `PUT /api/v1/assets/{id}`: every field, the site too (equipment moves).
#[utoipa::path(put, path = "/api/v1/assets/{id}", tag = "dispatch", params(("id" = Uuid, Path)), request_body = NewAsset, responses((status = 200, body = AssetRecord), (status = 400, description = "names the bad field", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<NewAsset>,
) -> Result<Json<AssetRecord>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let a = asset(id, me.org_id, body);
    let found = app
        .store
        .records()
        .update_asset(&a)
        .await
        .map_err(|e| site_refused(e, a.site_id))?;
    if !found {
        return Err(ApiError::NotFound(format!("asset {id}")));
    }
    Ok(Json(read_back(&app, &a).await?))
}

fn asset(id: Uuid, org_id: Uuid, b: NewAsset) -> Asset {
    let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    Asset {
        id,
        org_id,
        site_id: b.site_id,
        name: b.name.trim().to_string(),
        make: text(b.make),
        model: text(b.model),
        serial: text(b.serial),
        vin: b.vin,
        install_date: b.install_date,
    }
}

/// A site that is not the caller's org's is a bad field, not a missing asset.
fn site_refused(e: StoreError, site: Uuid) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::BadRequest(format!(
            "`site_id`: {site} is not a site of this organisation"
        )),
        e => e.into(),
    }
}

async fn read_back(app: &AppState, a: &Asset) -> Result<AssetRecord, ApiError> {
    app.store
        .records()
        .assets(a.org_id, Some(a.site_id), None)
        .await?
        .into_iter()
        .find(|(x, _)| x.id == a.id)
        .map(|(x, customer)| record(x, customer))
        .ok_or_else(|| ApiError::NotFound(format!("asset {}", a.id)))
}

fn record(a: Asset, customer_id: Uuid) -> AssetRecord {
    AssetRecord {
        id: a.id,
        site_id: a.site_id,
        customer_id,
        name: a.name,
        make: a.make,
        model: a.model,
        serial: a.serial,
        vin: a.vin,
        install_date: a.install_date,
    }
}
