//! The privileges the relay needs for the configured mode, in one list that
//! `check` (a FAIL line per missing grant), `run` (a warning per missing
//! grant at start) and `migrate --grant-to ROLE` (the GRANT statements)
//! share. The README's "Least privilege" section is this list in prose.
//!
//! Each privilege is checked the way Postgres checks it when the statement
//! runs: SELECT on every column of the outbox (the dead-letter copy reads
//! the whole row), UPDATE on the `sent_at` column for the mark, UPDATE on
//! any column for `SELECT ... FOR UPDATE`, the REPLICATION attribute (or
//! membership in RDS's `rds_replication`) for a replication connection.

use tokio_postgres::GenericClient;

use crate::config::{Config, MarkMode, SourceMode};
use crate::outbox::TableName;
use crate::source::replication::publication::{self, Found};

/// An object a privilege is held on.
#[derive(Debug, Clone)]
pub enum Object {
    /// The database the relay connects to.
    Database,
    /// A schema, by name.
    Schema(String),
    /// A table. `relay_creates`: the relay creates it when missing, if it
    /// has CREATE on the schema (otherwise `migrate` must have).
    Table {
        name: TableName,
        relay_creates: bool,
    },
    /// The sequence behind a serial or identity column (its default).
    Sequence { table: TableName, column: String },
    /// The role itself (its REPLICATION attribute).
    Role,
}

/// A privilege on an [`Object`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privilege {
    /// CONNECT on the database.
    Connect,
    /// USAGE on a schema or a sequence.
    Usage,
    /// SELECT on every column of a table.
    Select,
    /// INSERT on a table.
    Insert,
    /// UPDATE on a whole table.
    Update,
    /// DELETE on a table.
    Delete,
    /// UPDATE on this column (a grant on the whole table includes it).
    UpdateColumn(String),
    /// UPDATE on any column, which `SELECT ... FOR UPDATE` needs to lock a
    /// row; the suggested grant names this column.
    LockRows(String),
    /// The REPLICATION role attribute (or `rds_replication` on RDS/Aurora).
    Replication,
}

/// One privilege the relay needs, and what for.
#[derive(Debug, Clone)]
pub struct Need {
    /// Where it is held.
    pub object: Object,
    /// What is held.
    pub privilege: Privilege,
    /// What the relay does with it, starting with "to".
    pub why: &'static str,
}

/// Why the privileges could not be inspected or granted.
#[derive(Debug, thiserror::Error)]
pub enum GrantsError {
    /// A table name in the configuration does not parse.
    #[error("{0}")]
    Config(String),
    /// The role to inspect or grant to does not exist.
    #[error("role `{0}` does not exist (CREATE ROLE {0} LOGIN PASSWORD '...' first)")]
    NoRole(String),
    /// A catalog query or a GRANT failed.
    #[error("{}", crate::postgres::describe(.0))]
    Query(#[from] tokio_postgres::Error),
}

/// The privileges `run` needs with `config`, in the order `check` reports
/// them. Operator commands (`dead-letters retry`, `replay`) need more: see
/// the README.
pub fn needs(config: &Config) -> Result<Vec<Need>, GrantsError> {
    let outbox = TableName::parse(&config.outbox.table).map_err(GrantsError::Config)?;
    let dead_letters = crate::dead_letters::table_name(config).map_err(GrantsError::Config)?;
    let schema = outbox.schema_or_public().to_owned();
    let relay_table = |name: &str| Object::Table {
        name: TableName {
            schema: Some(schema.clone()),
            name: name.to_owned(),
        },
        relay_creates: true,
    };
    let table = |name: &TableName| Object::Table {
        name: name.clone(),
        relay_creates: false,
    };
    let need = |object: Object, privilege: Privilege, why: &'static str| Need {
        object,
        privilege,
        why,
    };
    let replication = config.source.mode == SourceMode::Replication;
    let columns = &config.outbox.columns;

