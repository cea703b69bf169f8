//! Assignment suggestions, auto-assignment and route plans (issue 11, sections 4 and 5) over
//! HTTP on both stores: a dispatcher records sites' locations, technicians' skills, homes and time
//! blocks, and what a type of work needs; the suggestions rank the technicians with reasons; an
//! org that lets rules auto-assign gets a new job on the first suggestion's device live; a route
//! plan reorders a technician's zig-zag day, and applying it moves the jobs' schedules, which the
//! device (offline meanwhile, with an edit of its own) shows in the new order with its edit kept.

use chrono::{DateTime, Duration, Utc};
use client_core::queries::JobFilter;
use fieldsync_e2e::ApiClient as Client;
use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, projection_caught_up};
use serde_json::{Value, json};
use uuid::Uuid;

/// Great-circle meters, as the server measures them.
fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((b.1 - a.1).to_radians() / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().asin()
}

fn msg(v: &Value) -> String {
    v["message"].as_str().unwrap_or_default().to_string()
}

async fn site(d: &Client, customer: &str, name: &str, lat: f64, lon: f64) -> Value {
    let s = d
        .ok(
            "POST",
            &format!("/api/v1/customers/{customer}/sites"),
            json!({"name": name}),
            201,
        )
        .await;
    let id = s["id"].as_str().unwrap();
    d.ok(
        "PUT",
        &format!("/api/v1/sites/{id}/location"),
        json!({"lat": lat, "lon": lon}),
        200,
    )
    .await;
    s
}

/// A job at `site` in the window `start..end`, for `assignees`.
async fn job(
    d: &Client,
    title: &str,
    site: &Value,
    customer: &Value,
    window: (DateTime<Utc>, DateTime<Utc>),
    assignees: &[&str],
) -> Value {
    d.ok(
        "POST",
        "/api/v1/jobs",
        json!({
            "title": title,
            "template": "hvac_maintenance",
            "customer": {"id": customer["id"], "name": customer["name"]},
            "site": {"id": site["id"], "name": site["name"]},
            "schedule": {"start": window.0, "end": window.1},
            "assignees": assignees,
        }),
        201,
    )
    .await
}

