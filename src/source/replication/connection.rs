//! A replication-mode session (`replication=database`) spoken directly over
//! the wire with `postgres-protocol`'s message codecs, since tokio-postgres
//! cannot stream CopyBoth: startup and authentication (trust, cleartext, md5,
//! SCRAM-SHA-256), simple queries for the replication commands, then the
//! CopyBoth stream of XLogData and keepalives with standby status updates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::config::Host;

use super::pgoutput::{Lsn, PG_EPOCH_OFFSET_MICROS};
use crate::config::PostgresConfig;
use crate::postgres::Conninfo;
use crate::postgres::starttls::{self, Io, StartTlsError};
use crate::postgres::target;
use crate::tls::TlsReport;

/// What can go wrong on a replication session.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("connection string: {0}")]
    Config(String),
    /// TLS could not be set up: refused by the server, or a certificate
    /// that did not verify (the text names the reason).
    #[error("tls: {0}")]
    Tls(#[from] StartTlsError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("connecting to postgres timed out after {0:?}")]
    Timeout(Duration),
    /// An ErrorResponse, shown as [`crate::postgres::describe`] shows one
    /// on a normal session: `message (SQLSTATE); detail: ...; hint: ...`.
    #[error("postgres: {message} ({code}){}{}", suffix("detail", .detail), suffix("hint", .hint))]
    Server {
        code: String,
        message: String,
        detail: Option<String>,
        hint: Option<String>,
    },
    #[error("authentication: {0}")]
    Auth(String),
    #[error("unexpected message from postgres: {0}")]
    Protocol(String),
    #[error("the server closed the replication stream")]
    Closed,
    /// The server logged us in but does not fit `target_session_attrs`
    /// (a standby, read-only).
    #[error("not a {0} server (target_session_attrs={0}): a standby, or read-only")]
    NotTarget(&'static str),
    /// No server of a multi-host connection string would do; each one's
    /// reason, in order.
    #[error("no server of postgres.url would do: {servers}")]
    NoServer {
        servers: String,
        /// The refusal every server answered with, if they all refused
        /// alike (then it is retried like that refusal).
        failure: Option<crate::postgres::ConnectFailure>,
    },
}

/// `; name: text` for a field the server sent, else nothing.
fn suffix(name: &str, text: &Option<String>) -> String {
    text.as_ref()
        .map(|t| format!("; {name}: {t}"))
        .unwrap_or_default()
}

impl ReplicationError {
    /// The SQLSTATE of a server error, for callers that react to some.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ReplicationError::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the server refused the session (and how), or was not
    /// reached; meaningful for the errors of [`ReplicationConnection::connect`].
    pub fn failure(&self) -> crate::postgres::ConnectFailure {
        use crate::postgres::ConnectFailure;
        match self {
            ReplicationError::Tls(StartTlsError::Refused(_) | StartTlsError::Handshake(_)) => {
                ConnectFailure::Tls
            }
            ReplicationError::Config(_) | ReplicationError::Tls(StartTlsError::Config(_)) => {
                ConnectFailure::Settings
            }
            ReplicationError::NoServer {
                failure: Some(failure),
                ..
            } => *failure,
            _ => ConnectFailure::of_sqlstate(self.sqlstate()),
        }
    }
}

/// One message of the CopyBoth stream.
#[derive(Debug)]
pub enum StreamMessage {
    /// WAL data: one pgoutput message starting at `start`.
    XLogData { start: Lsn, end: Lsn, data: Bytes },
    /// The server's position; `reply_requested` asks for a status update now.
    Keepalive { end: Lsn, reply_requested: bool },
}

/// A result row of a simple query, as text.
pub type Row = Vec<Option<String>>;

/// A replication connection.
pub struct ReplicationConnection {
    stream: Box<dyn Io>,
    read: BytesMut,
    write: BytesMut,
    /// What the TLS handshake found; `None` on a plain session.
    pub tls: Option<TlsReport>,
    /// How the server authenticated us.
    pub auth: &'static str,
    /// The `server_version` the server reported at login.
    server_version: Option<String>,
}

/// The session kinds [`ReplicationConnection::open`] opens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Replication,
    /// A normal session that only logs in, for `check`'s report.
    Probe,
}

impl ReplicationConnection {
    /// Connects and authenticates with `replication=database`.
    pub async fn connect(config: &PostgresConfig) -> Result<Self, ReplicationError> {
        Self::open(config, Kind::Replication).await
    }