    let mut needs = vec![need(Object::Database, Privilege::Connect, "to log in")];
    if replication {
        needs.push(need(
            Object::Role,
            Privilege::Replication,
            "to create and stream from the replication slot",
        ));
    }
    needs.push(need(
        Object::Schema(schema.clone()),
        Privilege::Usage,
        "to reach the outbox and the relay's tables",
    ));
    if dead_letters.schema_or_public() != schema {
        needs.push(need(
            Object::Schema(dead_letters.schema_or_public().to_owned()),
            Privilege::Usage,
            "to reach the dead-letter table",
        ));
    }
    needs.push(need(
        table(&outbox),
        Privilege::Select,
        "to read events (the dead-letter copy reads the whole row)",
    ));
    match config.outbox.mark {
        MarkMode::Update => needs.push(need(
            table(&outbox),
            Privilege::UpdateColumn(columns.sent_at.clone()),
            "to lock the rows it claims (FOR UPDATE) and mark them sent",
        )),
        MarkMode::Delete => {
            needs.push(need(
                table(&outbox),
                Privilege::LockRows(columns.id.clone()),
                "to lock the rows it claims (FOR UPDATE needs UPDATE on a column; none is updated)",
            ));
            needs.push(need(
                table(&outbox),
                Privilege::Delete,
                "to delete rows once the broker confirmed them",
            ));
        }
        MarkMode::None => needs.push(need(
            table(&outbox),
            Privilege::LockRows(columns.id.clone()),
            "to lock rows in the one-time pass over rows older than the slot (FOR UPDATE)",
        )),
    }
    for privilege in [Privilege::Insert, Privilege::Select, Privilege::Update] {
        needs.push(need(
            table(&dead_letters),
            privilege,
            "to record events the broker can never take",
        ));
    }
    needs.push(need(
        Object::Sequence {
            table: dead_letters.clone(),
            column: "id".into(),
        },
        Privilege::Usage,
        "to number dead letters",
    ));
    if config.dead_letters.max_crashes > 0 {
        for privilege in [
            Privilege::Select,
            Privilege::Insert,
            Privilege::Update,
            Privilege::Delete,
        ] {
            needs.push(need(
                relay_table("outbox_relay_crash_guard"),
                privilege,
                "to keep the crash guard's record (dead_letters.max_crashes)",
            ));
        }
    }
    let retention = &config.retention;
    if (retention.sent_after.is_some() && config.outbox.mark == MarkMode::Update)
        || retention.streamed_after.is_some()
    {
        needs.push(need(
            table(&outbox),
            Privilege::Delete,
            "to delete rows past the retention window (retention.sent_after / streamed_after)",
        ));
    }
    if retention.dead_letters_retried_after.is_some() {
        needs.push(need(
            table(&dead_letters),
            Privilege::Delete,
            "to delete retried dead letters (retention.dead_letters_retried_after)",
        ));
    }
    if replication {
        for (privilege, why) in [
            (Privilege::Select, "to resume where the last run got"),
            (Privilege::Insert, "to record the slot it creates"),
            (Privilege::Update, "to record its confirmed position"),
            (Privilege::Delete, "to forget a lost slot (recover-slot)"),
        ] {
            needs.push(need(relay_table("outbox_relay_slots"), privilege, why));
        }
    }
    Ok(needs)
}

/// One need as found on the server.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The need.
    pub need: Need,
    /// The object as SQL names it, quoted only where needed (`app.outbox`).
    pub object: String,
    /// The privilege as GRANT spells it (`UPDATE (sent_at)`).
    pub privilege: String,
    /// What the server says.
    pub state: State,
}

/// Whether a need is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The role holds the privilege.
    Held,
    /// The object exists; the role lacks the privilege.
    Missing,
    /// The object does not exist. `creatable`: the relay creates it at
    /// start (it is one of the relay's own tables and the role has CREATE
    /// on its schema).
    Absent { creatable: bool },
}

/// What [`inspect`] found for one role.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The role, as SQL names it.
    pub role: String,
    /// Superusers hold every privilege.
    pub superuser: bool,
    /// One per applicable need, in the order of [`needs`].
    pub findings: Vec<Finding>,
}

