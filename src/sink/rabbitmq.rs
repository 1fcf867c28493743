//! The RabbitMQ sink: persistent, mandatory publishes on a confirm-mode
//! channel. A batch is published whole, then its confirmations are awaited in
//! order, so the broker works on many messages per round trip. Each
//! message is built and checked by [`message`] first.

mod connect;
mod message;

pub use connect::{login_summary, tls_report};

use std::collections::HashSet;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, Connection, ExchangeKind};

use self::message::{Limits, Route};
use super::template::Template;
use super::trace::{Destination, PublishSpan};
use super::{PublishFailure, Sink, SinkError, dead_letter_copy};
use crate::classify::{Disposition, amqp};
use crate::config::RabbitMqConfig;
use crate::event::OutboxEvent;
use crate::metrics::{Component, metrics};
use crate::sink::EventError;

/// Publishes to RabbitMQ; reconnects on its own after an error.
pub struct RabbitMqSink {
    config: RabbitMqConfig,
    exchange: Template,
    routing_key: Template,
    /// Where copies of dead letters go, if anywhere.
    dead_letter_exchange: Option<Template>,
    dead_letter_routing_key: Template,
    link: Option<Link>,
    ever_connected: bool,
}

/// One connection with its confirm-mode channel.
struct Link {
    connection: Connection,
    channel: Channel,
    /// Exchanges declared on this connection (with `declare_exchange`).
    declared: HashSet<String>,
    /// Follows the broker's `connection.blocked`/`unblocked` (a memory or
    /// disk alarm) into the metrics and `/readyz`.
    alarms: tokio::task::JoinHandle<()>,
}

impl Link {
    /// What one message on this connection may weigh.
    fn limits(&self, max_message_bytes: usize) -> Limits {
        Limits {
            max_message_bytes,
            frame_max: self.connection.configuration().frame_max(),
        }
    }
}

impl RabbitMqSink {
    /// Builds the sink; the templates were checked by config validation.
    pub fn new(config: &RabbitMqConfig) -> Result<Self, SinkError> {
        let template = |text: &str| {
            Template::parse(text).map_err(|e| SinkError::Connect(format!("template: {e}")))
        };
        Ok(RabbitMqSink {
            exchange: template(&config.exchange)?,
            routing_key: template(&config.routing_key)?,
            dead_letter_exchange: match config.dead_letter_exchange.as_str() {
                "" => None,
                text => Some(template(text)?),
            },
            dead_letter_routing_key: template(&config.dead_letter_routing_key)?,
            config: config.clone(),
            link: None,
            ever_connected: false,
        })
    }

    async fn link(&mut self) -> Result<&mut Link, SinkError> {
        if self.link.is_none() {
            let link = self.open().await?;
            if self.ever_connected {
                metrics().reconnects.with_label_values(&["broker"]).inc();
                tracing::info!("reconnected to rabbitmq");
            }
            self.ever_connected = true;
            metrics().set_connected(Component::Broker, true);
            self.link = Some(link);
        }
        self.link
            .as_mut()
            .ok_or_else(|| SinkError::Connection("no connection".into()))
    }