    /// Logs in on a normal session, as the relay's own sessions do, to
    /// learn what `check` reports: the TLS session and the authentication
    /// method (which tokio-postgres does not tell).
    pub async fn probe(config: &PostgresConfig) -> Result<Self, ReplicationError> {
        Self::open(config, Kind::Probe).await
    }

    /// Tries each server of the connection string in turn, as libpq does,
    /// and settles on the first that logs us in and fits
    /// `target_session_attrs`.
    async fn open(config: &PostgresConfig, kind: Kind) -> Result<Self, ReplicationError> {
        let info = Conninfo::load(config).map_err(ReplicationError::Config)?;
        let candidates = target::candidates(&info.pg).map_err(ReplicationError::Config)?;
        let several = candidates.len() > 1;
        let mut tried = Vec::new();
        let mut refusals = Vec::new();
        for (host, port) in candidates {
            let Host::Tcp(name) = host else {
                return Err(ReplicationError::Config(
                    "unix sockets are not supported for replication; use a TCP host".into(),
                ));
            };
            let at = target::describe_host(&Host::Tcp(name.clone()), port);
            match Self::open_one(config, &info, &name, port, kind).await {
                Ok(conn) => return Ok(conn),
                Err(e) if !several => return Err(e),
                Err(e) => {
                    tracing::debug!(server = %at, error = %e, "postgres server skipped");
                    tried.push(format!("{at}: {e}"));
                    refusals.push(e.failure());
                }
            }
        }
        // Servers that all refused alike keep that cause: it says how to
        // retry (slowly, for a login a rotated secret may fix).
        let failure = refusals
            .first()
            .copied()
            .filter(|f| f.is_refusal() && refusals.iter().all(|other| other == f));
        Err(ReplicationError::NoServer {
            servers: tried.join("; "),
            failure,
        })
    }