impl Finding {
    /// Whether this need stands in the way of `run`.
    pub fn is_problem(&self) -> bool {
        matches!(
            self.state,
            State::Missing | State::Absent { creatable: false }
        )
    }

    /// The statement that gives `role` the privilege (`ALTER ROLE` for the
    /// REPLICATION attribute); `None` for an object that does not exist.
    pub fn fix(&self, role: &str) -> Option<String> {
        let object = &self.object;
        let privilege = &self.privilege;
        if matches!(self.state, State::Absent { .. }) {
            return None;
        }
        Some(match &self.need.object {
            Object::Database => format!("GRANT {privilege} ON DATABASE {object} TO {role}"),
            Object::Schema(_) => format!("GRANT {privilege} ON SCHEMA {object} TO {role}"),
            Object::Table { .. } => format!("GRANT {privilege} ON {object} TO {role}"),
            Object::Sequence { .. } => format!("GRANT {privilege} ON SEQUENCE {object} TO {role}"),
            Object::Role => format!("ALTER ROLE {role} REPLICATION"),
        })
    }

    /// The privilege and its object in words (`UPDATE (sent_at) on
    /// app.outbox`, `USAGE on schema app`, `the REPLICATION attribute`).
    pub fn what(&self) -> String {
        let object = &self.object;
        let privilege = match &self.need.privilege {
            Privilege::LockRows(_) => "UPDATE on any column".to_owned(),
            _ => self.privilege.clone(),
        };
        match &self.need.object {
            Object::Database => format!("{privilege} on database {object}"),
            Object::Schema(_) => format!("{privilege} on schema {object}"),
            Object::Table { .. } if matches!(self.need.privilege, Privilege::LockRows(_)) => {
                format!("{privilege} of {object}")
            }
            Object::Table { .. } => format!("{privilege} on {object}"),
            Object::Sequence { .. } => format!("{privilege} on sequence {object}"),
            Object::Role => "the REPLICATION attribute".to_owned(),
        }
    }

    /// The sentence `check` prints and `run` logs for a problem.
    pub fn problem(&self, role: &str) -> String {
        let why = self.need.why;
        match (&self.state, self.fix(role)) {
            (State::Absent { .. }, _) => format!(
                "{} does not exist and {role} may not create it, needed {why} (run `outbox-relay \
                 migrate` as the tables' owner)",
                self.object
            ),
            (_, Some(fix)) if self.need.object_is_role() => format!(
                "{role} lacks {}, needed {why} ({fix}; on RDS and Aurora: GRANT rds_replication \
                 TO {role})",
                self.what()
            ),
            (_, fix) => format!(
                "{role} lacks {}, needed {why} ({})",
                self.what(),
                fix.unwrap_or_default()
            ),
        }
    }
}

impl Need {
    fn object_is_role(&self) -> bool {
        matches!(self.object, Object::Role)
    }
}

impl Inspection {
    /// The problems, in order.
    pub fn problems(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.is_problem())
    }

    /// What `check` prints when nothing is missing: the privileges held,
    /// grouped by object.
    pub fn summary(&self, config: &Config) -> String {
        let mode = match config.source.mode {
            SourceMode::Polling => "polling",
            SourceMode::Replication => "replication",
        };
        let mark = match config.outbox.mark {
            MarkMode::Update => "update",
            MarkMode::Delete => "delete",
            MarkMode::None => "none",
        };
        if self.superuser {
            return format!(
                "{} is a superuser; {mode} (mark = \"{mark}\") needs much less (README: Least privilege)",
                self.role
            );
        }
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for finding in &self.findings {
            let (key, item) = match (&finding.need.object, finding.state) {
                (_, State::Absent { .. }) => (
                    format!("{} (the relay creates it)", finding.object),
                    String::new(),
                ),
                (Object::Role, _) => ("REPLICATION".to_owned(), String::new()),
                (Object::Database, _) => (
                    format!("database {}", finding.object),
                    finding.privilege.clone(),
                ),
                (Object::Schema(_), _) => (
                    format!("schema {}", finding.object),
                    finding.privilege.clone(),
                ),
                (Object::Sequence { .. }, _) => (
                    format!("sequence {}", finding.object),
                    finding.privilege.clone(),
                ),
                (Object::Table { .. }, _) => (finding.object.clone(), finding.privilege.clone()),
            };
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, items)) => items.push(item),
                None => groups.push((key, vec![item])),
            }
        }
        let held: Vec<String> = groups
            .into_iter()
            .map(|(key, items)| {
                let items: Vec<String> = items.into_iter().filter(|i| !i.is_empty()).collect();
                if items.is_empty() {
                    key
                } else {
                    format!("{} on {key}", items.join(", "))
                }
            })
            .collect();
        format!(
            "{} has what {mode} (mark = \"{mark}\") needs: {}",
            self.role,
            held.join("; ")
        )
    }
}

