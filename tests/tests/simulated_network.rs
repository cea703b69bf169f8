//! The two protocol state machines over a simulated network: the server's `Connection` (its
//! session, store and fan-out, minus the socket) and the device's `SyncEngine`, joined by
//! in-memory queues. A seeded scheduler decides which message moves next, when devices edit,
//! connect and drop (losing whatever was in flight). Afterwards every replica equals the server.
//! Time is simulated too: the connection takes it as an argument, so token expiry and the
//! periodic revocation re-check are driven here without waiting.

use std::collections::VecDeque;

use client_core::sync::SyncEngine;
use fieldsync_e2e::{
    Backend, Device, ServerHome, Team, TestServer, assert_device_matches_server, seed,
};
use rand::{Rng, SeedableRng};
use schemas::parts::NewPartLine;
use schemas::wire;
use std::time::Duration;

use schemas::wire::{ServerMsg, close};
use sync_server::sync::connection::{Connection, Now};
use sync_server::sync::hub::Notice;
use tokio::sync::mpsc::UnboundedReceiver;

struct Link {
    conn: Connection,
    notices: UnboundedReceiver<Notice>,
    engine: SyncEngine,
    to_server: VecDeque<Vec<u8>>,
    to_device: VecDeque<Vec<u8>>,
}

/// The device's principal, as the socket's handshake authenticates it.
async fn principal(server: &TestServer, d: &Device, now: Now) -> sync_server::auth::Principal {
    sync_server::auth::authenticate(
        server.store(),
        Some(&d.token),
        sync_server::store::TokenKind::Access,
        now.wall,
    )
    .await
    .expect("the device's token is good")
}

async fn connect(server: &TestServer, d: &Device, now: Now) -> Link {
    let (conn, notices) =
        Connection::open(server.app.clone(), principal(server, d, now).await, now);
    let engine = SyncEngine::new("simulated");
    let to_server = VecDeque::from([wire::encode(&engine.hello())]);
    Link {
        conn,
        notices,
        engine,
        to_server,
        to_device: VecDeque::new(),
    }
}

/// Move one message (or a batch of fan-out notices) on `link`. Returns false if nothing moved,
/// and `Err(())` when the server closed the connection.
async fn step(link: &mut Link, d: &mut Device, rng: &mut impl Rng, now: Now) -> Result<bool, ()> {
    let mut notices = Vec::new();
    while let Ok(n) = link.notices.try_recv() {
        notices.push(n);
    }
    if !notices.is_empty() {
        link.conn.on_notices(now, notices).await;
        link.to_device
            .extend(link.conn.take_output().iter().map(wire::encode));
        return Ok(true);
    }
    let up = !link.to_server.is_empty() && (link.to_device.is_empty() || rng.random_bool(0.5));
    if up {
        let frame = link.to_server.pop_front().unwrap();
        let closed = link.conn.on_frame(now, &frame).await;
        link.to_device
            .extend(link.conn.take_output().iter().map(wire::encode));
        return if closed.is_some() { Err(()) } else { Ok(true) };
    }
    let Some(frame) = link.to_device.pop_front() else {
        return Ok(false);
    };
    let msg = wire::decode_server(&frame, usize::MAX).unwrap();
    let out = link.engine.on_message(&mut d.replica, msg).unwrap();
    link.to_server.extend(out.iter().map(wire::encode));
    Ok(true)
}

/// The device offers its unacknowledged edits, as the live sync loop's tick does.
fn offer_local(link: &mut Link, d: &mut Device) {
    let docs: std::collections::BTreeSet<uuid::Uuid> = d
        .replica
        .unacked()
        .unwrap()
        .into_iter()
        .map(|(doc, _)| doc)
        .collect();
    for doc in docs {
        let out = link.engine.on_local_change(&mut d.replica, doc).unwrap();
        link.to_server.extend(out.iter().map(wire::encode));
    }
}

