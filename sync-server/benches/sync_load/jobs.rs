//! `jobs`: the hot-path workload. C technicians each create D jobs on their devices and make E
//! edits per job, paced at a total rate or unpaced, with one dispatcher connection watching the
//! whole org; every client signs in over HTTP first (a real argon2 check on the server). The
//! server is a separate process, so its CPU (`/proc/PID/stat`) and peak RSS (`VmHWM`) are its
//! own.
//!
//! Knobs: `BENCH_JOBS` (configurations `CxDxE`, comma-separated; default `10x10x10,50x20x20`),
//! `BENCH_JOBS_PACED` (edits/s of the paced runs, 100), `BENCH_JOBS_PACED_MAX` (edits of a paced
//! run at most, 3000: the rest of the E edits per job are left out), `BENCH_JOBS_UNPACED_MAX`
//! (20000), `BENCH_JOBS_RATES` (the
//! sweep at 1,000 documents, `1000,2000,5000,8000`; empty skips it), `BENCH_JOBS_SWEEP_EDITS`
//! (edits per sweep step, 10000), `BENCH_JOBS_CACHE_MB` (the server's document cache, 256 as its
//! default).
//!
//! Latencies: edit→ack from the moment the edit was due (its place in the schedule, so a client
//! that falls behind counts the delay), edit→dispatcher until the dispatcher's replica holds the
//! change.

use super::*;

/// One configuration: technicians, jobs per technician, edits per job.
#[derive(Clone, Copy)]
struct Shape {
    techs: usize,
    jobs: usize,
    edits: usize,
}

impl Shape {
    fn parse(s: &str) -> Option<Shape> {
        let mut it = s.trim().split('x').map(|n| n.parse::<usize>().ok());
        Some(Shape {
            techs: it.next()??,
            jobs: it.next()??,
            edits: it.next()??,
        })
    }

    fn label(&self) -> String {
        format!("{}x{}x{}", self.techs, self.jobs, self.edits)
    }
}

/// `None`: as fast as the clients go (each technician waits for its ack before the next edit).
type Pace = Option<usize>;

/// What one run measured.
struct JobsRun {
    signin: Duration,
    cpu_create: Duration,
    docs_created: usize,
    cpu_edits: Duration,
    /// Documents the projection read from the store (not in place) while the edits ran.
    projection_read: f64,
    edits: usize,
    edit_secs: f64,
    peak_rss: u64,
    ack: Vec<Duration>,
    dispatcher: Vec<Duration>,
    lost: usize,
    errors: Vec<String>,
}

/// Changes the dispatcher is waiting to see, per document: (hash, when the edit was due).
type Watch = Arc<Mutex<HashMap<Uuid, Vec<(ChangeHash, Instant)>>>>;

pub(crate) fn scenario_jobs(client: &Runtime) {
    let floor = automerge_floor(2_000);
    println!(
        "jobs: Automerge floor per edit (device generate → server receive → server generate → device receive, in memory): {:.1} µs",
        floor.as_secs_f64() * 1e6
    );
    let shapes: Vec<Shape> = std::env::var("BENCH_JOBS")
        .unwrap_or_else(|_| "10x10x10,50x20x20".into())
        .split(',')
        .filter_map(Shape::parse)
        .collect();
    let paced = env_usize("BENCH_JOBS_PACED", 100);
    let paced_max = env_usize("BENCH_JOBS_PACED_MAX", 3_000);
    let unpaced_max = env_usize("BENCH_JOBS_UNPACED_MAX", 20_000);
    for shape in &shapes {
        let docs = shape.techs * shape.jobs;
        for pace in [Some(paced), None] {
            let total = shape.techs * shape.jobs * shape.edits;
            let edits = total.min(if pace.is_some() {
                paced_max
            } else {
                unpaced_max
            });
            let run = jobs_run(client, *shape, pace, edits);
            report(shape, pace, &run, floor, docs);
        }
    }
    let rates: Vec<usize> = std::env::var("BENCH_JOBS_RATES")
        .unwrap_or_else(|_| "1000,2000,5000,8000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    if rates.is_empty() {
        return;
    }
    let shape = Shape {
        techs: 50,
        jobs: 20,
        edits: 1_000,
    };
    let sweep_edits = env_usize("BENCH_JOBS_SWEEP_EDITS", 10_000);
    let mut best = None;
    let mut p50_ok = true;
    for rate in rates {
        let run = jobs_run(client, shape, Some(rate), sweep_edits);
        let mut ack = run.ack.clone();
        ack.sort();
        let (p50, p99) = (pct(&ack, 0.5), pct(&ack, 0.99));
        let achieved = run.edits as f64 / run.edit_secs.max(1e-9);
        println!(
            "jobs sweep (1,000 jobs, {rate} edits/s asked, {achieved:.0}/s achieved): edit→ack p50 {} p99 {}, lost {}, errors {} [{}]",
            ms(p50),
            ms(p99),
            run.lost,
            run.errors.len(),
            store_label()
        );
        if p99 < Duration::from_millis(50) && run.lost == 0 {
            best = Some(rate);
            p50_ok &= p50 < Duration::from_millis(2);
        } else {
            break;
        }
    }
    let best = best.unwrap_or(0);
    println!(
        "jobs sweep: highest paced rate with edit→ack p99 < 50 ms at 1,000 jobs: {best} edits/s — goal ≥ 5,000: {}; p50 < 2 ms at every rate up to it: {}",
        verdict(best >= 5_000),
        verdict(p50_ok && best > 0)
    );
}

