//! Demo data: an org with a dispatcher, three technicians and a dozen jobs, made once.

use chrono::{Duration, Timelike, Utc};
use schemas::job::NewJob;
use schemas::{Priority, template};

use crate::auth;
use crate::jobs::{Actor, create_job_documents};
use crate::state::AppState;
use crate::store::Role;

pub const ORG: &str = "demo";
/// Demo accounts share one password, printed at start; never use them outside a demo.
pub const PASSWORD: &str = "fieldsync-demo";
pub const DISPATCHER: &str = "dispatch";
pub const TECHNICIANS: [&str; 3] = ["ana", "ben", "chloe"];
/// The back office: reviews photos at `/review`.
pub const BACK_OFFICE: &str = "office";

/// Create the demo org, users and jobs unless they exist. Returns the sign-in lines to print.
pub async fn ensure(app: &AppState) -> anyhow::Result<Vec<String>> {
    let lines = vec![
        format!("dispatcher  {DISPATCHER} / {PASSWORD}"),
        format!("technicians {} / {PASSWORD}", TECHNICIANS.join(", ")),
        format!("admin       admin / {PASSWORD}"),
        format!("back office {BACK_OFFICE} / {PASSWORD}  (photo review at /review)"),
    ];
    if let Some(org) = app.store.org_by_name(ORG).await? {
        // Demo data made before the back office user existed gains it.
        if app.store.user_by_name(BACK_OFFICE).await?.is_none() {
            let hash = auth::hash_password(PASSWORD);
            app.store
                .create_user(org.id, BACK_OFFICE, Role::BackOffice, &hash)
                .await?;
        }
        return Ok(lines);
    }
    let org = app.store.create_org(ORG).await?;
    let hash = auth::hash_password(PASSWORD);
    let dispatcher = app
        .store
        .create_user(org.id, DISPATCHER, Role::Dispatcher, &hash)
        .await?;
    app.store
        .create_user(org.id, "admin", Role::Admin, &hash)
        .await?;
    app.store
        .create_user(org.id, BACK_OFFICE, Role::BackOffice, &hash)
        .await?;
    let mut techs = Vec::new();
    for name in TECHNICIANS {
        techs.push(
            app.store
                .create_user(org.id, name, Role::Technician, &hash)
                .await?,
        );
    }
    let today = Utc::now()
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .unwrap_or_else(Utc::now);
    let jobs = [
        (
            "Rooftop unit seasonal service",
            "hvac_maintenance",
            "Northwind Offices",
            "12 Harbour St",
            Priority::Medium,
        ),
        (
            "Walk-in freezer not holding temperature",
            "hvac_maintenance",
            "Luigi's Trattoria",
            "4 Market Lane",
            Priority::Urgent,
        ),
        (
            "Boiler annual inspection",
            "hvac_maintenance",
            "St Anne's School",
            "1 Chapel Rd",
            Priority::Medium,
        ),
        (
            "Rear bumper and quarter panel QC",
            "collision_qc",
            "J. Alvarez",
            "Bay 3",
            Priority::High,
        ),
        (
            "Windscreen replacement QC",
            "collision_qc",
            "Fleetline Taxis",
            "Bay 1",
            Priority::Medium,
        ),
        (
            "Laptop intake diagnostics",
            "device_diagnostics",
            "Walk-in customer",
            "Front counter",
            Priority::Low,
        ),
        (
            "Phone screen assessment",
            "device_diagnostics",
            "M. Okafor",
            "Front counter",
            Priority::Low,
        ),
        (
            "Room 412: AC not cooling",
            "hotel_maintenance",
            "Harbour View Hotel",
            "Room 412",
            Priority::Urgent,
        ),
        (
            "Room 118: shower drain slow",
            "hotel_maintenance",
            "Harbour View Hotel",
            "Room 118",
            Priority::High,
        ),
        (
            "Lobby lighting circuit fault",
            "general",
            "Harbour View Hotel",
            "Lobby",
            Priority::Medium,
        ),
        (
            "Condenser fan replacement",
            "hvac_maintenance",
            "Greenleaf Clinic",
            "22 Elm St",
            Priority::High,
        ),
        (
            "Quarterly PM: air handlers",
            "hvac_maintenance",
            "Northwind Offices",
            "12 Harbour St",
            Priority::Low,
        ),
    ];
    for (i, (title, tpl, customer, site, priority)) in jobs.into_iter().enumerate() {
        let tech = &techs[i % techs.len()];
        let start = today + Duration::hours(i as i64 * 3 % 48);
        let mut new = NewJob::at_site(title, customer, site, Some(start), priority);
        new.assignees = vec![tech.name.clone()];
        let tpl = template::find(tpl).expect("demo templates are built in");
        let job = create_job_documents(app, &Actor::from(&dispatcher), &new, &tpl).await?;
        app.store.assign(job, tech.id).await?;
    }
    Ok(lines)
}