    async fn open(&self) -> Result<Link, SinkError> {
        let connect = connect::open(&self.config);
        let connection = tokio::time::timeout(self.config.confirm_timeout, connect)
            .await
            .map_err(|_| {
                SinkError::Connect(format!(
                    "{} did not answer within {:?}",
                    self.config.url, self.config.confirm_timeout
                ))
            })?
            .map_err(SinkError::Connect)?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| SinkError::Connect(format!("opening a channel: {e}")))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| SinkError::Connect(format!("enabling publisher confirms: {e}")))?;
        let alarms = tokio::spawn(watch_alarms(connection.events_listener()));
        Ok(Link {
            connection,
            channel,
            declared: HashSet::new(),
            alarms,
        })
    }

    /// For `check`: connects, then makes sure a fixed exchange exists (or
    /// will be declared). Returns what it found, for printing.
    pub async fn probe(&mut self) -> Result<String, SinkError> {
        let url = self.config.url.redacted();
        let declare = self.config.declare_exchange;
        let kind = exchange_kind(&self.config.exchange_type);
        let fixed = self.exchange.fixed().map(str::to_owned);
        let link = self.link().await?;
        let exchange = match fixed {
            None => "exchange is a template; not checked".to_owned(),
            Some(name) if declare => format!("exchange `{name}` will be declared"),
            Some(name) if name.is_empty() => "default exchange".to_owned(),
            Some(name) => {
                let options = ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                };
                link.channel
                    .exchange_declare(name.as_str().into(), kind, options, FieldTable::default())
                    .await
                    .map_err(|e| {
                        SinkError::Connect(format!(
                            "exchange `{name}` is missing ({e}); create it or set sink.rabbitmq.declare_exchange = true"
                        ))
                    })?;
                format!("exchange `{name}` exists")
            }
        };
        Ok(format!("connected to {url}; {exchange}"))
    }

    /// Forgets a broken connection; the next publish opens a new one.
    fn drop_link(&mut self) {
        if let Some(link) = self.link.take() {
            metrics().set_connected(Component::Broker, false);
            link.alarms.abort();
            metrics().set_broker_blocked(None);
            tokio::spawn(async move {
                let close = link.connection.close(0, "reconnecting".into());
                let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
            });
        }
    }

    async fn declare(&mut self, event: &OutboxEvent, exchange: &str) -> Result<(), SinkError> {
        let kind = exchange_kind(&self.config.exchange_type);
        let shared = self.exchange.fixed().is_some();
        let link = self.link().await?;
        if link.declared.contains(exchange) {
            return Ok(());
        }
        let declared = link
            .channel
            .exchange_declare(
                exchange.into(),
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(()) => {
                link.declared.insert(exchange.to_owned());
                Ok(())
            }
            Err(e) => {
                // The broker closed the channel; the next publish reopens it.
                self.drop_link();
                Err(declare_error(event, exchange, shared, e))
            }
        }
    }

    async fn publish_all(&mut self, events: &[OutboxEvent]) -> Result<(), PublishFailure> {
        let fail = |confirmed, error| PublishFailure { confirmed, error };
        // Connect once per batch; the channel handle is cheap to clone.
        let max_message_bytes = self.config.max_message_bytes;
        let shared = self.exchange.fixed().is_some();
        let (channel, limits) = match self.link().await {
            Ok(link) => (link.channel.clone(), link.limits(max_message_bytes)),
            Err(e) => return Err(fail(0, e)),
        };
        let mut pending = Vec::with_capacity(events.len());
        let mut send_error = None;
        for event in events {
            let route = match self.route(event, &limits) {
                Ok(route) => route,
                Err(e) => {
                    send_error = Some(e.rejecting(event));
                    break;
                }
            };
            let (exchange, routing_key) = (
                route.exchange.as_str().to_owned(),
                route.routing_key.as_str().to_owned(),
            );
            if self.config.declare_exchange
                && let Err(e) = self.declare(event, &exchange).await
            {
                send_error = Some(e);
                break;
            }
            let span = PublishSpan::start(
                event,
                Destination::RabbitMq {
                    exchange: &exchange,
                    routing_key: &routing_key,
                },
            );
            let trace = span.as_ref().map(PublishSpan::headers);
            let message = match message::build(event, route, trace, &limits) {
                Ok(message) => message,
                Err(e) => {
                    let error = e.rejecting(event);
                    if let Some(span) = &span {
                        span.fail(&error);
                    }
                    send_error = Some(error);
                    break;
                }
            };
            let sent = channel
                .basic_publish(
                    message.route.exchange,
                    message.route.routing_key,
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &event.payload,
                    message.properties,
                )
                .await;
            match sent {
                Ok(confirm) => pending.push((confirm, exchange, routing_key, span)),
                Err(e) => {
                    let error = SinkError::Connection(e.to_string());
                    if let Some(span) = &span {
                        span.fail(&error);
                    }
                    send_error = Some(error);
                    break;
                }
            }
        }

        let sent = pending.len();
        let deadline = tokio::time::Instant::now() + self.config.confirm_timeout;
        for (index, (confirm, exchange, routing_key, span)) in pending.into_iter().enumerate() {
            let event = &events[index];
            let error = match tokio::time::timeout_at(deadline, confirm).await {
                Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => continue,
                Err(_) => {
                    self.drop_link();
                    SinkError::ConfirmTimeout(self.config.confirm_timeout)
                }
                Ok(Err(e)) => {
                    self.drop_link();
                    confirm_error(event, &exchange, shared, e)
                }
                Ok(Ok(Confirmation::Ack(Some(returned)))) => SinkError::Unroutable {
                    event_id: event.id.clone(),
                    exchange,
                    routing_key,
                    reply: format!("{} {}", returned.reply_code, returned.reply_text),
                },
                Ok(Ok(Confirmation::Nack(_))) => SinkError::Nacked {
                    event_id: event.id.clone(),
                },
            };
            if let Some(span) = &span {
                span.fail(&error);
            }
            return Err(fail(index, error));
        }
        match send_error {
            None => Ok(()),
            Some(error) => {
                // A refused event leaves the channel usable; a send error
                // does not.
                if error.disposition() == Disposition::Retry {
                    self.drop_link();
                }
                // Every event sent before the error was confirmed, or the
                // loop above would have returned.
                Err(fail(sent, error))
            }
        }
    }
}

impl RabbitMqSink {
    /// The exchange and routing key for `event`, or why it cannot be sent
    /// (an oversized payload is named first).
    fn route(&self, event: &OutboxEvent, limits: &Limits) -> Result<Route, EventError> {
        message::check_payload(event, limits)?;
        Route::render(event, &self.exchange, &self.routing_key)
    }
}

