//! Property: random edits on two or three replicas, merged in random orders, converge to the
//! same documents, and every replica's query tables equal a rebuild from its documents.

use client_core::Replica;
use proptest::prelude::*;
use schemas::JobStatus;
use schemas::job::NewJob;
use schemas::parts::NewPartLine;
use uuid::Uuid;

#[derive(Clone, Debug)]
enum Op {
    Check {
        item: usize,
        value: usize,
    },
    AddPart {
        sku: u8,
        qty: u8,
    },
    SetQty {
        line: usize,
        qty: u8,
    },
    RemovePart {
        line: usize,
    },
    Notes(String),
    Status(usize),
    /// Replica `from` sends everything it has to replica `to`.
    Sync {
        from: usize,
        to: usize,
    },
}

fn op(replicas: usize) -> impl Strategy<Value = (usize, Op)> {
    let op = prop_oneof![
        (0..4usize, 0..4usize).prop_map(|(item, value)| Op::Check { item, value }),
        (0..5u8, 0..10u8).prop_map(|(sku, qty)| Op::AddPart { sku, qty }),
        (0..4usize, 0..10u8).prop_map(|(line, qty)| Op::SetQty { line, qty }),
        (0..4usize).prop_map(|line| Op::RemovePart { line }),
        "[a-z ]{0,12}".prop_map(Op::Notes),
        (0..JobStatus::ALL.len()).prop_map(Op::Status),
        (0..replicas, 0..replicas).prop_map(|(from, to)| Op::Sync { from, to }),
    ];
    (0..replicas, op)
}

fn send_all(replicas: &mut [Replica], from: usize, to: usize) {
    if from == to {
        return;
    }
    let docs = replicas[from].documents().unwrap();
    for d in docs {
        let bytes = replicas[from].save_document(d.id).unwrap();
        replicas[to].apply_remote(d, &bytes).unwrap();
    }
}

fn apply(r: &mut Replica, job: Uuid, op: &Op) {
    // Edits the workflow refuses are part of the test: they must change nothing, so errors are
    // ignored here and convergence is checked at the end.
    let view = r.job(job).unwrap();
    let line = |i: usize| {
        view.parts
            .get(i % view.parts.len().max(1))
            .map(|l| l.id.clone())
    };
    let _ = match op {
        Op::Check { item, value } => {
            let ids = [
                "arrived_on_site",
                "work_performed",
                "site_left_clean",
                "work_performed",
            ];
            let values = ["pass", "fail", "na", "text answer"];
            r.set_check_str(job, ids[*item], values[*value])
        }
        Op::AddPart { sku, qty } => r
            .add_part(
                job,
                NewPartLine {
                    sku: format!("SKU-{sku}"),
                    qty: *qty as f64,
                    ..Default::default()
                },
            )
            .map(|_| ()),
        Op::SetQty { line: i, qty } => match line(*i) {
            Some(l) => r.set_part_qty(job, &l, *qty as f64),
            None => Ok(()),
        },
        Op::RemovePart { line: i } => match line(*i) {
            Some(l) => r.remove_part(job, &l),
            None => Ok(()),
        },
        Op::Notes(text) => r.set_notes(job, text),
        Op::Status(s) => r.set_status(job, JobStatus::ALL[*s]),
        Op::Sync { .. } => unreachable!(),
    };
}

fn run(replica_count: usize, ops: Vec<(usize, Op)>, merge_order: Vec<(usize, usize)>) {
    let dirs: Vec<_> = (0..replica_count)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut replicas: Vec<Replica> = dirs
        .iter()
        .map(|d| Replica::open(d.path()).unwrap())
        .collect();
    let job = replicas[0]
        .create_job(
            NewJob {
                title: "shared".into(),
                ..Default::default()
            },
            None,
        )
        .unwrap()
        .id;
    for to in 1..replica_count {
        send_all(&mut replicas, 0, to);
    }
    for (who, op) in &ops {
        match op {
            Op::Sync { from, to } => send_all(&mut replicas, *from, *to),
            op => apply(&mut replicas[*who], job, op),
        }
    }
    // Merge in the generated order, then all-to-all so everyone has everything.
    for (from, to) in merge_order {
        send_all(&mut replicas, from % replica_count, to % replica_count);
    }
    for _ in 0..2 {
        for from in 0..replica_count {
            for to in 0..replica_count {
                send_all(&mut replicas, from, to);
            }
        }
    }
    let docs = replicas[0].documents().unwrap();
    let reference: Vec<_> = docs
        .iter()
        .map(|d| replicas[0].document_json(d.id).unwrap())
        .collect();
    for r in replicas.iter_mut() {
        assert_eq!(r.documents().unwrap(), docs);
        let states: Vec<_> = docs
            .iter()
            .map(|d| r.document_json(d.id).unwrap())
            .collect();
        assert_eq!(states, reference);
        let tables = r.query_tables_dump().unwrap();
        r.rebuild_queries().unwrap();
        assert_eq!(r.query_tables_dump().unwrap(), tables);
    }
    let tables = replicas[0].query_tables_dump().unwrap();
    for r in &replicas[1..] {
        assert_eq!(r.query_tables_dump().unwrap(), tables);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn two_replicas_converge(
        ops in proptest::collection::vec(op(2), 1..30),
        order in proptest::collection::vec((0..2usize, 0..2usize), 0..4),
    ) {
        run(2, ops, order);
    }

    #[test]
    fn three_replicas_converge(
        ops in proptest::collection::vec(op(3), 1..40),
        order in proptest::collection::vec((0..3usize, 0..3usize), 0..6),
    ) {
        run(3, ops, order);
    }
}
