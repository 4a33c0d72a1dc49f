//! The layer's counters reach the recorder the application installs, even
//! one installed after the layer was built (the handles are registered on
//! first use). Its own test binary: the recorder is process-wide.

mod common;

use axum::http::StatusCode;
use common::{app, cookie_pair, send};
use metrics_exporter_prometheus::PrometheusBuilder;

fn counter(rendered: &str, name: &str) -> u64 {
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn store_calls_are_counted_by_a_recorder_installed_after_the_layer() {
    let app = app(|layer| layer);
    let recorder = PrometheusBuilder::new().install_recorder().unwrap();
    let created = send(&app, "POST", "/set/x/1", None).await;
    assert_eq!(created.status(), StatusCode::OK);
    let cookie = cookie_pair(&created).unwrap();
    for value in 2..=4 {
        let uri = format!("/set/x/{value}");
        let written = send(&app, "POST", &uri, Some(&cookie)).await;
        assert_eq!(written.status(), StatusCode::OK);
    }
    let logout = send(&app, "POST", "/logout", Some(&cookie)).await;
    assert_eq!(logout.status(), StatusCode::OK);

    let rendered = recorder.render();
    assert_eq!(counter(&rendered, "session_creates_total"), 1, "{rendered}");
    assert_eq!(counter(&rendered, "session_writes_total"), 3, "{rendered}");
    // The three writes loaded first; the logout deletes without a load.
    assert_eq!(counter(&rendered, "session_loads_total"), 3, "{rendered}");
    assert_eq!(counter(&rendered, "session_deletes_total"), 1, "{rendered}");
}
