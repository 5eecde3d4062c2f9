//! The tamper matrix (integrity.md §3) for what a log without signed checkpoints can
//! catch by itself: each attack at the first, a middle and the last entry, by SQL with
//! the guard triggers removed. Every one must be found, with the right kind and index.

use keeptrack::{
    audit::verify::{Anchors, Damage, Report, verify},
    domain::record::RecordKind,
    store::Db,
};

use crate::both;
use crate::helpers::{TestApp, clients_at_once, drop_guards, exec, verify_now};

async fn entry_bytes(db: &Db, idx: i64) -> Vec<u8> {
    keeptrack::store::audit_log::rows(db, idx, idx + 1, 1)
        .await
        .unwrap()
        .remove(0)
        .bytes
}

async fn set_bytes(db: &Db, idx: i64, bytes: Vec<u8>) {
    let sql = "UPDATE audit_log SET entry = $1 WHERE idx = $2";
    match db {
        Db::Sqlite(p, _) => sqlx::query(sql)
            .bind(bytes)
            .bind(idx)
            .execute(p)
            .await
            .map(|_| ()),
        Db::Postgres(p) => sqlx::query(sql)
            .bind(bytes)
            .bind(idx)
            .execute(p)
            .await
            .map(|_| ()),
    }
    .unwrap();
}

/// A studio with some history, its guards removed, and the indices to attack.
async fn studio(app: &TestApp) -> [i64; 3] {
    for n in 0..6 {
        app.client(&format!("Client{n}")).await;
    }
    drop_guards(&app.db).await;
    let size = app.log_size().await;
    [0, size / 2, size - 1]
}

fn first(report: &Report) -> Option<(Damage, Option<i64>)> {
    report.findings.first().map(|f| (f.damage, f.index))
}

both!(an_untouched_log_verifies, |app| {
    studio(&app).await;
    let report = verify_now(&app.db).await;
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(report.entries, app.log_size().await);
    // Without signed checkpoints, verify says so (exit 3), never plain "ok".
    assert_eq!(report.exit_code(), 3);
    assert!(report.warnings.iter().any(|w| w.starts_with("UNANCHORED")));
});

#[derive(Clone, Copy, Debug)]
enum Attack {
    EditColumn,
    EditBytes,
    DeleteRow,
    SwapWithNext,
    DeleteTailAndFixHeadSize,
    AppendForgedRow,
}

/// Carries out an attack on entry `idx`; returns the damage and index verify must report.
async fn attack(db: &Db, attack: Attack, idx: i64, size: i64) -> (Damage, Option<i64>) {
    match attack {
        Attack::EditColumn => {
            exec(
                db,
                &format!("UPDATE audit_log SET actor_id = 999 WHERE idx = {idx}"),
            )
            .await;
            (Damage::Edited, Some(idx))
        }
        Attack::EditBytes => {
            let text = String::from_utf8(entry_bytes(db, idx).await).unwrap();
            let forged = text.replacen("\"act\":\"", "\"act\":\"x", 1);
            assert_ne!(text, forged);
            set_bytes(db, idx, forged.into_bytes()).await;
            (Damage::Edited, Some(idx))
        }
        Attack::DeleteRow => {
            exec(db, &format!("DELETE FROM audit_log WHERE idx = {idx}")).await;
            let last = idx == size - 1;
            (
                if last {
                    Damage::Truncated
                } else {
                    Damage::Missing
                },
                Some(idx),
            )
        }
        Attack::SwapWithNext => {
            // The last entry swaps with the one before it.
            let (a, b) = if idx == size - 1 {
                (idx - 1, idx)
            } else {
                (idx, idx + 1)
            };
            exec(
                db,
                &format!("UPDATE audit_log SET idx = -1 WHERE idx = {a}"),
            )
            .await;
            exec(
                db,
                &format!("UPDATE audit_log SET idx = {a} WHERE idx = {b}"),
            )
            .await;
            exec(
                db,
                &format!("UPDATE audit_log SET idx = {b} WHERE idx = -1"),
            )
            .await;
            (Damage::Reordered, Some(a))
        }
        Attack::DeleteTailAndFixHeadSize => {
            exec(db, &format!("DELETE FROM audit_log WHERE idx >= {idx}")).await;
            exec(
                db,
                &format!("UPDATE log_head SET size = {idx} WHERE id = 1"),
            )
            .await;
            // The head's root still commits to the longer log. (Fixing the root as well
            // needs a signed checkpoint kept off the machine to catch.)
            (Damage::Rewritten, None)
        }
        Attack::AppendForgedRow => {
            let bytes = entry_bytes(db, idx).await;
            let sql = "INSERT INTO audit_log (idx, ts, category, action, actor_kind, actor_id, \
                       record_type, record_id, entry, leaf_hash) \
                       SELECT $1, ts, category, action, actor_kind, actor_id, record_type, record_id, \
                       $2, leaf_hash FROM audit_log WHERE idx = $3";
            match db {
                Db::Sqlite(p, _) => sqlx::query(sql)
                    .bind(size)
                    .bind(bytes)
                    .bind(idx)
                    .execute(p)
                    .await
                    .map(|_| ()),
                Db::Postgres(p) => sqlx::query(sql)
                    .bind(size)
                    .bind(bytes)
                    .bind(idx)
                    .execute(p)
                    .await
                    .map(|_| ()),
            }
            .unwrap();
            (Damage::Inserted, Some(size))
        }
    }
}