async fn planning(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "bob", "cal"]).await;
    let other = Team::create(server.store(), &["zed"]).await;
    let (ana, bob, cal) = (&team.techs[0], &team.techs[1], &team.techs[2]);
    let d = Client::new(&server, &team.dispatcher).await;
    let stranger = Client::new(&server, &other.dispatcher).await;
    let tech = Client::new(&server, ana).await;

    // The day after tomorrow, so nothing is in the past.
    let day = (Utc::now() + Duration::days(2)).date_naive();
    let at = |h: i64, m: i64| {
        day.and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::hours(h) + Duration::minutes(m)
    };

    // Profiles: ana and cal can do HVAC with refrigerant, bob only HVAC. Ana lives in the
    // centre, cal 40 km north, bob west of every site.
    for (u, skills, (lat, lon)) in [
        (ana, vec!["hvac", "refrigerant"], (51.50, -0.12)),
        (bob, vec!["hvac"], (51.50, -0.23)),
        (cal, vec!["HVAC", "Refrigerant"], (51.86, -0.12)),
    ] {
        d.ok(
            "PUT",
            &format!("/api/v1/technicians/{}", u.id),
            json!({"display_name": u.name, "skills": skills}),
            200,
        )
        .await;
        d.ok(
            "PUT",
            &format!("/api/v1/technicians/{}/home", u.id),
            json!({"lat": lat, "lon": lon}),
            200,
        )
        .await;
        d.ok(
            "POST",
            &format!("/api/v1/technicians/{}/time-blocks", u.id),
            json!({"starts_at": at(8, 0), "ends_at": at(17, 0), "kind": "available"}),
            201,
        )
        .await;
    }
    // Cal has the morning off.
    let off = d
        .ok(
            "POST",
            &format!("/api/v1/technicians/{}/time-blocks", cal.id),
            json!({"starts_at": at(8, 0), "ends_at": at(12, 0), "kind": "pto"}),
            201,
        )
        .await;
    let blocks = d
        .ok(
            "GET",
            &format!(
                "/api/v1/technicians/{}/time-blocks?from={}&to={}",
                cal.id,
                at(0, 0).to_rfc3339().replace('+', "%2B"),
                at(24, 0).to_rfc3339().replace('+', "%2B")
            ),
            Value::Null,
            200,
        )
        .await;
    assert_eq!(blocks.as_array().unwrap().len(), 2, "{blocks}");
    assert!(blocks.to_string().contains(off["id"].as_str().unwrap()));

    let jt = d
        .ok(
            "PUT",
            "/api/v1/planning/job-types/hvac_maintenance",
            json!({"skills": ["refrigerant", "hvac", "hvac"], "estimated_minutes": 60}),
            200,
        )
        .await;
    assert_eq!(jt["skills"], json!(["hvac", "refrigerant"]));
    assert_eq!(jt["template"], "hvac_maintenance");

    // Refusals, each naming what is wrong, nothing written.
    for (method, path, body, code, says) in [
        (
            "PUT",
            "/api/v1/planning/settings".to_string(),
            json!({"speed_kmh": 0}),
            400,
            "speed_kmh",
        ),
        (
            "PUT",
            "/api/v1/planning/settings".to_string(),
            json!({"auto_assign": "yes"}),
            422,
            "auto_assign",
        ),
        (
            "PUT",
            "/api/v1/planning/job-types/no_such_template".to_string(),
            json!({"skills": []}),
            404,
            "no_such_template",
        ),
        (
            "PUT",
            "/api/v1/planning/job-types/general".to_string(),
            json!({"estimated_minutes": 0}),
            400,
            "estimated_minutes",
        ),
        (
            "PUT",
            format!("/api/v1/technicians/{}/home", ana.id),
            json!({"lat": 91, "lon": 0}),
            400,
            "lat",
        ),
        (
            "PUT",
            format!("/api/v1/technicians/{}/home", other.techs[0].id),
            json!({"lat": 1, "lon": 1}),
            404,
            "technician",
        ),
        (
            "POST",
            format!("/api/v1/technicians/{}/time-blocks", ana.id),
            json!({"starts_at": at(9, 0), "ends_at": at(8, 0), "kind": "break"}),
            400,
            "ends_at",
        ),
        (
            "POST",
            format!("/api/v1/technicians/{}/time-blocks", ana.id),
            json!({"starts_at": at(9, 0), "ends_at": at(10, 0), "kind": "nap"}),
            422,
            "kind",
        ),
        (
            "PUT",
            format!("/api/v1/sites/{}/location", Uuid::now_v7()),
            json!({"lat": 1, "lon": 1}),
            404,
            "site",
        ),
        (
            "POST",
            "/api/v1/routes/plan".to_string(),
            json!({"date": "tomorrow"}),
            400,
            "date",
        ),
        (
            "POST",
            "/api/v1/routes/plan".to_string(),
            json!({"date": day.to_string(), "max_seconds": 600}),
            400,
            "max_seconds",
        ),
        (
            "POST",
            "/api/v1/routes/plan".to_string(),
            json!({"date": day.to_string(), "technicians": ["nobody"]}),
            400,
            "nobody",
        ),
    ] {
        let (s, e) = d.call(method, &path, Some(body.clone())).await;
        assert_eq!(s, code, "{method} {path} {body}: {e}");
        assert!(msg(&e).contains(says), "{method} {path} {body}: {e}");
    }
    let (s, e) = tech.call("GET", "/api/v1/planning/settings", None).await;
    assert_eq!(s, 403, "{e}");
    let (s, e) = tech
        .call(
            "POST",
            "/api/v1/routes/plan",
            Some(json!({"date": day.to_string()})),
        )
        .await;
    assert_eq!(s, 403, "{e}");
    let settings = d
        .ok("GET", "/api/v1/planning/settings", Value::Null, 200)
        .await;
    assert_eq!(settings["auto_assign"], false);
    assert_eq!(settings["speed_kmh"], 40.0);

    // Sites along a line west to east, 2 km apart.
    let customer = d
        .ok(
            "POST",
            "/api/v1/customers",
            json!({"name": "Harbour Hotels"}),
            201,
        )
        .await;
    let cid = customer["id"].as_str().unwrap();
    let mut sites = Vec::new();
    for k in 0..6 {
        sites.push(
            site(
                &d,
                cid,
                &format!("Site {k}"),
                51.50,
                -0.20 + 0.03 * k as f64,
            )
            .await,
        );
    }

    // Suggestions for an unassigned morning job at site 0.
    let j = job(
        &d,
        "Chiller service",
        &sites[0],
        &customer,
        (at(9, 0), at(12, 0)),
        &[],
    )
    .await;
    assert_eq!(j["assignees"], json!([]), "auto-assignment is off");
    let jid = j["id"].as_str().unwrap().to_string();
    projection_caught_up(server.store()).await;
    let s = d
        .ok(
            "GET",
            &format!("/api/v1/jobs/{jid}/suggestions"),
            Value::Null,
            200,
        )
        .await;
    let names: Vec<&str> = s["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["technician"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [ana.name.as_str(), cal.name.as_str(), bob.name.as_str()],
        "{s}"
    );
    assert_eq!(s["required_skills"], json!(["hvac", "refrigerant"]));
    let first = &s["suggestions"][0];
    assert_eq!(first["eligible"], true);
    assert_eq!(first["fits"], true);
    assert_eq!(first["free_minutes"], 180);
    let cal_s = &s["suggestions"][1];
    assert_eq!(cal_s["fits"], false, "cal is off in the morning: {cal_s}");
    let bob_s = &s["suggestions"][2];
    assert_eq!(bob_s["eligible"], false);
    assert_eq!(bob_s["missing_skills"], json!(["refrigerant"]));
    assert!(
        bob_s["reasons"].to_string().contains("lacks refrigerant"),
        "{bob_s}"
    );
    assert!(
        first["reasons"].to_string().contains("km from home"),
        "{first}"
    );
    for (client, path, code) in [
        (&tech, format!("/api/v1/jobs/{jid}/suggestions"), 403),
        (&stranger, format!("/api/v1/jobs/{jid}/suggestions"), 404),
        (
            &d,
            format!("/api/v1/jobs/{}/suggestions", Uuid::now_v7()),
            404,
        ),
    ] {
        let (st, e) = client.call("GET", &path, None).await;
        assert_eq!(st, code, "{path}: {e}");
    }

    // Auto-assignment: the next unassigned job goes to the first suggestion, whose device
    // receives it with its next sync.
    let mut ana_device = Device::new(server.store(), ana).await;
    ana_device.settle(&server).await;
    let before = ana_device.replica.list_jobs(JobFilter::All).unwrap().len();
    d.ok(
        "PUT",
        "/api/v1/planning/settings",
        json!({"auto_assign": true, "default_duration_min": 60, "speed_kmh": 30}),
        200,
    )
    .await;
    let auto = job(
        &d,
        "Ice machine",
        &sites[1],
        &customer,
        (at(13, 0), at(15, 0)),
        &[],
    )
    .await;
    assert_eq!(auto["assignees"], json!([ana.name]), "{auto}");
    ana_device.settle(&server).await;
    let listed = ana_device.replica.list_jobs(JobFilter::All).unwrap();
    assert_eq!(listed.len(), before + 1);
    assert!(
        listed
            .iter()
            .any(|x| x.id.to_string() == auto["id"].as_str().unwrap())
    );
    // A job nobody qualifies for stays unassigned.
    d.ok(
        "PUT",
        "/api/v1/planning/job-types/general",
        json!({"skills": ["welding"]}),
        200,
    )
    .await;
    let nobody = d
        .ok(
            "POST",
            "/api/v1/jobs",
            json!({"title": "Weld a rail", "template": "general",
                   "schedule": {"start": at(10, 0), "end": at(11, 0)}}),
            201,
        )
        .await;
    assert_eq!(nobody["assignees"], json!([]), "{nobody}");
    d.ok(
        "PUT",
        "/api/v1/planning/settings",
        json!({"auto_assign": false}),
        200,
    )
    .await;

    // A zig-zag day for bob: sites 0, 5, 1, 4, 2, 3 in scheduled order, each window open until
    // 17:00, and one job whose site has no location.
    let order = [0usize, 5, 1, 4, 2, 3];
    let mut bob_jobs = Vec::new();
    for (n, k) in order.iter().enumerate() {
        let v = job(
            &d,
            &format!("Visit {n} at site {k}"),
            &sites[*k],
            &customer,
            (at(8, 0) + Duration::minutes(10 * n as i64), at(17, 0)),
            &[bob.name.as_str()],
        )
        .await;
        bob_jobs.push((v["id"].as_str().unwrap().to_string(), *k));
    }
    let nowhere = d
        .ok(
            "POST",
            "/api/v1/customers",
            json!({"name": "Nowhere Ltd"}),
            201,
        )
        .await;
    let lost_site = d
        .ok(
            "POST",
            &format!(
                "/api/v1/customers/{}/sites",
                nowhere["id"].as_str().unwrap()
            ),
            json!({"name": "Unmapped"}),
            201,
        )
        .await;
    let lost = job(
        &d,
        "Somewhere",
        &lost_site,
        &nowhere,
        (at(9, 0), at(17, 0)),
        &[bob.name.as_str()],
    )
    .await;
    let lost_id = lost["id"].as_str().unwrap().to_string();

    // Bob's device has his day, then goes offline and writes a note on the first visit.
    let mut bob_device = Device::new(server.store(), bob).await;
    bob_device.settle(&server).await;
    let first_visit: Uuid = bob_jobs[0].0.parse().unwrap();
    bob_device
        .replica
        .set_notes(first_visit, "gate code 4412")
        .unwrap();

    projection_caught_up(server.store()).await;
    let plan = d
        .ok(
            "POST",
            "/api/v1/routes/plan",
            json!({"date": day.to_string(), "technicians": [bob.name], "max_seconds": 5}),
            200,
        )
        .await;
    let routes = plan["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1, "{plan}");
    let stops = routes[0]["stops"].as_array().unwrap();
    assert_eq!(stops.len(), 6, "{plan}");
    let unassigned = plan["unassigned"].as_array().unwrap();
    assert_eq!(unassigned.len(), 1, "{plan}");
    assert_eq!(unassigned[0]["job_id"], lost_id.as_str());
    assert!(
        unassigned[0]["reasons"].to_string().contains("no location"),
        "{plan}"
    );
    let (dist, naive) = (
        plan["distance_m"].as_f64().unwrap(),
        plan["naive_distance_m"].as_f64().unwrap(),
    );
    // Bob lives west of every site on the same parallel: the best day is out to the farthest
    // site and back (visiting the others on the way), against the naive zig-zag's 0.60 / 0.36
    // of that.
    let out_and_back = 2.0 * haversine_m((51.50, -0.23), (51.50, -0.05));
    assert!(
        dist <= 1.01 * out_and_back,
        "planned {dist} m vs best {out_and_back} m"
    );
    assert!(dist < 0.65 * naive, "planned {dist} m vs naive {naive} m");
    let mut last_end: Option<DateTime<Utc>> = None;
    for s in stops {
        let start: DateTime<Utc> = s["start"].as_str().unwrap().parse().unwrap();
        let end: DateTime<Utc> = s["end"].as_str().unwrap().parse().unwrap();
        assert_eq!(end - start, Duration::minutes(60), "the job type's length");
        assert!(start >= at(8, 0) && end <= at(17, 0));
        if let Some(prev) = last_end {
            assert!(start >= prev);
        }
        last_end = Some(end);
    }

    // A plan whose job moved to someone else meanwhile is refused whole.
    let stale = json!({"routes": [{"technician": ana.name, "stops": [stops[0].clone()]}]});
    let (s, e) = d.call("POST", "/api/v1/routes/apply", Some(stale)).await;
    assert_eq!(s, 409, "{e}");
    let (s, e) = stranger
        .call(
            "POST",
            "/api/v1/routes/apply",
            Some(json!({"routes": plan["routes"]})),
        )
        .await;
    assert_eq!(s, 404, "another org's jobs: {e}");

    let applied = d
        .ok(
            "POST",
            "/api/v1/routes/apply",
            json!({"routes": plan["routes"]}),
            200,
        )
        .await;
    assert_eq!(
        applied["updated"].as_u64().unwrap() + applied["unchanged"].as_u64().unwrap(),
        6
    );
    assert!(applied["updated"].as_u64().unwrap() >= 5, "{applied}");
    // Applying again changes nothing.
    let again = d
        .ok(
            "POST",
            "/api/v1/routes/apply",
            json!({"routes": plan["routes"]}),
            200,
        )
        .await;
    assert_eq!(again["updated"], 0, "{again}");

    // Bob reconnects: his list is in the planned order, his offline note is kept.
    bob_device.settle(&server).await;
    let listed: Vec<String> = bob_device
        .replica
        .list_jobs(JobFilter::All)
        .unwrap()
        .into_iter()
        .filter(|x| bob_jobs.iter().any(|(id, _)| *id == x.id.to_string()))
        .map(|x| x.id.to_string())
        .collect();
    let planned: Vec<String> = stops
        .iter()
        .map(|s| s["job_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, planned);
    let view = d
        .ok(
            "GET",
            &format!("/api/v1/jobs/{first_visit}"),
            Value::Null,
            200,
        )
        .await;
    assert_eq!(view["notes"], "gate code 4412");
    let stop0 = stops
        .iter()
        .find(|s| s["job_id"] == first_visit.to_string().as_str())
        .unwrap();
    assert_eq!(view["schedule"]["start"], stop0["start"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_on_sqlite() {
    planning(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_on_postgres() {
    planning(Backend::Postgres).await;
}