/// Checks every need of `config` for `role` (a role name as stored, not
/// quoted) on the server `client` is connected to.
pub async fn inspect(
    client: &impl GenericClient,
    config: &Config,
    role: &str,
) -> Result<Inspection, GrantsError> {
    let found = client
        .query_opt(
            "SELECT quote_ident(rolname), rolsuper FROM pg_roles WHERE rolname = $1",
            &[&role],
        )
        .await?
        .ok_or_else(|| GrantsError::NoRole(role.to_owned()))?;
    let mut findings = Vec::new();
    for need in needs(config)? {
        if let Some(finding) = find(client, role, need).await? {
            findings.push(finding);
        }
    }
    Ok(Inspection {
        role: found.try_get(0)?,
        superuser: found.try_get(1)?,
        findings,
    })
}

/// The inspection of the session's own role (`current_user`).
pub async fn inspect_self(
    client: &impl GenericClient,
    config: &Config,
) -> Result<Inspection, GrantsError> {
    let role: String = client
        .query_one("SELECT current_user::text", &[])
        .await?
        .try_get(0)?;
    inspect(client, config, &role).await
}

/// Whether the session's role may open a replication connection and
/// create slots: REPLICATION, superuser, or (RDS, Aurora) a member of
/// `rds_replication`.
pub async fn can_replicate(client: &impl GenericClient) -> Result<bool, tokio_postgres::Error> {
    client
        .query_one(&replication_sql("current_user"), &[])
        .await?
        .try_get(0)
}

/// Whether the role `role` (an SQL expression) may replicate.
fn replication_sql(role: &str) -> String {
    format!(
        "SELECT coalesce((SELECT r.rolsuper OR r.rolreplication OR \
           CASE WHEN to_regrole('rds_replication') IS NULL THEN false \
           ELSE pg_has_role(r.oid, to_regrole('rds_replication'), 'MEMBER') END \
         FROM pg_roles r WHERE r.rolname = {role}), false)"
    )
}

