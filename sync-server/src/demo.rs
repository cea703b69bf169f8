//! Demo data: an org with a dispatcher, three technicians and a dozen jobs, made once.

use chrono::{Duration, Timelike, Utc};
use schemas::job::NewJob;
use schemas::{Priority, template};

use crate::auth;
use crate::jobs::{Actor, create_job_documents};
use crate::state::AppState;
use crate::store::records::{Asset, CatalogItem, Customer, Site, StockLocation, Technician};
use crate::store::{Role, User};
use std::collections::HashMap;
use uuid::Uuid;

pub const ORG: &str = "demo";
/// Demo accounts share one password, printed at start; never use them outside a demo.
pub const PASSWORD: &str = "fieldsync-demo";
pub const DISPATCHER: &str = "dispatch";
pub const TECHNICIANS: [&str; 3] = ["ana", "ben", "chloe"];
/// The back office: reviews photos at `/review`.
pub const BACK_OFFICE: &str = "office";

/// Create the demo org, users and jobs unless they exist. Returns the sign-in lines to print.
pub async fn ensure(app: &AppState) -> anyhow::Result<Vec<String>> {
    let mut lines = vec![
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
        lines.extend(sensor_lines(app, org.id).await?);
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
    let records = app.store.records();
    // Customers and their sites, as the jobs name them, so the jobs refer to their rows.
    let mut customers: HashMap<&str, Uuid> = HashMap::new();
    let mut sites: HashMap<(&str, &str), Uuid> = HashMap::new();
    for (_, _, customer, site, _) in &jobs {
        if !customers.contains_key(customer) {
            let id = Uuid::now_v7();
            records
                .create_customer(&Customer {
                    id,
                    org_id: org.id,
                    name: (*customer).into(),
                    phone: None,
                    email: None,
                    created_at: Utc::now(),
                })
                .await?;
            customers.insert(customer, id);
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = sites.entry((*customer, *site)) {
            let id = Uuid::now_v7();
            records
                .create_site(&Site {
                    id,
                    org_id: org.id,
                    customer_id: customers[customer],
                    name: (*site).into(),
                    address: None,
                    time_zone: "Europe/London".into(),
                })
                .await?;
            slot.insert(id);
        }
    }
    // One asset per site (the equipment the jobs there are about), and a temperature sensor on
    // the first, so the sensor → job path can be tried from the start.
    let mut assets: HashMap<Uuid, (Uuid, String)> = HashMap::new();
    for (&(_, site), &site_id) in &sites {
        let asset = Asset {
            id: Uuid::now_v7(),
            org_id: org.id,
            site_id,
            name: format!("{site}: main unit"),
            make: Some("Carrier".into()),
            model: Some("48TC".into()),
            serial: Some(format!("SN-{}", &site_id.simple().to_string()[24..])),
            vin: None,
            install_date: None,
        };
        records.create_asset(&asset).await?;
        assets.insert(site_id, (asset.id, asset.name));
    }
    if let Some((asset_id, _)) = jobs
        .first()
        .and_then(|(_, _, c, s, _)| assets.get(&sites[&(*c, *s)]))
    {
        app.store
            .sensor_store()
            .create_sensor(&crate::store::sensors::Sensor {
                id: Uuid::now_v7(),
                org_id: org.id,
                asset_id: *asset_id,
                kind: "temperature".into(),
                unit: "°C".into(),
                min: Some(2.0),
                max: Some(8.0),
                rule: schemas::sensors::SensorRule {
                    consecutive: 3,
                    duration_s: 0,
                    hysteresis: 0.5,
                    cooldown_s: schemas::sensors::SensorRule::DEFAULT_COOLDOWN_S,
                    template: "hvac_maintenance".into(),
                    priority: Priority::High,
                    assignee: techs.first().map(|t| t.name.clone()),
                },
                created_at: Utc::now(),
            })
            .await?;
    }
    stock(app, org.id, &techs).await?;
    planning(
        app,
        org.id,
        &techs,
        sites.values().copied().collect(),
        today,
    )
    .await?;
    for (i, (title, tpl, customer, site, priority)) in jobs.into_iter().enumerate() {
        let tech = &techs[i % techs.len()];
        let start = today + Duration::hours(i as i64 * 3 % 48);
        let mut new = NewJob::at_site(title, customer, site, Some(start), priority);
        new.customer.id = Some(customers[customer]);
        new.site.id = Some(sites[&(customer, site)]);
        new.asset = assets
            .get(&sites[&(customer, site)])
            .map(|(id, name)| schemas::job::Asset {
                id: Some(*id),
                name: name.clone(),
                ..Default::default()
            });
        new.assignees = vec![tech.name.clone()];
        let tpl = template::find(tpl).expect("demo templates are built in");
        let job = create_job_documents(app, &Actor::from(&dispatcher), &new, &tpl).await?;
        app.store.assign(job, tech.id).await?;
    }
    lines.extend(sensor_lines(app, org.id).await?);
    Ok(lines)
}

/// What suggestions and route plans need: the sites on a map around central London, each
/// technician's home and working hours today and tomorrow (08:00–17:00 UTC, a lunch break),
/// and the skills and visit length of HVAC maintenance.
async fn planning(
    app: &AppState,
    org_id: Uuid,
    techs: &[User],
    mut sites: Vec<Uuid>,
    today: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    use crate::store::planning::TimeBlock;
    use schemas::planning::{JobTypeRequirements, Point};
    let planning = app.store.planning();
    sites.sort();
    for (i, site) in sites.iter().enumerate() {
        let a = i as f64 * 2.4;
        let at = Point {
            lat: 51.507 + 0.05 * a.sin() * (1.0 + i as f64 / 4.0),
            lon: -0.128 + 0.08 * a.cos() * (1.0 + i as f64 / 4.0),
        };
        planning.set_site_location(org_id, *site, Some(at)).await?;
    }
    for (i, t) in techs.iter().enumerate() {
        let home = Point {
            lat: 51.45 + 0.04 * i as f64,
            lon: -0.25 + 0.1 * i as f64,
        };
        planning.set_home(org_id, t.id, Some(home)).await?;
        for day in 0..2 {
            let d = today
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
                + Duration::days(day);
            for (from, to, kind) in [(8, 17, "available"), (12, 13, "break")] {
                planning
                    .add_time_block(
                        org_id,
                        &TimeBlock {
                            id: Uuid::now_v7(),
                            user_id: t.id,
                            starts_at: d + Duration::hours(from),
                            ends_at: d + Duration::hours(to),
                            kind: kind.into(),
                        },
                    )
                    .await?;
            }
        }
    }
    planning
        .put_job_type(
            org_id,
            &JobTypeRequirements {
                template: "hvac_maintenance".into(),
                skills: vec!["hvac".into()],
                estimated_minutes: Some(90),
            },
        )
        .await?;
    Ok(())
}

/// Where the demo's sensors take readings (MQTT topic), to print at start.
async fn sensor_lines(app: &AppState, org_id: Uuid) -> anyhow::Result<Vec<String>> {
    Ok(app
        .store
        .sensor_store()
        .sensors(Some(org_id), None)
        .await?
        .into_iter()
        .map(|s| {
            format!(
                "sensor      {} {}..{} {}: publish {{\"value\": 9.5}} to fieldsync/{org_id}/sensors/{} (3 in a row open a job)",
                s.kind,
                s.min.unwrap_or(f64::NEG_INFINITY),
                s.max.unwrap_or(f64::INFINITY),
                s.unit,
                s.id
            )
        })
        .collect())
}

/// The demo's parts catalog (SKU, name, price and cost in cents), skills, a warehouse and a van
/// per technician, stocked.
async fn stock(app: &AppState, org_id: Uuid, techs: &[User]) -> anyhow::Result<()> {
    let records = app.store.records();
    let catalog = [
        ("FILTER-20X25", "Pleated air filter 20x25x1", 1_450, 520),
        ("BELT-A42", "V-belt A42", 1_890, 760),
        ("CAP-35-5UF", "Run capacitor 35/5 uF", 2_450, 900),
        ("CONTACTOR-30A", "Contactor 2-pole 30 A", 3_900, 1_650),
        ("REFRIG-R410A-LB", "Refrigerant R-410A (lb)", 4_500, 2_100),
        ("FUSE-15A", "Fuse 15 A", 350, 90),
    ];
    for (sku, name, price, cost) in catalog {
        records
            .put_catalog_item(&CatalogItem {
                id: Uuid::now_v7(),
                org_id,
                sku: sku.into(),
                name: name.into(),
                unit: Some(if sku.ends_with("-LB") { "lb" } else { "ea" }.into()),
                unit_price_cents: price,
                unit_cost_cents: cost,
            })
            .await?;
    }
    let warehouse = StockLocation {
        id: Uuid::now_v7(),
        org_id,
        code: "WH1".into(),
        name: "Main warehouse".into(),
        kind: "warehouse".into(),
        technician_id: None,
    };
    records.create_location(&warehouse).await?;
    let mut locations = vec![(warehouse.id, 50.0)];
    let skills = [
        &["hvac", "refrigeration"][..],
        &["collision", "electrical"],
        &["hvac", "electrical"],
    ];
    for (i, t) in techs.iter().enumerate() {
        records
            .put_technician(&Technician {
                user_id: t.id,
                org_id,
                display_name: format!("{}{}", t.name[..1].to_uppercase(), &t.name[1..]),
                phone: None,
                skills: skills[i % skills.len()]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            })
            .await?;
        let van = StockLocation {
            id: Uuid::now_v7(),
            org_id,
            code: format!("VAN-{}", t.name.to_uppercase()),
            name: format!("{}'s van", t.name),
            kind: "van".into(),
            technician_id: Some(t.id),
        };
        records.create_location(&van).await?;
        locations.push((van.id, 6.0));
    }
    for (location, qty) in locations {
        for (sku, ..) in catalog {
            records
                .receive_stock(org_id, location, sku, qty, Utc::now())
                .await?;
        }
    }
    Ok(())
}