both!(
    every_attack_at_the_first_a_middle_and_the_last_entry_is_found,
    |app| {
        let attacks = [
            Attack::EditColumn,
            Attack::EditBytes,
            Attack::DeleteRow,
            Attack::SwapWithNext,
            Attack::DeleteTailAndFixHeadSize,
            Attack::AppendForgedRow,
        ];
        let mut tried = 0;
        for a in attacks {
            for position in 0..3 {
                let victim = app.same_backend().await;
                let targets = studio(&victim).await;
                let size = victim.log_size().await;
                let idx = targets[position];
                if matches!(a, Attack::DeleteTailAndFixHeadSize) && idx == 0 {
                    continue; // an empty log has nothing left to check
                }
                let expected = attack(&victim.db, a, idx, size).await;
                let report = verify(
                    &victim.db,
                    Anchors::default(),
                    keeptrack::clock::now(),
                    |_, _| {},
                )
                .await
                .unwrap();
                assert_eq!(first(&report), Some(expected), "{a:?} at {idx}: {report:?}");
                assert_eq!(report.exit_code(), 1);
                tried += 1;
            }
        }
        assert_eq!(tried, 17);
    }
);

both!(a_bent_record_link_or_a_stale_head_is_found, |app| {
    studio(&app).await;
    let id = app.client("Linked").await.id;
    for n in 0..3 {
        let email = serde_json::json!({"email": format!("l{n}@example.com")});
        app.update(RecordKind::Client, id, email).await.unwrap();
    }
    let entries = keeptrack::store::audit_log::query(
        &app.db,
        &keeptrack::store::audit_log::Filter {
            record_type: Some("client".into()),
            record_id: Some(id),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let idxs: Vec<i64> = entries.iter().map(|e| e.idx).collect();
    assert_eq!(idxs.len(), 4, "the client's chain: {idxs:?}");
    let (newest, middle) = (idxs[0], idxs[1]);
    // A link that skips an entry hides it from history.
    exec(
        &app.db,
        &format!(
            "UPDATE audit_log SET prev_idx = {} WHERE idx = {newest}",
            idxs[2]
        ),
    )
    .await;
    let report = verify_now(&app.db).await;
    assert_eq!(
        first(&report),
        Some((Damage::Edited, Some(newest))),
        "{report:?}"
    );
    assert!(
        report.findings[0].detail.contains("record link"),
        "{report:?}"
    );
    exec(
        &app.db,
        &format!("UPDATE audit_log SET prev_idx = {middle} WHERE idx = {newest}"),
    )
    .await;
    assert!(verify_now(&app.db).await.findings.is_empty());
    // A head set back hides what came after it.
    let set_back = match app.db {
        Db::Sqlite(_, _) => format!("UPDATE clients SET audit_head = {middle} WHERE id = {id}"),
        Db::Postgres(_) => format!(
            "UPDATE audit_heads SET head = {middle} WHERE record_id = {id} \
             AND record_type = 'client'"
        ),
    };
    exec(&app.db, &set_back).await;
    let report = verify_now(&app.db).await;
    assert_eq!(first(&report), Some((Damage::Edited, None)), "{report:?}");
    assert!(
        report.findings[0]
            .detail
            .contains(&format!("head of client {id}")),
        "{report:?}"
    );
});

/// A log long enough to have a stored tree node (the first completes at leaf
/// 2^`LOWEST_STORED` − 1), its guards removed.
async fn long_log(app: &TestApp) {
    let stored = 1 << keeptrack::store::audit_log::LOWEST_STORED;
    clients_at_once(&app.ledger, app.staff, stored).await;
    drop_guards(&app.db).await;
}

both!(a_deleted_or_forged_tree_node_is_found_at_its_entry, |app| {
    long_log(&app).await;
    let level = keeptrack::store::audit_log::LOWEST_STORED;
    let leaf = (1i64 << level) - 1;
    exec(
        &app.db,
        &format!("DELETE FROM audit_tree WHERE level = {level} AND leaf = {leaf}"),
    )
    .await;
    let report = verify_now(&app.db).await;
    assert_eq!(
        first(&report),
        Some((Damage::Missing, Some(leaf))),
        "{report:?}"
    );
    assert!(
        report.findings[0]
            .detail
            .contains(&format!("tree node {level}/0 is missing"))
    );

    let forged = match app.db {
        Db::Sqlite(_, _) => format!("X'{}'", "ab".repeat(32)),
        Db::Postgres(_) => format!("'\\x{}'::bytea", "ab".repeat(32)),
    };
    exec(
        &app.db,
        &format!("INSERT INTO audit_tree (leaf, level, hash) VALUES ({leaf}, {level}, {forged})"),
    )
    .await;
    let report = verify_now(&app.db).await;
    assert_eq!(
        first(&report),
        Some((Damage::Rewritten, Some(leaf))),
        "{report:?}"
    );
});

both!(
    a_node_under_the_stored_levels_is_computed_and_checked,
    |app| {
        let [_, middle, _] = studio(&app).await;
        // No node under `LOWEST_STORED` is stored: the tree's lower levels come from the
        // leaf hashes, so a proof built from them fails as soon as one of those changes.
        let stored = keeptrack::store::audit_log::nodes_in_range(&app.db, 0, u64::MAX).await;
        assert_eq!(stored.unwrap(), vec![]);
        let forged = match app.db {
            Db::Sqlite(_, _) => format!("X'{}'", "ab".repeat(32)),
            Db::Postgres(_) => format!("'\\x{}'::bytea", "ab".repeat(32)),
        };
        let k = middle / 2;
        let ids = [(1u8, k as u64)];
        let before = keeptrack::store::audit_log::nodes(&app.db, &ids)
            .await
            .unwrap();
        assert_eq!(
            before.len(),
            1,
            "node 1/{k} is computed from its two leaves"
        );
        exec(
            &app.db,
            &format!(
                "UPDATE audit_log SET leaf_hash = {forged} WHERE idx = {}",
                2 * k
            ),
        )
        .await;
        let after = keeptrack::store::audit_log::nodes(&app.db, &ids)
            .await
            .unwrap();
        assert_ne!(after, before);
        // And verify finds the leaf hash that no longer matches its entry's bytes.
        let report = verify_now(&app.db).await;
        assert_eq!(first(&report).map(|f| f.1), Some(Some(2 * k)), "{report:?}");
    }
);

both!(a_tree_row_under_a_key_no_node_has_stops_verify, |app| {
    let [_, middle, _] = studio(&app).await;
    // Leaf 2k completes no node at level 1 (node 1/k ends at leaf 2k+1): a row there is
    // no node of the tree, and verify says so rather than reading it as one.
    let leaf = middle / 2 * 2;
    let forged = match app.db {
        Db::Sqlite(_, _) => format!("X'{}'", "ab".repeat(32)),
        Db::Postgres(_) => format!("'\\x{}'::bytea", "ab".repeat(32)),
    };
    exec(
        &app.db,
        &format!("INSERT INTO audit_tree (leaf, level, hash) VALUES ({leaf}, 1, {forged})"),
    )
    .await;
    let error = keeptrack::audit::verify::verify(
        &app.db,
        keeptrack::audit::verify::Anchors::default(),
        keeptrack::clock::now(),
        |_, _| {},
    )
    .await
    .expect_err("a row that is no node of the tree");
    assert!(
        error.to_string().contains(&format!(
            "tree node at leaf {leaf}, level 1 ends no subtree"
        )),
        "{error}"
    );
});
