//! The publication the replication source reads the outbox's inserts
//! through. `CREATE PUBLICATION ... FOR TABLE` takes ownership of the table
//! (and CREATE on the database), which a least-privilege relay role does
//! not have: `migrate`, run by the table's owner, creates it, and the relay
//! only creates it when it may.

use tokio_postgres::GenericClient;

use crate::outbox::{TableName, quote_ident};

/// The oid of the table named by the parameters `schema` and `name` (`$2`),
/// looked up in the catalog: `to_regclass` fails without USAGE on the schema.
fn table_oid(schema: &str, name: &str) -> String {
    format!(
        "(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = {schema} AND c.relname = {name})"
    )
}

/// What the server says about the configured publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// It exists and publishes the outbox table (listed, or `FOR ALL TABLES`).
    Covers,
    /// It exists but does not publish the outbox table.
    Elsewhere,
    /// There is no publication of that name.
    Missing,
}

/// `CREATE PUBLICATION name FOR TABLE table WITH (publish = 'insert')`: the
/// relay only ever needs the inserts.
pub fn create_sql(name: &str, table: &TableName) -> String {
    format!(
        "CREATE PUBLICATION {} FOR TABLE {table} WITH (publish = 'insert')",
        quote_ident(name)
    )
}

/// Whether publication `name` exists and publishes `table`.
pub async fn find(
    client: &impl GenericClient,
    name: &str,
    table: &TableName,
) -> Result<Found, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "SELECT p.puballtables OR EXISTS (SELECT 1 FROM pg_publication_rel r \
                   WHERE r.prpubid = p.oid AND r.prrelid = {}) \
                 FROM pg_publication p WHERE p.pubname = $1",
                table_oid("$2", "$3")
            ),
            &[&name, &table.schema_or_public(), &table.name],
        )
        .await?;
    Ok(match row {
        None => Found::Missing,
        Some(row) if row.try_get::<_, bool>(0)? => Found::Covers,
        Some(_) => Found::Elsewhere,
    })
}

/// Whether the current user may create a publication for `table`: it owns
/// the table (is a member of its owner role) and has CREATE on the database.
pub async fn may_create(
    client: &impl GenericClient,
    table: &TableName,
) -> Result<bool, tokio_postgres::Error> {
    client
        .query_one(
            &format!(
                "SELECT coalesce((SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c \
                   WHERE c.oid = {}), false) \
                 AND has_database_privilege(current_database(), 'CREATE')",
                table_oid("$1", "$2")
            ),
            &[&table.schema_or_public(), &table.name],
        )
        .await?
        .try_get(0)
}
