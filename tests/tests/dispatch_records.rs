//! The dispatcher's reference data over HTTP, on both stores: customers and their sites, the
//! parts catalog, stock locations, receipts and technician profiles; every refusal a 4xx naming
//! what is wrong, other orgs' records out of reach. Then the records at work: a job made for a
//! customer's site, a part used from the technician's van on the device, and the van's stock
//! and the job's row follow.

use std::time::Duration;

use fieldsync_e2e::ApiClient as Client;
use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer};
use schemas::parts::NewPartLine;
use serde_json::{Value, json};
use sync_server::store::User;

/// A client per user, each with a token of its own.
async fn clients<const N: usize>(server: &TestServer, users: [&User; N]) -> [Client; N] {
    let mut out = Vec::new();
    for u in users {
        out.push(Client::new(server, u).await);
    }
    out.try_into().unwrap_or_else(|_| unreachable!())
}

async fn reference_data(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let other = Team::create(server.store(), &["zed"]).await;
    let [d, stranger, tech] = clients(
        &server,
        [&team.dispatcher, &other.dispatcher, &team.techs[0]],
    )
    .await;

    // Customers and sites.
    let (s, customer) = d
        .call(
            "POST",
            "/api/v1/customers",
            Some(json!({"name": "Northwind", "phone": "+44 20 1"})),
        )
        .await;
    assert_eq!(s, 201, "{customer}");
    let cid = customer["id"].as_str().unwrap().to_string();
    for (body, code, field) in [
        (json!({"name": "Northwind"}), 409, "name"),
        (json!({"name": "  "}), 400, "name"),
        (json!({"name": "Bad\u{7}bell"}), 400, "name"),
        (json!({"name": "X", "fax": "1"}), 422, "fax"),
    ] {
        let (s, e) = d
            .call("POST", "/api/v1/customers", Some(body.clone()))
            .await;
        assert_eq!(s, code, "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{body}: {e}"
        );
    }
    let (s, e) = tech
        .call("POST", "/api/v1/customers", Some(json!({"name": "Mine"})))
        .await;
    assert_eq!(s, 403, "{e}");
    let (s, site) = d
        .call(
            "POST",
            &format!("/api/v1/customers/{cid}/sites"),
            Some(json!({"name": "12 Harbour St", "time_zone": "Europe/London"})),
        )
        .await;
    assert_eq!(s, 201, "{site}");
    assert_eq!(site["time_zone"], "Europe/London");
    let (s, e) = d
        .call(
            "POST",
            &format!("/api/v1/customers/{cid}/sites"),
            Some(json!({"name": "Roof", "time_zone": "Mars/Olympus Mons"})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("time_zone"), "{e}");
    let (s, e) = stranger
        .call(
            "POST",
            &format!("/api/v1/customers/{cid}/sites"),
            Some(json!({"name": "Theirs"})),
        )
        .await;
    assert_eq!(s, 404, "another org's customer: {e}");
    let (_, list) = d.call("GET", "/api/v1/customers", None).await;
    assert_eq!(list[0]["sites"][0]["name"], "12 Harbour St", "{list}");
    let (_, theirs) = stranger.call("GET", "/api/v1/customers", None).await;
    assert_eq!(theirs, json!([]));

    // The catalog; technicians read it.
    let (s, e) = d
        .call(
            "POST",
            "/api/v1/catalog",
            Some(json!({"sku": "BELT-A42", "name": "V-belt", "unit_price_cents": -1, "unit_cost_cents": 5})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("unit_price_cents"),
        "{e}"
    );
    let (s, _) = d
        .call(
            "POST",
            "/api/v1/catalog",
            Some(json!({"sku": "BELT-A42", "name": "V-belt", "unit": "ea", "unit_price_cents": 1890, "unit_cost_cents": 760})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, catalog) = tech.call("GET", "/api/v1/catalog", None).await;
    assert_eq!(s, 200);
    assert_eq!(catalog[0]["unit_price_cents"], 1890, "{catalog}");

    // Stock locations and receipts.
    let ana = &team.techs[0];
    let (s, van) = d
        .call(
            "POST",
            "/api/v1/stock/locations",
            Some(json!({"code": "VAN-ANA", "name": "Ana's van", "kind": "van", "technician": ana.name})),
        )
        .await;
    assert_eq!(s, 201, "{van}");
    let van_id = van["id"].as_str().unwrap().to_string();
    for (body, code, field) in [
        (
            json!({"code": "VAN-2", "name": "Second", "kind": "van", "technician": ana.name}),
            409,
            "van",
        ),
        (
            json!({"code": "VAN-ANA", "name": "Again", "kind": "warehouse"}),
            409,
            "code",
        ),
        (
            json!({"code": "WH", "name": "WH", "kind": "warehouse", "technician": ana.name}),
            400,
            "technician",
        ),
        (
            json!({"code": "V", "name": "V", "kind": "van"}),
            400,
            "technician",
        ),
        (
            json!({"code": "V", "name": "V", "kind": "boat"}),
            400,
            "kind",
        ),
        (
            json!({"code": "V", "name": "V", "kind": "van", "technician": other.techs[0].name}),
            400,
            "technician",
        ),
    ] {
        let (s, e) = d
            .call("POST", "/api/v1/stock/locations", Some(body.clone()))
            .await;
        assert_eq!(s, code, "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{body}: {e}"
        );
    }
    let (s, levels) = d
        .call(
            "POST",
            "/api/v1/stock/receipts",
            Some(json!({"location_id": van_id, "sku": "BELT-A42", "qty": 5})),
        )
        .await;
    assert_eq!(s, 201, "{levels}");
    assert_eq!(levels[0]["on_hand"], 5.0, "{levels}");
    let (s, e) = stranger
        .call(
            "POST",
            "/api/v1/stock/receipts",
            Some(json!({"location_id": van_id, "sku": "BELT-A42", "qty": 5})),
        )
        .await;
    assert_eq!(s, 404, "another org's location: {e}");
    let (s, e) = d
        .call(
            "POST",
            "/api/v1/stock/receipts",
            Some(json!({"location_id": van_id, "sku": "BELT-A42", "qty": 0})),
        )
        .await;
    assert_eq!(s, 400, "{e}");

    // A technician's profile.
    let (s, profile) = d
        .call(
            "PUT",
            &format!("/api/v1/technicians/{}", ana.id),
            Some(json!({"display_name": "Ana", "skills": ["hvac", "electrical", "hvac"]})),
        )
        .await;
    assert_eq!(s, 200, "{profile}");
    assert_eq!(profile["skills"], json!(["electrical", "hvac"]));
    let (s, _) = stranger
        .call(
            "PUT",
            &format!("/api/v1/technicians/{}", ana.id),
            Some(json!({"display_name": "Mine"})),
        )
        .await;
    assert_eq!(s, 404);
    let (_, techs) = d.call("GET", "/api/v1/technicians", None).await;
    assert_eq!(techs[0]["skills"], json!(["electrical", "hvac"]), "{techs}");
    assert_eq!(techs[0]["van"], van_id.as_str(), "{techs}");

    // A job may name only the org's own customer and that customer's site.
    let (_, other_customer) = stranger
        .call("POST", "/api/v1/customers", Some(json!({"name": "Theirs"})))
        .await;
    let (_, second) = d
        .call(
            "POST",
            "/api/v1/customers",
            Some(json!({"name": "Luigi's"})),
        )
        .await;
    let site_id = site["id"].as_str().unwrap();
    for (customer, site, field) in [
        (other_customer["id"].clone(), Value::Null, "customer.id"),
        (Value::Null, json!(uuid::Uuid::now_v7()), "site.id"),
        (second["id"].clone(), json!(site_id), "site.id"),
    ] {
        let (s, e) = d
            .call(
                "POST",
                "/api/v1/jobs",
                Some(json!({
                    "title": "Not ours",
                    "customer": {"id": customer, "name": "X"},
                    "site": {"id": site, "name": "Y"},
                })),
            )
            .await;
        assert_eq!(s, 400, "{e}");
        assert!(e["message"].as_str().unwrap().contains(field), "{e}");
    }

    // At work: a job for the customer's site; Ana uses a belt from her van.
    let sid = site["id"].as_str().unwrap();
    let (s, job) = d
        .call(
            "POST",
            "/api/v1/jobs",
            Some(json!({
                "title": "Belt change",
                "customer": {"id": cid, "name": "Northwind"},
                "site": {"id": sid, "name": "12 Harbour St"},
                "assignees": [ana.name],
            })),
        )
        .await;
    assert_eq!(s, 201, "{job}");
    let job_id: uuid::Uuid = job["id"].as_str().unwrap().parse().unwrap();
    let mut device = Device::new(server.store(), ana).await;
    device.settle(&server).await;
    device
        .replica
        .add_part(
            job_id,
            NewPartLine {
                sku: "BELT-A42".into(),
                description: "belt".into(),
                qty: 2.0,
                unit: Some("ea".into()),
                source: None,
            },
        )
        .unwrap();
    device.settle(&server).await;
    let mut on_hand = Value::Null;
    for _ in 0..100 {
        let (_, stock) = d
            .call("GET", &format!("/api/v1/stock?location={van_id}"), None)
            .await;
        on_hand = stock[0]["on_hand"].clone();
        if on_hand == 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(on_hand, 3.0, "the van's stock after the line");
    let (_, list) = d.call("GET", "/api/v1/jobs?q=belt", None).await;
    let item = &list["items"][0];
    assert_eq!(item["customer"]["id"], cid.as_str(), "{item}");
    assert_eq!(item["site"]["id"], sid, "{item}");
    assert_eq!(item["parts"], 1, "{item}");

    // The job's detail prices the line from the catalog and keeps the audit trail.
    let (_, catalog) = d.call("GET", "/api/v1/catalog", None).await;
    let price = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["sku"] == "BELT-A42")
        .unwrap()["unit_price_cents"]
        .as_i64()
        .unwrap();
    let (s, detail) = d.call("GET", &format!("/api/v1/jobs/{job_id}"), None).await;
    assert_eq!(s, 200, "{detail}");
    let line = &detail["parts_priced"][0];
    assert_eq!(line["sku"], "BELT-A42", "{detail}");
    assert_eq!(line["unit_price_cents"], price, "{line}");
    assert_eq!(line["total_cents"], 2 * price, "{line}");
    assert!(
        line["location"].as_str().unwrap().starts_with("VAN"),
        "{line}"
    );
    assert_eq!(detail["parts_total_cents"], 2 * price, "{detail}");
    assert!(detail["audit"].is_array(), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_data_on_sqlite() {
    reference_data(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_data_on_postgres() {
    reference_data(Backend::Postgres).await;
}

/// Assets (list, create, update, a VIN checked), customers' and sites' updates, and a job made
/// for one of the org's assets; other orgs' records stay out of reach.
async fn assets_and_updates(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let other = Team::create(server.store(), &["zed"]).await;
    let [d, stranger, tech] = clients(
        &server,
        [&team.dispatcher, &other.dispatcher, &team.techs[0]],
    )
    .await;
    let (_, customer) = d
        .call(
            "POST",
            "/api/v1/customers",
            Some(json!({"name": "Harbor Body Shop"})),
        )
        .await;
    let cid = customer["id"].as_str().unwrap().to_string();
    let (_, site) = d
        .call(
            "POST",
            &format!("/api/v1/customers/{cid}/sites"),
            Some(json!({"name": "Bay 3", "time_zone": "America/Chicago"})),
        )
        .await;
    let sid = site["id"].as_str().unwrap().to_string();
    let (_, other_customer) = stranger
        .call("POST", "/api/v1/customers", Some(json!({"name": "Theirs"})))
        .await;
    let (_, other_site) = stranger
        .call(
            "POST",
            &format!(
                "/api/v1/customers/{}/sites",
                other_customer["id"].as_str().unwrap()
            ),
            Some(json!({"name": "Their yard"})),
        )
        .await;
    let other_sid = other_site["id"].as_str().unwrap().to_string();

    // Updates: the customer and the site.
    let (s, c) = d
        .call(
            "PUT",
            &format!("/api/v1/customers/{cid}"),
            Some(json!({"name": "Harbor Collision", "phone": "+1 555 0100"})),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["name"], "Harbor Collision");
    assert_eq!(c["sites"][0]["id"], sid.as_str());
    let (s, st) = d
        .call(
            "PUT",
            &format!("/api/v1/sites/{sid}"),
            Some(json!({"name": "Bay 3 (north)", "address": "1 Dock Rd"})),
        )
        .await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["customer_id"], cid.as_str());
    assert_eq!(st["address"], "1 Dock Rd");
    for (path, body, code) in [
        (
            format!(
                "/api/v1/customers/{}",
                other_customer["id"].as_str().unwrap()
            ),
            json!({"name": "Mine now"}),
            404,
        ),
        (
            format!("/api/v1/sites/{other_sid}"),
            json!({"name": "Mine now"}),
            404,
        ),
        (format!("/api/v1/customers/{cid}"), json!({"name": ""}), 400),
        (
            format!("/api/v1/customers/{cid}"),
            json!({"name": "X", "fax": "1"}),
            422,
        ),
    ] {
        let (s, e) = d.call("PUT", &path, Some(body.clone())).await;
        assert_eq!(s, code, "{path} {body}: {e}");
    }

    // Assets: a vehicle with its VIN; refusals name the field.
    let car = json!({"site_id": sid, "name": "2019 Civic", "make": "Honda", "model": "Civic",
                     "vin": "2HGFC2F59KH123456", "install_date": "2019-05-01"});
    let (s, asset) = d.call("POST", "/api/v1/assets", Some(car.clone())).await;
    assert_eq!(s, 201, "{asset}");
    assert_eq!(asset["customer_id"], cid.as_str());
    assert_eq!(asset["install_date"], "2019-05-01");
    let aid = asset["id"].as_str().unwrap().to_string();
    for (patch, code, field) in [
        (json!({"vin": "2HGFC2F59KH12345"}), 400, "vin"),
        (json!({"vin": "IHGFC2F59KH123456"}), 400, "vin"),
        (json!({"name": " "}), 400, "name"),
        (json!({"site_id": other_sid}), 400, "site_id"),
        (json!({"install_date": "May 2019"}), 422, "install_date"),
    ] {
        let mut body = car.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, e) = d.call("POST", "/api/v1/assets", Some(body.clone())).await;
        assert_eq!(s, code, "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{field}: {e}"
        );
    }
    let (s, e) = tech.call("POST", "/api/v1/assets", Some(car.clone())).await;
    assert_eq!(s, 403, "{e}");
    let mut moved = car.clone();
    moved["serial"] = json!("SN-1");
    let (s, updated) = d
        .call("PUT", &format!("/api/v1/assets/{aid}"), Some(moved.clone()))
        .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["serial"], "SN-1");
    let (s, e) = stranger
        .call(
            "PUT",
            &format!("/api/v1/assets/{aid}"),
            Some({
                let mut b = moved.clone();
                b["site_id"] = json!(other_sid);
                b
            }),
        )
        .await;
    assert_eq!(s, 404, "{e}");
    let (s, list) = d
        .call("GET", &format!("/api/v1/assets?customer={cid}"), None)
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, list) = stranger.call("GET", "/api/v1/assets", None).await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 0), "{list}");
    let (s, e) = d.call("GET", "/api/v1/assets?site=nope", None).await;
    assert_eq!(s, 400, "{e}");

    // A job for the asset; another org's asset, or an asset at another site, is refused.
    let (s, job) = d
        .call(
            "POST",
            "/api/v1/jobs",
            Some(
                json!({"title": "Post-repair QC", "template": "collision_qc",
                        "customer": {"id": cid, "name": "Harbor Collision"},
                        "site": {"id": sid, "name": "Bay 3 (north)"},
                        "asset": {"id": aid, "name": "2019 Civic", "serial": "SN-1"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{job}");
    assert_eq!(job["asset"]["id"], aid.as_str(), "{job}");
    let (s, e) = stranger
        .call(
            "POST",
            "/api/v1/jobs",
            Some(json!({"title": "x", "asset": {"id": aid, "name": "2019 Civic"}})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("asset.id"), "{e}");
    let (_, site2) = d
        .call(
            "POST",
            &format!("/api/v1/customers/{cid}/sites"),
            Some(json!({"name": "Bay 4"})),
        )
        .await;
    let (s, e) = d
        .call(
            "POST",
            "/api/v1/jobs",
            Some(
                json!({"title": "x", "site": {"id": site2["id"], "name": "Bay 4"},
                        "asset": {"id": aid, "name": "2019 Civic"}}),
            ),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    fieldsync_e2e::projection_caught_up(server.store()).await;
    let (s, list) = d.call("GET", "/api/v1/jobs?q=QC", None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    // The list by customer: this customer's job only; another org's customer is refused.
    let (_, untied) = d
        .call(
            "POST",
            "/api/v1/jobs",
            Some(json!({"title": "No customer"})),
        )
        .await;
    fieldsync_e2e::projection_caught_up(server.store()).await;
    let (s, list) = d
        .call("GET", &format!("/api/v1/jobs?customer={cid}"), None)
        .await;
    assert_eq!(s, 200, "{list}");
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [job["id"].as_str().unwrap()], "{list}");
    assert_ne!(ids[0], untied["id"].as_str().unwrap());
    for bad in [
        other_customer["id"].as_str().unwrap().to_string(),
        "nope".to_string(),
    ] {
        let (s, e) = d
            .call("GET", &format!("/api/v1/jobs?customer={bad}"), None)
            .await;
        assert_eq!(s, 400, "{e}");
        assert!(e["message"].as_str().unwrap().contains("customer"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_and_updates_on_sqlite() {
    assets_and_updates(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_and_updates_on_postgres() {
    assets_and_updates(Backend::Postgres).await;
}
