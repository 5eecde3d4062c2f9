//! JSON reads through the router, without a socket.

use axum::{body::Body, http::Request};
use http_body_util::BodyExt;
use keeptrack::{domain::record::RecordKind, web};
use serde_json::Value;
use tower::ServiceExt;

use crate::both;

async fn get(app: &crate::helpers::TestApp, path: &str) -> (u16, String, Value) {
    let router = web::router(web::AppState {
        ledger: app.ledger.clone(),
    });
    let response = router
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

both!(records_read_as_json, |app| {
    let client = app.client("Smith").await;
    let (status, _, body) = get(&app, &format!("/api/v1/clients/{}", client.id)).await;
    assert_eq!(status, 200);
    assert_eq!(body["label"], "Client #1001 Jane Smith");
    assert_eq!(body["version"], 1);
    assert_eq!(body["email"], "jane@example.com");
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    let (status, _, body) = get(&app, &format!("/api/v1/users/{}", app.owner)).await;
    assert_eq!(status, 200);
    assert!(body.get("password_hash").is_none());
    let _ = RecordKind::User;

    for path in [
        "/api/v1/clients/999999",
        "/api/v1/clients/abc",
        "/api/v1/spaceships/1",
    ] {
        let (status, content_type, body) = get(&app, path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["status"], 404);
    }
    let invoice = app.invoice(client.id).await;
    let (_, _, body) = get(&app, &format!("/api/v1/invoices/{}", invoice.id)).await;
    assert_eq!(body["label"], "Invoice #10001");
    assert_eq!(body["totals"]["total_cents"], 5000);
    let (status, _, body) = get(&app, "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
});
