//! The log is complete: replaying its diffs from nothing rebuilds every record exactly.

use std::collections::BTreeMap;

use keeptrack::{
    domain::{
        audit::Action,
        diff,
        record::{Fields, RecordKind},
    },
    ledger::{Command, Context},
    store,
};
use serde_json::{Value, json};

use crate::both;

/// xorshift: a seeded sequence, so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn random_history(app: &crate::helpers::TestApp, seed: u64, steps: usize) -> usize {
    let mut applied = 0;
    let mut rng = Rng(seed);
    let mut clients: Vec<i64> = Vec::new();
    let cities = ["Akron", "Kent", "", "Canton"];
    for _ in 0..steps {
        let actor = Context::user(if rng.below(2) == 0 {
            app.manager
        } else {
            app.owner
        })
        .with_reason("Tidying records");
        let command = match (rng.below(6), clients.len()) {
            (_, 0) | (0, _) => Command::Create {
                kind: RecordKind::Client,
                fields: crate::helpers::fields(json!({"last_name": format!("L{}", rng.below(50)),
                    "city": cities[rng.below(4) as usize]})),
            },
            (1, n) => Command::Delete {
                kind: RecordKind::Client,
                id: clients[rng.below(n as u64) as usize],
                expected_version: None,
            },
            (2, n) => Command::Restore {
                kind: RecordKind::Client,
                id: clients[rng.below(n as u64) as usize],
            },
            (_, n) => Command::Update {
                kind: RecordKind::Client,
                id: clients[rng.below(n as u64) as usize],
                fields: crate::helpers::fields(json!({
                    "city": cities[rng.below(4) as usize],
                    "email": if rng.below(3) == 0 { Value::Null } else { json!(format!("c{}@x.com", rng.below(9))) },
                    "do_not_market": rng.below(2) == 0,
                })),
                expected_version: None,
            },
        };
        // Some of these are refused (deleting a deleted client): that is part of the test.
        if let Ok(out) = app.submit(actor, command).await {
            applied += usize::from(out.changed);
            if let Some(r) = out.record
                && !clients.contains(&r.id)
            {
                clients.push(r.id);
            }
        }
    }
    applied
}

both!(replaying_the_log_rebuilds_every_record, |app| {
    for seed in [1, 7, 42, 1234] {
        let applied = random_history(&app, seed, 60).await;
        assert!(
            applied > 25,
            "seed {seed}: only {applied} of 60 commands changed anything"
        );
    }
    let page = keeptrack::audit::list(
        &app.db,
        &keeptrack::audit::Query {
            record_type: Some(RecordKind::Client),
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut rebuilt: BTreeMap<i64, (Fields, bool)> = BTreeMap::new();
    for entry in page.entries.iter().rev() {
        let id = entry.rec.as_ref().unwrap().id;
        let state = rebuilt.entry(id).or_insert_with(|| (Fields::new(), false));
        diff::apply(&mut state.0, &entry.diff);
        match entry.act {
            Action::Delete => state.1 = true,
            Action::Restore => state.1 = false,
            _ => {}
        }
    }
    let stored = store::records::list(&app.db, RecordKind::Client, 0, 10_000, true)
        .await
        .unwrap();
    assert!(stored.len() > 20, "the history should make many clients");
    assert_eq!(rebuilt.len(), stored.len());
    for record in stored {
        let (fields, deleted) = &rebuilt[&record.id];
        assert_eq!(fields, &record.fields, "client {}", record.id);
        assert_eq!(*deleted, record.is_deleted(), "client {}", record.id);
    }
});