/// Looks one need up; `None` when it does not apply (a table without a
/// sequence behind its id, a sequence of a table that does not exist).
async fn find(
    client: &impl GenericClient,
    role: &str,
    need: Need,
) -> Result<Option<Finding>, GrantsError> {
    let finding = |object: String, privilege: String, state: State, need: Need| {
        Ok(Some(Finding {
            need,
            object,
            privilege,
            state,
        }))
    };
    let label = privilege_label(client, &need.privilege).await?;
    match &need.object {
        Object::Role => {
            let held: bool = client
                .query_one(&replication_sql("$1::text"), &[&role])
                .await?
                .try_get(0)?;
            let state = if held { State::Held } else { State::Missing };
            finding(String::new(), label, state, need)
        }
        Object::Database => {
            let row = client
                .query_one(
                    "SELECT quote_ident(current_database()), \
                     has_database_privilege($1::text::name, current_database(), 'CONNECT')",
                    &[&role],
                )
                .await?;
            let state = held(row.try_get(1)?);
            finding(row.try_get(0)?, label, state, need)
        }
        Object::Schema(name) => {
            let row = client
                .query_one(
                    "SELECT quote_ident($2), (SELECT has_schema_privilege($1::text::name, n.oid, 'USAGE') \
                     FROM pg_namespace n WHERE n.nspname = $2)",
                    &[&role, name],
                )
                .await?;
            let state = match row.try_get::<_, Option<bool>>(1)? {
                None => State::Absent { creatable: false },
                Some(h) => held(h),
            };
            finding(row.try_get(0)?, label, state, need)
        }
        Object::Table {
            name,
            relay_creates,
        } => {
            let (object, oid) = table(client, name).await?;
            let Some(oid) = oid else {
                let creatable = *relay_creates
                    && client
                        .query_one(
                            "SELECT coalesce((SELECT has_schema_privilege($1::text::name, n.oid, 'CREATE') \
                             FROM pg_namespace n WHERE n.nspname = $2), false)",
                            &[&role, &name.schema_or_public()],
                        )
                        .await?
                        .try_get::<_, bool>(0)?;
                return finding(object, label, State::Absent { creatable }, need);
            };
            let sql = match &need.privilege {
                Privilege::Select => {
                    "SELECT NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = $2::oid \
                     AND a.attnum > 0 AND NOT a.attisdropped \
                     AND NOT has_column_privilege($1::text::name, a.attrelid, a.attnum, $3::text))"
                }
                Privilege::UpdateColumn(_) => {
                    "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = $2::oid \
                       AND a.attname = $3::text AND a.attnum > 0 AND NOT a.attisdropped) \
                     THEN has_column_privilege($1::text::name, $2::oid, $3::text, 'UPDATE') \
                     ELSE has_table_privilege($1::text::name, $2::oid, 'UPDATE') END"
                }
                Privilege::LockRows(_) => {
                    "SELECT has_any_column_privilege($1::text::name, $2::oid, $3::text)"
                }
                _ => "SELECT has_table_privilege($1::text::name, $2::oid, $3::text)",
            };
            // The column for UpdateColumn, the privilege's name otherwise.
            let argument = match &need.privilege {
                Privilege::UpdateColumn(column) => column.clone(),
                other => table_privilege(other).to_owned(),
            };
            let state = held(
                client
                    .query_one(sql, &[&role, &oid, &argument])
                    .await?
                    .try_get(0)?,
            );
            finding(object, label, state, need)
        }
        Object::Sequence { table: t, column } => {
            let (_, oid) = table(client, t).await?;
            let Some(oid) = oid else { return Ok(None) };
            // The sequence a serial or identity column depends on, found the
            // way pg_get_serial_sequence does, without parsing names (which
            // fails without USAGE on the schema).
            let row = client
                .query_opt(
                    "SELECT quote_ident(sn.nspname) || '.' || quote_ident(s.relname), \
                       has_sequence_privilege($1::text::name, s.oid, 'USAGE') \
                     FROM pg_attribute a \
                     JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass \
                       AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum \
                       AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
                     JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
                     JOIN pg_namespace sn ON sn.oid = s.relnamespace \
                     WHERE a.attrelid = $2::oid AND a.attname = $3::text AND NOT a.attisdropped \
                     LIMIT 1",
                    &[&role, &oid, column],
                )
                .await?;
            let Some(row) = row else { return Ok(None) };
            let state = held(row.try_get(1)?);
            finding(row.try_get(0)?, label, state, need)
        }
    }
}

fn held(held: bool) -> State {
    if held { State::Held } else { State::Missing }
}

/// A table's name as SQL writes it, and its oid if it exists. Looked up
/// in the catalog by name: `to_regclass` fails without USAGE on the schema,
/// which is one of the privileges to report.
async fn table(
    client: &impl GenericClient,
    name: &TableName,
) -> Result<(String, Option<u32>), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT quote_ident($1) || '.' || quote_ident($2), (SELECT c.oid FROM pg_class c \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname = $1 AND c.relname = $2)",
            &[&name.schema_or_public(), &name.name],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// The privilege as GRANT spells it, column names quoted by the server.
