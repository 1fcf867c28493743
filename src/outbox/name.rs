//! Parsing `schema.table` the way Postgres reads it, so that what the operator
//! writes in the config means the same table as in psql.

use std::fmt;

/// A possibly schema-qualified table name, each part already case-folded
/// (unquoted) or kept exactly (double-quoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    /// Parses `outbox`, `public.outbox` or `"Sales"."Outbox"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts = split_parts(text.trim())?;
        match parts.as_slice() {
            [name] => Ok(TableName {
                schema: None,
                name: name.clone(),
            }),
            [schema, name] => Ok(TableName {
                schema: Some(schema.clone()),
                name: name.clone(),
            }),
            _ => Err(format!(
                "`{text}` has {} dot-separated parts; write table or schema.table",
                parts.len()
            )),
        }
    }

    /// The schema to create helper objects in: the table's, or `public`.
    pub fn schema_or_public(&self) -> &str {
        self.schema.as_deref().unwrap_or("public")
    }
}

/// Renders as SQL, every part quoted.
impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{}.", quote_ident(schema))?;
        }
        f.write_str(&quote_ident(&self.name))
    }
}

/// Quotes a string literal for SQL, doubling embedded quotes.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Quotes an identifier for SQL, doubling embedded quotes.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn split_parts(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("`{text}` has an unterminated quote")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if !(c.is_ascii_alphanumeric() || c == '_' || c == '$') {
                    return Err(format!(
                        "`{text}`: `{c}` is not allowed in an unquoted name; double-quote the name"
                    ));
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
            if part.starts_with(|c: char| c.is_ascii_digit() || c == '$') {
                return Err(format!("`{text}`: a name cannot start with `{part}`"));
            }
        }
        if part.is_empty() {
            return Err(format!("`{text}` has an empty name part"));
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => return Err(format!("`{text}`: unexpected `{c}` after a quoted name")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TableName;

    #[test]
    fn folds_unquoted_and_keeps_quoted() {
        let t = TableName::parse("Public.Outbox").expect("valid");
        assert_eq!(t.schema.as_deref(), Some("public"));
        assert_eq!(t.name, "outbox");
        let t = TableName::parse("\"Sales\".\"Out\"\"box\"").expect("valid");
        assert_eq!(t.schema.as_deref(), Some("Sales"));
        assert_eq!(t.name, "Out\"box");
        assert_eq!(t.to_string(), "\"Sales\".\"Out\"\"box\"");
        assert_eq!(
            TableName::parse("outbox").expect("valid").to_string(),
            "\"outbox\""
        );
        assert_eq!(
            TableName::parse("\"a.b\"").expect("valid").name,
            "a.b",
            "a dot inside quotes is part of the name"
        );
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in ["", "a.b.c", "a..b", "\"open", "my-table", "1abc", "\"x\"y"] {
            assert!(TableName::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
