//! The dispatcher's reference data over HTTP, on both stores: customers and their sites, the
//! parts catalog, stock locations, receipts and technician profiles; every refusal a 4xx naming
//! what is wrong, other orgs' records out of reach. Then the records at work: a job made for a
//! customer's site, a part used from the technician's van on the device, and the van's stock
//! and the job's row follow.

use std::time::Duration;

use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, access_token, api};
use schemas::parts::NewPartLine;
use serde_json::{Value, json};

struct Client {
    url: String,
    token: String,
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        api(
            method,
            format!("{}{path}", self.url),
            Some(self.token.clone()),
            body,
        )
        .await
    }
}

async fn reference_data(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let other = Team::create(server.store(), &["zed"]).await;
    let d = Client {
        url: server.url.clone(),
        token: access_token(server.store(), &team.dispatcher, None).await,
    };
    let stranger = Client {
        url: server.url.clone(),
        token: access_token(server.store(), &other.dispatcher, None).await,
    };
    let tech = Client {
        url: server.url.clone(),
        token: access_token(server.store(), &team.techs[0], None).await,
    };

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_data_on_sqlite() {
    reference_data(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_data_on_postgres() {
    reference_data(Backend::Postgres).await;
}