    /// One server: connect, TLS, log in, then check it fits
    /// `target_session_attrs`.
    async fn open_one(
        config: &PostgresConfig,
        info: &Conninfo,
        host: &str,
        port: u16,
        kind: Kind,
    ) -> Result<Self, ReplicationError> {
        let pg = &info.pg;
        let user = pg
            .get_user()
            .ok_or_else(|| ReplicationError::Config("no user in postgres.url".into()))?
            .to_owned();
        let dbname = pg.get_dbname().unwrap_or(&user).to_owned();
        let password = pg.get_password().map(<[u8]>::to_vec);

        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| ReplicationError::Timeout(config.connect_timeout))??;
        stream.set_nodelay(true)?;
        let negotiate = starttls::start(stream, host, &info.ssl);
        let (stream, tls) = tokio::time::timeout(config.connect_timeout, negotiate)
            .await
            .map_err(|_| ReplicationError::Timeout(config.connect_timeout))??;
        let mut conn = ReplicationConnection {
            stream,
            read: BytesMut::with_capacity(64 * 1024),
            write: BytesMut::with_capacity(1024),
            tls,
            auth: "none asked (trust, or the client certificate)",
            server_version: None,
        };
        let handshake = conn.startup(&user, &dbname, password.as_deref(), kind);
        tokio::time::timeout(config.connect_timeout, handshake)
            .await
            .map_err(|_| ReplicationError::Timeout(config.connect_timeout))??;
        if let Some((query, unfit)) = info.target.probe() {
            let rows = conn.simple_query(query).await?;
            let answer = rows.first().and_then(|r| r.first().cloned().flatten());
            if answer.as_deref() == Some(unfit) {
                return Err(ReplicationError::NotTarget(info.target.name()));
            }
        }
        Ok(conn)
    }

    async fn startup(
        &mut self,
        user: &str,
        dbname: &str,
        password: Option<&[u8]>,
        kind: Kind,
    ) -> Result<(), ReplicationError> {
        let mut params = vec![("user", user), ("database", dbname)];
        if kind == Kind::Replication {
            params.extend([
                ("replication", "database"),
                ("application_name", "outbox-relay replication"),
                // Timestamps in the stream are then UTC, ISO style.
                ("options", "-c TimeZone=UTC -c DateStyle=ISO"),
            ]);
        } else {
            params.push(("application_name", "outbox-relay check"));
        }
        frontend::startup_message(params, &mut self.write)?;
        self.flush().await?;
        let need_password = || {
            ReplicationError::Auth("the server asks for a password; put it in postgres.url".into())
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.next_frame().await? {
                Frame::Backend(Message::AuthenticationOk) => {}
                Frame::Backend(Message::AuthenticationCleartextPassword) => {
                    self.auth = "password (cleartext)";
                    let pw = password.ok_or_else(need_password)?;
                    frontend::password_message(pw, &mut self.write)?;
                    self.flush().await?;
                }
                Frame::Backend(Message::AuthenticationMd5Password(body)) => {
                    self.auth = "md5";
                    let pw = password.ok_or_else(need_password)?;
                    let hash = md5_hash(user.as_bytes(), pw, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write)?;
                    self.flush().await?;
                }
                Frame::Backend(Message::AuthenticationSasl(body)) => {
                    self.auth = "SCRAM-SHA-256";
                    let pw = password.ok_or_else(need_password)?;
                    let mut mechanisms = body.mechanisms();
                    let mut offered = false;
                    while let Some(m) = mechanisms.next()? {
                        offered |= m == SCRAM_SHA_256;
                    }
                    if !offered {
                        return Err(ReplicationError::Auth(
                            "the server offers no SCRAM-SHA-256".into(),
                        ));
                    }
                    let s = ScramSha256::new(pw, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut self.write)?;
                    self.flush().await?;
                    scram = Some(s);
                }
                Frame::Backend(Message::AuthenticationSaslContinue(body)) => {
                    let s = scram.as_mut().ok_or_else(|| {
                        ReplicationError::Protocol("SASL continue before start".into())
                    })?;
                    s.update(body.data())?;
                    frontend::sasl_response(s.message(), &mut self.write)?;
                    self.flush().await?;
                }
                Frame::Backend(Message::AuthenticationSaslFinal(body)) => {
                    let s = scram.as_mut().ok_or_else(|| {
                        ReplicationError::Protocol("SASL final before start".into())
                    })?;
                    s.finish(body.data())?;
                }
                Frame::Backend(Message::ParameterStatus(body)) => {
                    if body.name()? == "server_version" {
                        self.server_version = Some(body.value()?.to_owned());
                    }
                }
                Frame::Backend(Message::BackendKeyData(_) | Message::NoticeResponse(_)) => {}
                Frame::Backend(Message::ReadyForQuery(_)) => return Ok(()),
                Frame::Backend(Message::ErrorResponse(body)) => return Err(server_error(&body)),
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// Runs a (replication) command and returns its rows as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Row>, ReplicationError> {
        frontend::query(sql, &mut self.write)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.next_frame().await? {
                Frame::Backend(Message::DataRow(body)) => {
                    let buffer = body.buffer();
                    let mut ranges = body.ranges();
                    let mut row = Vec::new();
                    while let Some(range) = ranges.next()? {
                        row.push(range.map(|r| String::from_utf8_lossy(&buffer[r]).into_owned()));
                    }
                    rows.push(row);
                }
                Frame::Backend(Message::ErrorResponse(body)) => error = Some(server_error(&body)),
                Frame::Backend(Message::ReadyForQuery(_)) => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    };
                }
                Frame::Backend(_) => {}
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// Whether pgoutput sends logical messages (`pg_logical_emit_message`):
    /// its `messages` option exists since PostgreSQL 14 (13 refuses it).
    /// True when the server did not say its version.
    pub fn streams_messages(&self) -> bool {
        self.server_version
            .as_deref()
            .and_then(crate::postgres::version::server_major)
            .is_none_or(|major| major >= 14)
    }

    /// Starts streaming `slot` from `start` with pgoutput v1, logical
    /// messages included where the server can ([`Self::streams_messages`]).
    pub async fn start_replication(
        &mut self,
        slot: &str,
        start: Lsn,
        publication: &str,
    ) -> Result<(), ReplicationError> {
        let messages = if self.streams_messages() {
            ", messages 'true'"
        } else {
            ""
        };
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {start} (proto_version '1', publication_names {}{messages})",
            crate::outbox::quote_ident(slot),
            crate::outbox::quote_literal(&crate::outbox::quote_ident(publication)),
        );
        frontend::query(&sql, &mut self.write)?;
        self.flush().await?;
        loop {
            match self.next_frame().await? {
                Frame::CopyBothResponse => return Ok(()),
                Frame::Backend(Message::ErrorResponse(body)) => {
                    let error = server_error(&body);
                    // The ReadyForQuery that follows an error.
                    let _ = self.next_frame().await;
                    return Err(error);
                }
                Frame::Backend(Message::NoticeResponse(_) | Message::ParameterStatus(_)) => {}
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// The next message of the stream. Cancel-safe: a partly read frame stays
    /// buffered.
    pub async fn next_message(&mut self) -> Result<StreamMessage, ReplicationError> {
        loop {
            match self.next_frame().await? {
                Frame::Backend(Message::CopyData(body)) => {
                    let mut data = Bytes::copy_from_slice(body.data());
                    if data.is_empty() {
                        continue;
                    }
                    match data.get_u8() {
                        b'w' if data.remaining() >= 24 => {
                            let start = Lsn(data.get_u64());
                            let end = Lsn(data.get_u64());
                            let _send_time = data.get_i64();
                            return Ok(StreamMessage::XLogData { start, end, data });
                        }
                        b'k' if data.remaining() >= 17 => {
                            let end = Lsn(data.get_u64());
                            let _send_time = data.get_i64();
                            let reply_requested = data.get_u8() == 1;
                            return Ok(StreamMessage::Keepalive {
                                end,
                                reply_requested,
                            });
                        }
                        tag => {
                            return Err(ReplicationError::Protocol(format!(
                                "copy data of kind {:?}",
                                tag as char
                            )));
                        }
                    }
                }
                Frame::Backend(Message::CopyDone) => return Err(ReplicationError::Closed),
                Frame::Backend(Message::ErrorResponse(body)) => return Err(server_error(&body)),
                Frame::Backend(Message::NoticeResponse(_) | Message::ParameterStatus(_)) => {}
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// Tells the server how far WAL is written, flushed (durably handled:
    /// the slot may advance to here) and applied.
    pub async fn send_status(
        &mut self,
        written: Lsn,
        flushed: Lsn,
        reply: bool,
    ) -> Result<(), ReplicationError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0)
            - PG_EPOCH_OFFSET_MICROS;
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        body.put_u64(written.0);
        body.put_u64(flushed.0);
        body.put_u64(flushed.0);
        body.put_i64(now);
        body.put_u8(u8::from(reply));
        self.write.put_u8(b'd');
        self.write.put_i32(4 + body.len() as i32);
        self.write.put_slice(&body);
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), ReplicationError> {
        self.stream.write_all(&self.write).await?;
        self.write.clear();
        Ok(())
    }

    /// Reads one backend frame, framing it ourselves so that messages the
    /// codec does not know (CopyBothResponse) are still understood.
    async fn next_frame(&mut self) -> Result<Frame, ReplicationError> {
        loop {
            if self.read.len() >= 5 {
                let tag = self.read[0];
                let len =
                    i32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]]);
                let total = 1 + usize::try_from(len)
                    .map_err(|_| ReplicationError::Protocol("negative frame length".into()))?;
                if self.read.len() >= total {
                    if tag == b'W' {
                        self.read.advance(total);
                        return Ok(Frame::CopyBothResponse);
                    }
                    return match Message::parse(&mut self.read)? {
                        Some(message) => Ok(Frame::Backend(message)),
                        None => Err(ReplicationError::Protocol("incomplete frame".into())),
                    };
                }
                self.read.reserve(total - self.read.len());
            }
            if self.stream.read_buf(&mut self.read).await? == 0 {
                return Err(ReplicationError::Closed);
            }
        }
    }
}

/// A backend message, or one the codec has no variant for.
enum Frame {
    Backend(Message),
    CopyBothResponse,
}

fn server_error(body: &postgres_protocol::message::backend::ErrorResponseBody) -> ReplicationError {
    let mut code = String::new();
    let mut message = String::new();
    let mut detail = None;
    let mut hint = None;
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        let text = || String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'C' => code = text(),
            b'M' => message = text(),
            b'D' => detail = Some(text()),
            b'H' => hint = Some(text()),
            _ => {}
        }
    }
    ReplicationError::Server {
        code,
        message,
        detail,
        hint,
    }
}

fn unexpected(frame: &Frame) -> ReplicationError {
    let what = match frame {
        Frame::CopyBothResponse => "CopyBothResponse".to_owned(),
        Frame::Backend(m) => format!("{:?}", std::mem::discriminant(m)),
    };
    ReplicationError::Protocol(what)
}