fn report(shape: &Shape, pace: Pace, run: &JobsRun, floor: Duration, docs: usize) {
    let mut ack = run.ack.clone();
    ack.sort();
    let mut disp = run.dispatcher.clone();
    disp.sort();
    let per_doc = run.cpu_create.as_secs_f64() / run.docs_created.max(1) as f64;
    let per_edit = run.cpu_edits.as_secs_f64() / run.edits.max(1) as f64;
    let pace_label = pace.map_or("unpaced".to_string(), |r| format!("paced {r}/s"));
    let rss_goal = if docs <= 100 { 60 } else { 120 };
    println!(
        "jobs {} ({docs} jobs, {} docs, {pace_label}): sign-in of {} clients {:.2} s; server CPU per created document {:.0} µs, per edit {:.0} µs ({:.1}× floor) over {} edits in {:.1} s; edit→ack p50 {} p99 {}; edit→dispatcher p50 {} p99 {}; peak RSS {} — goal < {rss_goal} MiB: {}{}; lost {}, errors {} [{}]",
        shape.label(),
        run.docs_created,
        shape.techs + 1,
        run.signin.as_secs_f64(),
        per_doc * 1e6,
        per_edit * 1e6,
        per_edit / floor.as_secs_f64(),
        run.edits,
        run.edit_secs,
        ms(pct(&ack, 0.5)),
        ms(pct(&ack, 0.99)),
        ms(pct(&disp, 0.5)),
        ms(pct(&disp, 0.99)),
        mib(run.peak_rss),
        verdict(run.peak_rss < rss_goal << 20),
        match pace {
            Some(r) if r <= 100 => format!(
                "; CPU per edit ≤ 3× floor: {}",
                verdict(per_edit <= 3.0 * floor.as_secs_f64())
            ),
            _ => String::new(),
        },
        run.lost,
        run.errors.len(),
        store_label(),
    );
    if run.projection_read.is_finite() {
        println!(
            "    projection: {:.2} documents read from the store per edit (the rest read in place)",
            run.projection_read / run.edits.max(1) as f64
        );
    }
    for e in run.errors.iter().take(3) {
        println!("    error: {e}");
    }
}

