//! End-to-end tests: a real axum server on 127.0.0.1:0 and a reqwest client
//! with a cookie store, as a browser would use it.

mod common;

use std::sync::Arc;

use common::{app, TestApp};
use reqwest::Client;

/// Serves `app` on an ephemeral port; returns its base URL.
async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

fn browser() -> Client {
    Client::builder().cookie_store(true).build().unwrap()
}

async fn call(client: &Client, method: reqwest::Method, url: String) -> (u16, String) {
    let response = client.request(method, url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn counter_increments_across_requests() {
    let app = app(|l| l);
    let base = serve(&app).await;
    let client = browser();
    for expected in 1..=5 {
        let (status, body) = call(&client, reqwest::Method::POST, format!("{base}/incr")).await;
        assert_eq!((status, body), (200, expected.to_string()));
    }
    assert_eq!(app.store.inner.len(), 1, "one client, one session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_different_keys_both_survive() {
    let app = app(|l| l);
    let base = serve(&app).await;
    let client = Arc::new(browser());
    call(&client, reqwest::Method::POST, format!("{base}/set/seed/1")).await;
    // Both requests load the same version, meet at a barrier, then write:
    // a whole-record store would keep only one of the two keys.
    let a = tokio::spawn({
        let (client, base) = (client.clone(), base.clone());
        async move {
            call(
                &client,
                reqwest::Method::POST,
                format!("{base}/overlap/a/1"),
            )
            .await
        }
    });
    let b = tokio::spawn({
        let (client, base) = (client.clone(), base.clone());
        async move {
            call(
                &client,
                reqwest::Method::POST,
                format!("{base}/overlap/b/2"),
            )
            .await
        }
    });
    assert_eq!(a.await.unwrap().0, 200);
    assert_eq!(b.await.unwrap().0, 200);
    for (key, value) in [("seed", "1"), ("a", "1"), ("b", "2")] {
        let (_, body) = call(&client, reqwest::Method::GET, format!("{base}/get/{key}")).await;
        assert_eq!(body, value, "key {key} lost");
    }
}

#[tokio::test]
async fn login_rotates_and_logout_destroys() {
    let app = app(|l| l);
    let base = serve(&app).await;
    let client = browser();
    call(&client, reqwest::Method::POST, format!("{base}/set/cart/3")).await;
    let (_, before) = call(&client, reqwest::Method::GET, format!("{base}/id")).await;
    let (_, after) = call(&client, reqwest::Method::POST, format!("{base}/login")).await;
    assert_ne!(before, after);
    let (_, cart) = call(&client, reqwest::Method::GET, format!("{base}/get/cart")).await;
    assert_eq!(cart, "3", "login kept the data");
    let (_, user) = call(&client, reqwest::Method::GET, format!("{base}/get/user")).await;
    assert_eq!(user, "alice");

    call(&client, reqwest::Method::POST, format!("{base}/logout")).await;
    let (_, user) = call(&client, reqwest::Method::GET, format!("{base}/get/user")).await;
    assert_eq!(user, "none");
    assert!(app.store.inner.is_empty());
}

#[tokio::test]
async fn garbage_cookie_over_the_wire_is_a_fresh_session() {
    let app = app(|l| l);
    let base = serve(&app).await;
    let client = Client::new();
    let response = client
        .post(format!("{base}/incr"))
        .header("cookie", "sid=AAAA~~~%ZZ; other=1; sid=")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_some());
    assert_eq!(response.text().await.unwrap(), "1");
}
