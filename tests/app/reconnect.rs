//! PostgreSQL: connections the server dropped while idle are replaced, not handed to a
//! request (pools check only a connection idle for a second or more).

use std::time::Duration;

use keeptrack::{domain::record::RecordKind, store};
use serde_json::json;
use sqlx::Connection;

use crate::helpers::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_dropped_are_replaced() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let client = app.client("Smith").await;
    let store::Db::Postgres(pool) = &app.db else {
        unreachable!("PostgreSQL only")
    };
    // Every connection of the readers' pool idle, and the writer's, then every one of
    // them ends, as at a server restart.
    let size = pool.options().get_max_connections();
    let mut held = Vec::new();
    for _ in 0..size {
        held.push(pool.acquire().await.unwrap());
    }
    drop(held);
    let mut admin = sqlx::PgConnection::connect(&app.url).await.unwrap();
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(ended > i64::from(size), "{ended}");
    tokio::time::sleep(Duration::from_millis(1200)).await;

    for _ in 0..20 {
        let read = store::records::get(&app.db, RecordKind::Client, client.id).await;
        assert_eq!(read.unwrap().unwrap().id, client.id);
    }
    let changed = app
        .update(RecordKind::Client, client.id, json!({"email": "new@x.com"}))
        .await
        .unwrap();
    assert_eq!(changed.record.unwrap().fields["email"], "new@x.com");
}