async fn disconnect(link: Link, d: &mut Device) {
    let Link {
        conn, mut engine, ..
    } = link;
    engine.save_states(&mut d.replica).unwrap();
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_machines_converge_over_a_lossy_simulated_network() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut home = ServerHome::new(Backend::Sqlite).await;
    home.config.max_messages_per_second = u32::MAX / 4;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben", "chloe"]).await;
    let techs: Vec<&sync_server::store::User> = team.techs.iter().collect();
    let shared = team.job(&server, "Shared", "general", &techs).await;
    let mut devices = Vec::new();
    let mut jobs = Vec::new();
    for t in &techs {
        devices.push(Device::new(server.store(), t).await);
        jobs.push(vec![
            shared,
            team.job(&server, "Solo", "general", &[t]).await,
        ]);
    }
    let mut links: Vec<Option<Link>> = (0..devices.len()).map(|_| None).collect();
    let mut added = Vec::new();
    let (mut drops, mut moved) = (0, 0);
    // Simulated time: a few milliseconds pass per step, and ticks run as the socket's would.
    let mut now = Now::system();

    for n in 0..600 {
        now = now.after(Duration::from_millis(rng.random_range(0..20)));
        let i = rng.random_range(0..devices.len());
        match rng.random_range(0..100) {
            0..25 => {
                let job = jobs[i][rng.random_range(0..2)];
                let sku = format!("N{n}");
                // Refused (and nothing changes) while the job has not reached the device yet.
                if devices[i]
                    .replica
                    .add_part(
                        job,
                        NewPartLine {
                            sku: sku.clone(),
                            qty: 1.0,
                            ..Default::default()
                        },
                    )
                    .is_ok()
                {
                    added.push(sku);
                }
                if let Some(link) = links[i].as_mut() {
                    offer_local(link, &mut devices[i]);
                }
            }
            25..35 => {
                if links[i].is_none() {
                    links[i] = Some(connect(&server, &devices[i], now).await);
                }
            }
            35..37 => {
                if let Some(link) = links[i].as_mut() {
                    assert_eq!(link.conn.on_tick(now).await, None, "seed {seed}");
                    link.to_device
                        .extend(link.conn.take_output().iter().map(wire::encode));
                }
            }
            37..40 => {
                if let Some(link) = links[i].take() {
                    drops += 1;
                    disconnect(link, &mut devices[i]).await;
                }
            }
            _ => {
                if let Some(link) = links[i].as_mut() {
                    match step(link, &mut devices[i], &mut rng, now).await {
                        Ok(m) => moved += m as usize,
                        Err(()) => disconnect(links[i].take().unwrap(), &mut devices[i]).await,
                    }
                }
            }
        }
    }
    println!(
        "seed {seed}: {} parts, {drops} dropped connections, {moved} messages moved",
        added.len()
    );

    // A good network at last: everyone connects and every queue drains.
    for i in 0..devices.len() {
        if links[i].is_none() {
            links[i] = Some(connect(&server, &devices[i], now).await);
        }
    }
    for _ in 0..50 {
        let mut any = false;
        for i in 0..devices.len() {
            let link = links[i].as_mut().unwrap();
            offer_local(link, &mut devices[i]);
            while step(link, &mut devices[i], &mut rng, now)
                .await
                .expect("no refusals on a good network")
            {
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    for (i, link) in links.into_iter().enumerate() {
        disconnect(link.unwrap(), &mut devices[i]).await;
    }
    for d in devices.iter_mut() {
        assert!(
            d.replica.unacked().unwrap().is_empty(),
            "seed {seed}: {} has unacknowledged changes",
            d.user.name
        );
        assert_device_matches_server(d, &server).await;
    }
    let view = sync_server::jobs::job_view(&server.app, team.org.id, shared)
        .await
        .unwrap();
    for d in devices.iter_mut() {
        assert_eq!(d.replica.job(shared).unwrap(), view, "seed {seed}");
    }
    let mut on_server: Vec<String> = Vec::new();
    for job in jobs.iter().flatten() {
        on_server.extend(
            sync_server::jobs::job_view(&server.app, team.org.id, *job)
                .await
                .unwrap()
                .parts
                .into_iter()
                .map(|l| l.sku),
        );
    }
    for sku in &added {
        assert!(on_server.contains(sku), "seed {seed}: {sku} lost");
    }
}

/// Token expiry and the revocation re-check, on simulated time: an expired token closes the
/// connection at the next tick; a device revoked behind this node's back (straight in the store,
/// as another node would) is noticed at the first re-check, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_and_revocations_are_rechecked_on_simulated_time() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let start = Now::system();

    // Expiry: the token's own expiry time, whatever the store says.
    let ana = Device::new(server.store(), &team.techs[0]).await;
    let mut p = principal(&server, &ana, start).await;
    p.expires_at = start.wall + chrono::Duration::minutes(5);
    let (mut conn, _notices) = Connection::open(server.app.clone(), p, start);
    conn.on_frame(start, &wire::encode(&SyncEngine::new("t").hello()))
        .await;
    assert!(matches!(conn.take_output()[0], ServerMsg::Welcome { .. }));
    assert_eq!(
        conn.on_tick(start.after(Duration::from_secs(299))).await,
        None
    );
    let closed = conn.on_tick(start.after(Duration::from_secs(300))).await;
    assert_eq!(closed, Some((close::UNAUTHORIZED, "token expired".into())));
    conn.close().await;

    // Revocation made elsewhere: seen at the first re-check (30 s), not at every tick.
    let ben = Device::new(server.store(), &team.techs[1]).await;
    let p = principal(&server, &ben, start).await;
    let (mut conn, _notices) = Connection::open(server.app.clone(), p, start);
    assert!(server.store().revoke_device(ben.device_id).await.unwrap());
    for s in [1, 10, 29] {
        assert_eq!(
            conn.on_tick(start.after(Duration::from_secs(s))).await,
            None,
            "re-checked after {s} s"
        );
    }
    let closed = conn.on_tick(start.after(Duration::from_secs(31))).await;
    assert_eq!(closed, Some((close::UNAUTHORIZED, "device revoked".into())));
    conn.close().await;
}