async fn privilege_label(
    client: &impl GenericClient,
    privilege: &Privilege,
) -> Result<String, tokio_postgres::Error> {
    Ok(match privilege {
        Privilege::Connect => "CONNECT".into(),
        Privilege::Usage => "USAGE".into(),
        Privilege::Replication => "REPLICATION".into(),
        Privilege::UpdateColumn(column) | Privilege::LockRows(column) => {
            let quoted: String = client
                .query_one("SELECT quote_ident($1)", &[column])
                .await?
                .try_get(0)?;
            format!("UPDATE ({quoted})")
        }
        other => table_privilege(other).into(),
    })
}

fn table_privilege(privilege: &Privilege) -> &'static str {
    match privilege {
        Privilege::Select => "SELECT",
        Privilege::Insert => "INSERT",
        Privilege::Delete => "DELETE",
        _ => "UPDATE",
    }
}

/// The `publication` line of `check` (replication mode): whether the
/// publication exists and publishes the outbox, or the relay may create it.
pub async fn publication_report(
    client: &impl GenericClient,
    config: &Config,
) -> Result<(bool, String), GrantsError> {
    let table = TableName::parse(&config.outbox.table).map_err(GrantsError::Config)?;
    let name = &config.source.replication.publication;
    let (object, _) = self::table(client, &table).await?;
    Ok(match publication::find(client, name, &table).await? {
        Found::Covers => (true, format!("`{name}` publishes {object}")),
        Found::Elsewhere => (
            false,
            format!(
                "`{name}` exists but does not publish {object} (ALTER PUBLICATION {} ADD TABLE \
                 {object}, as the table's owner)",
                crate::outbox::quote_ident(name)
            ),
        ),
        Found::Missing if !config.source.replication.create => (
            false,
            format!(
                "`{name}` does not exist and source.replication.create is false (run \
                 `outbox-relay migrate` as the owner of {object})"
            ),
        ),
        Found::Missing if publication::may_create(client, &table).await? => (
            true,
            format!("`{name}` does not exist yet; the relay creates it for {object}"),
        ),
        Found::Missing => (
            false,
            format!(
                "`{name}` does not exist and the relay may not create it (CREATE PUBLICATION \
                 needs ownership of {object} and CREATE on the database): run `outbox-relay \
                 migrate` as the owner of {object}"
            ),
        ),
    })
}

/// `migrate --grant-to ROLE`: grants `role` every privilege of [`needs`]
/// it lacks, on a session of the privileged role (the tables' owner).
/// Returns one line per grant made or impossible.
pub async fn grant_to(
    client: &impl GenericClient,
    config: &Config,
    role: &str,
) -> Result<Vec<String>, GrantsError> {
    let before = inspect(client, config, role).await?;
    let target = before.role.clone();
    let mut lines = Vec::new();
    let mut granted = Vec::new();
    for finding in before.problems() {
        match (&finding.need.object, finding.fix(&target)) {
            (Object::Role, _) => lines.push(format!(
                "not granted: {target} lacks the REPLICATION attribute, which only a superuser \
                 gives: ALTER ROLE {target} REPLICATION (RDS, Aurora: GRANT rds_replication TO \
                 {target}; Cloud SQL: ALTER ROLE as a cloudsqlsuperuser member; Azure: as an \
                 azure_pg_admin member)"
            )),
            (_, Some(fix)) => {
                client.batch_execute(&fix).await?;
                granted.push(fix);
            }
            (_, None) => lines.push(format!(
                "not granted: {} does not exist, needed {}",
                finding.object, finding.need.why
            )),
        }
    }
    // A GRANT by a role without the grant option only warns: look again.
    let after = inspect(client, config, role).await?;
    for fix in granted {
        let still = after
            .problems()
            .any(|f| f.fix(&target).as_deref() == Some(fix.as_str()));
        lines.push(if still {
            format!(
                "not granted: {fix} (needs the object's owner or the grant option; run it as them)"
            )
        } else {
            format!("granted: {fix}")
        });
    }
    if lines.is_empty() {
        lines.push(format!("{target} already has every privilege it needs"));
    }
    Ok(lines)
}