/// One run on a fresh server process.
fn jobs_run(client: &Runtime, shape: Shape, pace: Pace, edits: usize) -> JobsRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let password = "bench-password";
    let (tech_names, dispatcher) = seed_offline(dir.path(), async |app| {
        let s = Seeder::new(app, "jobs").await;
        let mut names = Vec::new();
        for i in 0..shape.techs {
            names.push(s.technician(i).await.name);
        }
        (names, s.dispatcher.name.clone())
    });
    // The per-connection rate limits are for devices; one bench technician editing unpaced sends
    // more than a person could.
    let server = ChildServer::spawn_with(
        dir.path(),
        env_usize("BENCH_JOBS_CACHE_MB", 256),
        &[
            ("FIELDSYNC_MAX_MESSAGES_PER_SECOND", "1000000"),
            ("FIELDSYNC_MAX_DOC_MESSAGES_PER_SECOND", "1000000"),
        ],
    );
    let addr = server.addr;
    let run = client.block_on(async {
        // Sign in: everyone at once, as a crew starting its day.
        let t = Instant::now();
        let mut logins = JoinSet::new();
        for (i, name) in tech_names.iter().chain([&dispatcher]).enumerate() {
            let name = name.clone();
            logins.spawn(async move { (i, login(addr, &name, password).await) });
        }
        let mut tokens = vec![String::new(); shape.techs + 1];
        while let Some(j) = logins.join_next().await {
            let (i, token) = j.expect("login task");
            tokens[i] = token.unwrap_or_else(|e| panic!("sign-in failed: {e}"));
        }
        let signin = t.elapsed();
        let dispatcher_token = tokens.pop().expect("the dispatcher's token");

        let mut board = Device::connect(addr, &dispatcher_token, "board")
            .await
            .expect("board connects");
        board.hello().await.expect("board hello");
        let mut techs = Vec::new();
        for (i, token) in tokens.iter().enumerate() {
            let mut d = Device::connect(addr, token, &tech_names[i])
                .await
                .expect("technician connects");
            d.hello().await.expect("technician hello");
            techs.push(d);
        }
        let watch: Watch = Arc::new(Mutex::new(HashMap::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let board_task = tokio::spawn(watch_board(
            board,
            watch.clone(),
            seen.clone(),
            stop.clone(),
        ));

        // Create: each technician makes its jobs on the device and announces them.
        let cpu0 = server.cpu();
        let mut set = JoinSet::new();
        for mut d in techs {
            set.spawn(async move {
                let r = create_jobs(&mut d, shape.jobs).await;
                (d, r)
            });
        }
        let mut techs = Vec::new();
        let mut errors = Vec::new();
        while let Some(j) = set.join_next().await {
            let (d, r) = j.expect("create task");
            if let Err(e) = r {
                errors.push(e);
            }
            techs.push(d);
        }
        let cpu_create = server.cpu() - cpu0;
        let docs_created = techs.iter().map(|d| d.docs.len()).sum();

        // Edit: edit k (of all) is due at k / rate; technician i makes edits i, i + C, ...
        let cpu1 = server.cpu();
        let read0 = projection_reads(addr).await;
        let started = Instant::now() + Duration::from_millis(200);
        let per_tech = edits.div_ceil(shape.techs);
        let mut set = JoinSet::new();
        for (i, mut d) in techs.into_iter().enumerate() {
            let watch = watch.clone();
            set.spawn(async move {
                let mut lat = Vec::new();
                let mut errs = Vec::new();
                for k in 0..per_tech {
                    let global = i + k * shape.techs;
                    if global >= edits {
                        break;
                    }
                    let due = match pace {
                        Some(rate) => {
                            let at = started + Duration::from_secs_f64(global as f64 / rate as f64);
                            tokio::time::sleep_until(at.into()).await;
                            at
                        }
                        None => Instant::now(),
                    };
                    match paced_edit(&mut d, k, due, &watch).await {
                        Ok(l) => lat.push(l),
                        Err(e) => errs.push(e),
                    }
                }
                (lat, errs)
            });
        }
        let mut ack = Vec::new();
        while let Some(j) = set.join_next().await {
            let (lat, errs) = j.expect("edit task");
            ack.extend(lat);
            errors.extend(errs);
        }
        let edit_secs = (Instant::now() - started).as_secs_f64();
        let cpu_edits = server.cpu() - cpu1;
        let projection_read = projection_reads(addr).await - read0;
        // Let the board catch up, then count what it never saw.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && watch.lock().expect("watch").values().any(|v| !v.is_empty())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let lost = watch.lock().expect("watch").values().map(Vec::len).sum();
        let _ = tokio::time::timeout(Duration::from_secs(5), board_task).await;
        let dispatcher = std::mem::take(&mut *seen.lock().expect("seen"));
        JobsRun {
            signin,
            cpu_create,
            docs_created,
            cpu_edits,
            edits: ack.len(),
            edit_secs,
            peak_rss: 0,
            projection_read,
            ack,
            dispatcher,
            lost,
            errors,
        }
    });
    JobsRun {
        peak_rss: server.rss().1,
        ..run
    }
}

/// Sign in over HTTP; the access token. A 429 (more sign-ins under way from one address than the
/// throttle lets through) is retried after a second, as a device does.
/// The server's count of documents its projection read from the store.
async fn projection_reads(addr: SocketAddr) -> f64 {
    let body = http_get(addr, "/metrics").await;
    metric(&body, "fieldsync_projection_documents_read_total").unwrap_or(f64::NAN)
}

async fn login(addr: SocketAddr, name: &str, password: &str) -> Result<String, String> {
    let mut tries = 0;
    loop {
        match login_once(addr, name, password).await {
            Err(e) if e.contains(" 429 ") && tries < 30 => {
                tries += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

async fn login_once(addr: SocketAddr, name: &str, password: &str) -> Result<String, String> {
    let body = serde_json::json!({"name": name, "password": password, "device_name": format!("{name} phone")})
        .to_string();
    let request = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(120), exchange)
        .await
        .map_err(|_| "sign-in timed out".to_string())??;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{}: {body}", head.lines().next().unwrap_or("")));
    }
    let reply: schemas::api::LoginReply =
        serde_json::from_str(body).map_err(|e| format!("sign-in reply: {e}"))?;
    Ok(reply.tokens.access_token)
}

/// Make `n` jobs on the device (job, checklist and parts documents each), announce them and
/// sync them up, each job acknowledged before the next.
async fn create_jobs(d: &mut Device, n: usize) -> Result<(), String> {
    for i in 0..n {
        let tpl = template::find(TEMPLATES[i % TEMPLATES.len()]).expect("built-in template");
        let new = NewJob {
            title: format!("{} #{i}", TITLES[i % TITLES.len()]),
            description: "Found on site; logged by the technician.".into(),
            ..Default::default()
        };
        let b = job::new_bundle(&d.actor, &new, &tpl, &d.name, Utc::now())
            .map_err(|e| e.to_string())?;
        let mut entries = Vec::new();
        for (id, kind, mut doc) in [
            (b.job_id, DocKind::Job, b.job),
            (b.checklist_id, DocKind::Checklist, b.checklist),
            (b.parts_id, DocKind::Parts, b.parts),
        ] {
            doc.commit();
            let entry = DocEntry {
                id,
                kind,
                job_id: b.job_id,
            };
            entries.push(entry);
            d.ids.push(id);
            d.docs.insert(
                id,
                DevDoc {
                    entry,
                    doc,
                    state: am_sync::State::new(),
                    items: None,
                },
            );
        }
        d.send(&ClientMsg::Announce {
            docs: entries.clone(),
        })
        .await?;
        let msgs: Vec<DocMessage> = entries.iter().filter_map(|e| d.generate(e.id)).collect();
        d.send(&ClientMsg::Sync { docs: msgs }).await?;
        // Until all three are acknowledged.
        let mut waiting: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
        while !waiting.is_empty() {
            match d.recv(Duration::from_secs(30)).await?.0 {
                ServerMsg::Ack { docs } => waiting.retain(|w| !docs.iter().any(|a| a.doc == *w)),
                ServerMsg::Sync { docs } => {
                    let replies = d.apply(docs);
                    d.send_docs(replies).await?;
                }
                ServerMsg::Error { code, message, .. } => {
                    return Err(format!("{}: {}: {message}", d.name, code.as_str()));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The technician's `k`th edit (cycling over its jobs' documents), sent and acknowledged; the
/// latency from `due`. The change is put on the board's watch list before it is sent.
async fn paced_edit(
    d: &mut Device,
    k: usize,
    due: Instant,
    watch: &Watch,
) -> Result<Duration, String> {
    let doc = d.ids[k % d.ids.len()];
    let hash = d.edit(doc);
    watch
        .lock()
        .expect("watch")
        .entry(doc)
        .or_default()
        .push((hash, due));
    let m = d
        .generate(doc)
        .ok_or_else(|| format!("{}: an edit produced no sync message", d.name))?;
    d.send(&ClientMsg::Sync { docs: vec![m] }).await?;
    loop {
        let (msg, at) = d.recv(Duration::from_secs(30)).await?;
        match msg {
            ServerMsg::Ack { docs }
                if docs
                    .iter()
                    .any(|a| a.doc == doc && a.change_hashes().contains(&hash)) =>
            {
                return Ok(at.saturating_duration_since(due));
            }
            ServerMsg::Sync { docs } => {
                let replies = d.apply(docs);
                d.send_docs(replies).await?;
            }
            ServerMsg::Error { code, message, .. } => {
                return Err(format!("{}: {}: {message}", d.name, code.as_str()));
            }
            _ => {}
        }
    }
}

/// The dispatcher's connection: takes in every job made on a device, syncs, and times when each
/// watched change arrives.
async fn watch_board(
    mut board: Device,
    watch: Watch,
    seen: Arc<Mutex<Vec<Duration>>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let (msg, at) = match board.recv(Duration::from_millis(200)).await {
            Ok(got) => got,
            Err(e) if e.contains("nothing from the server") => continue,
            Err(e) => {
                eprintln!("board: {e}");
                return;
            }
        };
        match msg {
            ServerMsg::SetChanged { added, .. } => {
                let mut requests = Vec::new();
                for entry in added {
                    if board.docs.contains_key(&entry.id) {
                        continue;
                    }
                    board.ids.push(entry.id);
                    board.docs.insert(
                        entry.id,
                        DevDoc {
                            entry,
                            doc: AutoCommit::new().with_actor(board.actor.clone()),
                            state: am_sync::State::new(),
                            items: None,
                        },
                    );
                    requests.extend(board.generate(entry.id));
                }
                if board.send_docs(requests).await.is_err() {
                    return;
                }
            }
            ServerMsg::Sync { docs } => {
                let ids: Vec<Uuid> = docs.iter().map(|m| m.doc).collect();
                let replies = board.apply(docs);
                {
                    let mut w = watch.lock().expect("watch");
                    for id in ids {
                        let Some(pending) = w.get_mut(&id) else {
                            continue;
                        };
                        let Some(d) = board.docs.get_mut(&id) else {
                            continue;
                        };
                        let mut times = seen.lock().expect("seen");
                        pending.retain(|(hash, due)| {
                            if d.doc.get_change_by_hash(hash).is_some() {
                                times.push(at.saturating_duration_since(*due));
                                false
                            } else {
                                true
                            }
                        });
                    }
                }
                if board.send_docs(replies).await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// What Automerge itself spends on one technician edit's sync round, in memory: the device's
/// `generate_sync_message`, the server's `receive_sync_message` and `generate_sync_message`,
/// and the device's `receive_sync_message` of the reply. The edit itself is not counted.
fn automerge_floor(edits: usize) -> Duration {
    let tpl = template::find("hvac_maintenance").expect("built-in template");
    let device_actor = ActorId::random();
    let new = NewJob {
        title: "Floor".into(),
        ..Default::default()
    };
    let b = job::new_bundle(&device_actor, &new, &tpl, "tech", Utc::now()).expect("bundle");
    let mut docs = [b.job, b.checklist];
    let mut servers: Vec<AutoCommit> = Vec::new();
    let mut states = Vec::new();
    for d in docs.iter_mut() {
        d.commit();
        let mut server = AutoCommit::new();
        let (mut a, mut s) = (am_sync::State::new(), am_sync::State::new());
        // Bring both sides in sync first.
        for _ in 0..10 {
            let m1 = schemas::sync_message::generate(d, &mut a);
            if let Some(m) = &m1 {
                server
                    .sync()
                    .receive_sync_message(&mut s, m.clone())
                    .expect("apply");
            }
            let m2 = schemas::sync_message::generate(&mut server, &mut s);
            if let Some(m) = &m2 {
                d.sync()
                    .receive_sync_message(&mut a, m.clone())
                    .expect("apply");
            }
            if m1.is_none() && m2.is_none() {
                break;
            }
        }
        servers.push(server);
        states.push((a, s));
    }
    let items = checklist::read(&docs[1]).expect("checklist").items;
    let mut total = Duration::ZERO;
    let mut counted = 0u32;
    for n in 0..edits {
        let which = n % 2;
        let d = &mut docs[which];
        if which == 0 {
            job::set_notes(
                d,
                &format!("Visit note {n}: checked pressures, cleaned the coil."),
            )
            .expect("notes");
        } else {
            let item = &items[n % items.len()];
            checklist::set_value(d, &item.id, Some(&value_for(item, n)), "tech", Utc::now())
                .expect("value");
        }
        if d.commit().is_none() {
            continue; // the same value again: no change, nothing to sync
        }
        counted += 1;
        let (a, s) = &mut states[which];
        let server = &mut servers[which];
        let t = Instant::now();
        let m = schemas::sync_message::generate(d, a).expect("an edit to send");
        let m = am_sync::Message::decode(&m.encode()).expect("round trip");
        server.sync().receive_sync_message(s, m).expect("apply");
        if let Some(reply) = schemas::sync_message::generate(server, s) {
            let reply = am_sync::Message::decode(&reply.encode()).expect("round trip");
            d.sync().receive_sync_message(a, reply).expect("apply");
        }
        total += t.elapsed();
        // Any further round (nothing new) is not part of the edit.
        while let Some(m) = schemas::sync_message::generate(d, a) {
            server.sync().receive_sync_message(s, m).expect("apply");
            match schemas::sync_message::generate(server, s) {
                Some(r) => d.sync().receive_sync_message(a, r).expect("apply"),
                None => break,
            }
        }
    }
    total / counted.max(1)
}
