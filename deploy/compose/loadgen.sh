#!/usr/bin/env bash
# The compose stack's stand-in application: writes events into both demo
# outboxes every second (a few dozen), a burst every five minutes (so the
# throughput and backlog panels move), and every POISON_EVERY seconds one
# order event with an empty event_type, whose routing key cannot be
# rendered: the relay dead-letters it (0 turns that off).
set -euo pipefail

POISON_EVERY="${POISON_EVERY:-600}"
second=0
while true; do
    second=$((second + 1))
    orders=$((RANDOM % 40 + 1))
    payments=$((RANDOM % 20 + 1))
    if ((second % 300 == 0)); then
        orders=20000
        payments=10000
    fi
    poison=""
    if ((POISON_EVERY > 0 && second % POISON_EVERY == 0)); then
        poison="INSERT INTO orders_outbox (aggregate_type, aggregate_id, event_type, payload)
                VALUES ('order', 'order-poison', '', '{}');"
    fi
    psql -Xq -v ON_ERROR_STOP=1 -c "
        INSERT INTO orders_outbox (aggregate_type, aggregate_id, event_type, payload, headers)
        SELECT 'order', 'order-' || (random() * 1000)::int,
               (ARRAY['created', 'paid', 'shipped'])[1 + floor(random() * 3)::int],
               jsonb_build_object('amount', round((random() * 100)::numeric, 2)),
               '{\"source\": \"loadgen\"}'
        FROM generate_series(1, $orders);
        INSERT INTO payments_outbox (aggregate_type, aggregate_id, event_type, payload)
        SELECT 'payment', 'payment-' || (random() * 1000)::int,
               (ARRAY['authorized', 'captured'])[1 + floor(random() * 2)::int],
               jsonb_build_object('amount', round((random() * 100)::numeric, 2))
        FROM generate_series(1, $payments);
        $poison"
    sleep 1
done
