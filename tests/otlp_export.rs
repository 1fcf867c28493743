//! The relay binary with `tracing.enabled` exports its spans over OTLP/HTTP
//! (protobuf) to `tracing.endpoint`, `/v1/traces` appended, and flushes the
//! last of them when SIGTERM stops it.

mod support;

use std::time::Duration;

use support::collector::Collector;
use support::relay::toml_str;
use support::setup::Setup;
use support::spans::ROW_TRACE_ID;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_otlp_endpoint_and_are_flushed_on_exit() {
    let collector = Collector::start();
    let mut setup = Setup::new(10).await;
    setup
        .config
        .set("tracing", "enabled", "true")
        .set("tracing", "endpoint", &toml_str(&collector.url))
        .set("tracing", "service_name", "\"outbox-relay-otlp-test\"");
    let mut relay = setup.start_relay().await;

    setup.db.psql(&format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) \
         VALUES ('order', '1', 'paid', '{{}}', \
         '{{\"traceparent\": \"00-{ROW_TRACE_ID}-00f067aa0ba902b7-01\"}}')"
    ));
    support::eventually(Duration::from_secs(30), "the row marked", || async {
        setup.db.unsent().await == 0
    })
    .await;
    // The exporter's batch is due only after 5 s; stopping must send it.
    let status = tokio::task::spawn_blocking(move || relay.sigterm(Duration::from_secs(20)))
        .await
        .expect("waiter");
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit: {status:?}"
    );

    let trace_id: Vec<u8> = (0..ROW_TRACE_ID.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&ROW_TRACE_ID[i..i + 2], 16).expect("hex"))
        .collect();
    let export = collector.wait_for(Duration::from_secs(5), |r| {
        r.body.windows(trace_id.len()).any(|w| w == trace_id)
    });
    assert_eq!(export.line, "POST /v1/traces HTTP/1.1");
    assert_eq!(
        export.header("content-type"),
        Some("application/x-protobuf")
    );
    let service = b"outbox-relay-otlp-test";
    assert!(
        export.body.windows(service.len()).any(|w| w == service),
        "the export names the service"
    );
    setup.queue.delete().await;
}