/// At the start of `run`: logs each missing privilege once, at `warn`,
/// with the statement that fixes it. The relay goes on (a grant may
/// arrive later); the statement that needs it fails naming the object.
pub async fn log_missing(config: Config) {
    let inspected = async {
        let client = crate::postgres::connect(&config.postgres, "grants", None)
            .await
            .map_err(|e| e.to_string())?;
        inspect_self(&client, &config)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(30), inspected).await {
        Ok(Ok(inspection)) => {
            for finding in inspection.problems() {
                tracing::warn!("missing privilege: {}", finding.problem(&inspection.role));
            }
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "checking privileges failed"),
        Err(_) => tracing::debug!("checking privileges timed out"),
    }
}

/// `check`'s lines: one `grants` FAIL per missing privilege (or one ok
/// line), and in replication mode the `publication` line.
pub async fn check_lines(
    client: &impl GenericClient,
    config: &Config,
) -> Vec<(bool, &'static str, String)> {
    let mut lines = Vec::new();
    match inspect_self(client, config).await {
        Err(e) => lines.push((false, "grants", format!("could not check: {e}"))),
        Ok(inspection) => {
            let problems: Vec<String> = inspection
                .problems()
                .map(|f| f.problem(&inspection.role))
                .collect();
            if problems.is_empty() {
                lines.push((true, "grants", inspection.summary(config)));
            }
            lines.extend(problems.into_iter().map(|p| (false, "grants", p)));
        }
    }
    if config.source.mode == SourceMode::Replication {
        lines.push(match publication_report(client, config).await {
            Ok((ok, detail)) => (ok, "publication", detail),
            Err(e) => (false, "publication", format!("could not check: {e}")),
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(config: &Config) -> Vec<(String, Privilege)> {
        needs(config)
            .expect("valid names")
            .into_iter()
            .map(|n| {
                let object = match n.object {
                    Object::Database => "database".to_owned(),
                    Object::Schema(s) => format!("schema {s}"),
                    Object::Table { name, .. } => name.name,
                    Object::Sequence { table, column } => {
                        format!("{}.{column} sequence", table.name)
                    }
                    Object::Role => "role".to_owned(),
                };
                (object, n.privilege)
            })
            .collect()
    }

    #[test]
    fn each_mode_needs_its_own_privileges() {
        let mut config = Config::default();
        let polling = list(&config);
        assert!(polling.contains(&("outbox".into(), Privilege::UpdateColumn("sent_at".into()))));
        assert!(!polling.contains(&("outbox".into(), Privilege::Delete)));
        assert!(
            !polling
                .iter()
                .any(|(o, _)| o == "role" || o == "outbox_relay_slots")
        );
        assert!(polling.contains(&("outbox_dead_letters.id sequence".into(), Privilege::Usage)));
        assert!(!polling.contains(&("outbox_dead_letters".into(), Privilege::Delete)));

        config.outbox.mark = MarkMode::Delete;
        let delete = list(&config);
        assert!(delete.contains(&("outbox".into(), Privilege::Delete)));
        assert!(delete.contains(&("outbox".into(), Privilege::LockRows("id".into()))));

        config.source.mode = SourceMode::Replication;
        config.outbox.mark = MarkMode::None;
        config.dead_letters.max_crashes = 0;
        let replication = list(&config);
        assert!(replication.contains(&("role".into(), Privilege::Replication)));
        assert!(replication.contains(&("outbox_relay_slots".into(), Privilege::Update)));
        assert!(replication.contains(&("outbox".into(), Privilege::LockRows("id".into()))));
        assert!(
            !replication
                .iter()
                .any(|(o, _)| o == "outbox_relay_crash_guard")
        );
    }
}