/// What a failed declaration of an exchange means. One named from the row
/// that the broker refuses (`amq.` is reserved: ACCESS_REFUSED; an existing
/// exchange of another type: PRECONDITION_FAILED) is the event's fault. The
/// configured exchange without placeholders (`shared`) is every event's:
/// its failing is the setup's, retried until fixed, like the path's.
fn declare_error(
    event: &OutboxEvent,
    exchange: &str,
    shared: bool,
    error: lapin::Error,
) -> SinkError {
    let detail = format!("declaring exchange `{exchange}`: {error}");
    match amqp::classify(&error) {
        Disposition::DeadLetter if !shared => SinkError::Rejected {
            event_id: event.id.clone(),
            reason: amqp::reason(&error),
            detail,
        },
        _ => SinkError::Connection(detail),
    }
}

/// What a failed confirm means: the broker closing the channel over this
/// message (see [`amqp::classify_for_exchange`]; `shared`: the exchange is
/// every event's) or a broken path.
fn confirm_error(
    event: &OutboxEvent,
    exchange: &str,
    shared: bool,
    error: lapin::Error,
) -> SinkError {
    match amqp::classify_for_exchange(&error, shared) {
        Disposition::DeadLetter => SinkError::Rejected {
            event_id: event.id.clone(),
            reason: amqp::reason(&error),
            detail: format!("exchange `{exchange}`: {error}"),
        },
        Disposition::Retry | Disposition::Stop => SinkError::Connection(error.to_string()),
    }
}

impl Sink for RabbitMqSink {
    fn label(&self) -> &'static str {
        "rabbitmq"
    }

    async fn connect(&mut self) -> Result<(), SinkError> {
        self.link().await?;
        Ok(())
    }

    async fn publish(&mut self, events: &[OutboxEvent]) -> Result<(), PublishFailure> {
        self.publish_all(events).await
    }

    fn reset(&mut self) {
        self.drop_link();
    }

    async fn publish_dead_letter(
        &mut self,
        event: &OutboxEvent,
        reason: &str,
        error: &str,
    ) -> Result<(), SinkError> {
        let Some(exchange) = &self.dead_letter_exchange else {
            return Ok(());
        };
        let copy = dead_letter_copy(event, reason, error);
        let route = dead_letter_route(&copy, exchange, &self.dead_letter_routing_key)
            .map_err(|e| e.rejecting(event))?;
        let exchange = route.exchange.as_str().to_owned();
        // The copy carries the event whole, even the oversized one; the
        // broker's own max_message_size still applies.
        let (channel, limits) = {
            let link = self.link().await?;
            (link.channel.clone(), link.limits(usize::MAX))
        };
        // A copy that cannot be built is not sent; the table has the event.
        let message =
            message::build(&copy, route, None, &limits).map_err(|e| e.rejecting(event))?;
        let confirm = channel
            .basic_publish(
                message.route.exchange,
                message.route.routing_key,
                BasicPublishOptions::default(),
                &copy.payload,
                message.properties,
            )
            .await
            .map_err(|e| SinkError::Connection(e.to_string()))?;
        match tokio::time::timeout(self.config.confirm_timeout, confirm).await {
            Ok(Ok(Confirmation::Nack(_))) => Err(SinkError::Nacked {
                event_id: event.id.clone(),
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                self.drop_link();
                Err(confirm_error(event, &exchange, false, e))
            }
            Err(_) => {
                self.drop_link();
                Err(SinkError::ConfirmTimeout(self.config.confirm_timeout))
            }
        }
    }
}

/// Mirrors RabbitMQ's blocking of the connection (publishes wait while a
/// memory or disk alarm lasts) into the metrics, until the connection ends.
async fn watch_alarms(events: impl futures_util::Stream<Item = lapin::Event>) {
    use futures_util::StreamExt;
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            lapin::Event::ConnectionBlocked(reason) => {
                tracing::warn!(%reason, "rabbitmq blocked the connection: publishing waits until the alarm clears");
                metrics().set_broker_blocked(Some(&reason));
            }
            lapin::Event::ConnectionUnblocked => {
                tracing::info!("rabbitmq unblocked the connection");
                metrics().set_broker_blocked(None);
            }
            _ => {}
        }
    }
    metrics().set_broker_blocked(None);
}

fn exchange_kind(name: &str) -> ExchangeKind {
    match name {
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "headers" => ExchangeKind::Headers,
        "topic" => ExchangeKind::Topic,
        other => ExchangeKind::Custom(other.to_owned()),
    }
}

/// Where the copy of a dead letter goes. Its exchange must render; a
/// routing key that cannot render from the row (the reason it may have
/// been dead-lettered) or is longer than AMQP allows is empty.
fn dead_letter_route(
    copy: &OutboxEvent,
    exchange: &Template,
    routing_key: &Template,
) -> Result<Route, EventError> {
    let empty = Template::parse("").map_err(|e| EventError::template("routing key", e))?;
    Route::render(copy, exchange, routing_key).or_else(|_| Route::render(copy, exchange, &empty))
}
