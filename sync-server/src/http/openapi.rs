//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/v1/openapi.json`. It is
//! generated (utoipa) from the handlers' own annotations and the request and reply types in
//! `schemas::api`, so it changes with them; a test checks that every route is in it.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Fieldsync API",
        description = "The dispatcher's, back office's and devices' HTTP API. Every refusal is \
                       `{\"error\": \"<stable code>\", \"message\": \"…\"}`. Sync itself runs over \
                       the WebSocket at `/sync` (see ARCHITECTURE.md)."
    ),
    paths(
        super::account::login,
        super::account::refresh,
        super::account::revoke_device,
        super::jobs::create_job,
        super::jobs::get_job,
        super::jobs::patch_job,
        super::jobs::assign,
        super::jobs::unassign,
        super::jobs::resolve_flag,
        super::records::list_jobs,
        super::records::technicians,
        super::records::stock,
        super::records::my_stock,
        super::records::put_technician,
        super::records::customers,
        super::records::create_customer,
        super::records::create_site,
        super::records::update_customer,
        super::records::update_site,
        super::assets::list,
        super::assets::create,
        super::assets::update,
        super::records::catalog,
        super::records::put_catalog_item,
        super::records::locations,
        super::records::create_location,
        super::records::receive_stock,
        super::templates::list,
        super::templates::get_one,
        super::templates::create,
        super::templates::put_version,
        super::pm::list_templates,
        super::pm::create_template,
        super::pm::list_schedules,
        super::pm::create_schedule,
        super::pm::get_schedule,
        super::sla::list_policies,
        super::sla::put_policy,
        super::sla::list_jobs,
        super::sla::get_job,
        super::sensors::list,
        super::sensors::create,
        super::sensors::get_one,
        super::sensors::readings,
        super::sensors::post_readings,
        super::board::events,
        super::kpis::kpis,
        super::planning::get_settings,
        super::planning::put_settings,
        super::planning::job_types,
        super::planning::put_job_type,
        super::planning::put_home,
        super::planning::put_site_location,
        super::planning::add_time_block,
        super::planning::time_blocks,
        super::planning::delete_time_block,
        super::planning::suggestions,
        super::planning::plan_routes,
        super::planning::apply_routes,
        super::photos::get_photo,
        super::photos::get_original,
        super::photos::get_thumbnail,
        super::review::jobs,
        super::review::review_photo,
        super::review::signature,
        super::uploads::create,
        super::uploads::head,
        super::uploads::append,
        super::uploads::terminate,
    ),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

/// The bearer token every authenticated path names as `bearer`.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "an access token from POST /api/v1/auth/login or /auth/refresh",
                    ))
                    .build(),
            ),
        );
    }
}

/// `GET /api/v1/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
