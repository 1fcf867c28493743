//! Concurrent application writers: each owns its aggregates and writes their
//! events one transaction at a time, so per-aggregate commit order is id order.

use std::time::Duration;

use tokio_postgres::NoTls;

/// One event as written: its id (text) and aggregate id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub id: String,
    pub aggregate_id: String,
}

/// Writes `per_writer` events from each of `writers` concurrent sessions into
/// the default outbox table, spread over `aggregates_per_writer` aggregates
/// per writer, pausing `pace` between events. Retries through connection
/// loss without writing an event twice (each has a unique `key` in its
/// payload). Returns every event in per-writer order.
pub async fn write(
    url: &str,
    writers: usize,
    per_writer: usize,
    aggregates_per_writer: usize,
    pace: Duration,
) -> Vec<Written> {
    // Keys must differ between calls in one test, or the retry check below
    // would take a later call's events for earlier ones.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut written = Vec::with_capacity(per_writer);
            let mut client = None;
            for i in 0..per_writer {
                let aggregate = format!("w{w}-a{}", i % aggregates_per_writer);
                let key = format!("c{call}-w{w}-{i}");
                let id = loop {
                    if client.is_none() {
                        client = connect(&url).await;
                    }
                    let Some(c) = client.as_ref() else { continue };
                    match insert(c, &aggregate, &key, i).await {
                        Ok(id) => break id,
                        Err(_) => client = None,
                    }
                };
                written.push(Written {
                    id,
                    aggregate_id: aggregate,
                });
                if !pace.is_zero() {
                    tokio::time::sleep(pace).await;
                }
            }
            written
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer task"));
    }
    all
}

async fn connect(url: &str) -> Option<tokio_postgres::Client> {
    match tokio_postgres::connect(url, NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Some(client)
        }
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            None
        }
    }
}

/// Inserts the event unless an earlier attempt already committed it.
async fn insert(
    client: &tokio_postgres::Client,
    aggregate: &str,
    key: &str,
    seq: usize,
) -> Result<String, tokio_postgres::Error> {
    if let Some(row) = client
        .query_opt(
            "SELECT id::text FROM outbox WHERE payload->>'key' = $1",
            &[&key],
        )
        .await?
    {
        return Ok(row.get(0));
    }
    let payload = serde_json::json!({ "key": key, "seq": seq, "aggregate": aggregate });
    let headers = serde_json::json!({ "trace": format!("t-{key}"), "tenant": "acme" });
    let row = client
        .query_one(
            "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) \
             VALUES ('order', $1, 'created', $2::text::jsonb, $3::text::jsonb) RETURNING id::text",
            &[&aggregate, &payload.to_string(), &headers.to_string()],
        )
        .await?;
    Ok(row.get(0))
}

/// Writes `rows` events in one transaction (one INSERT), spread round-robin
/// over `aggregates` aggregates; returns them in id (= commit) order.
pub async fn one_transaction(url: &str, rows: usize, aggregates: usize) -> Vec<Written> {
    let Some(client) = connect(url).await else {
        panic!("connecting to {url}");
    };
    let count = i64::try_from(rows).expect("row count");
    let spread = i64::try_from(aggregates).expect("aggregate count");
    let inserted = client
        .query(
            "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
             SELECT 'order', 'big-a' || (g % $2::int8), 'created', jsonb_build_object('seq', g) \
             FROM generate_series(1, $1::int8) AS g RETURNING id, aggregate_id",
            &[&count, &spread],
        )
        .await
        .expect("one big transaction");
    let mut written: Vec<(i64, String)> = inserted.iter().map(|r| (r.get(0), r.get(1))).collect();
    written.sort();
    written
        .into_iter()
        .map(|(id, aggregate_id)| Written {
            id: id.to_string(),
            aggregate_id,
        })
        .collect()
}
