//! Exchange, routing key and (later) topic names written as templates over
//! the event's fields, e.g. `{aggregate_type}.{event_type}`.

use super::SinkError;
use crate::event::OutboxEvent;

/// A parsed template: literal text and event fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Field),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    EventId,
    AggregateType,
    AggregateId,
    EventType,
}

/// The placeholders a template may use.
const FIELDS: &[(&str, Field)] = &[
    ("event_id", Field::EventId),
    ("aggregate_type", Field::AggregateType),
    ("aggregate_id", Field::AggregateId),
    ("event_type", Field::EventType),
];

impl Template {
    /// Parses `text`; `{{` and `}}` stand for literal braces.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let field = FIELDS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, f)| *f)
                        .ok_or_else(|| {
                            let known: Vec<String> =
                                FIELDS.iter().map(|(n, _)| format!("{{{n}}}")).collect();
                            format!(
                                "unknown placeholder `{{{name}}}` in `{text}`; use {}",
                                known.join(", ")
                            )
                        })?;
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Field(field));
                }
                '}' => return Err(format!("unmatched `}}` in `{text}`; write `}}}}`")),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// The text of a template without placeholders.
    pub fn fixed(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// The template filled in from `event`. A placeholder whose field is
    /// empty in this row cannot render: the result would name the wrong
    /// destination (or none), so the event is refused instead.
    pub fn render(&self, event: &OutboxEvent) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            let (name, value) = match part {
                Part::Literal(text) => {
                    out.push_str(text);
                    continue;
                }
                Part::Field(Field::EventId) => ("event_id", &event.id),
                Part::Field(Field::AggregateType) => ("aggregate_type", &event.aggregate_type),
                Part::Field(Field::AggregateId) => ("aggregate_id", &event.aggregate_id),
                Part::Field(Field::EventType) => ("event_type", &event.event_type),
            };
            if value.is_empty() {
                return Err(format!("placeholder `{{{name}}}` is empty in this row"));
            }
            out.push_str(value);
        }
        Ok(out)
    }
}

/// The error for a destination that cannot be rendered from an event.
pub fn unrenderable(event: &OutboxEvent, what: &str, detail: String) -> SinkError {
    SinkError::Rejected {
        event_id: event.id.clone(),
        reason: "template",
        detail: format!("{what}: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::Template;
    use crate::event::{OutboxEvent, PayloadKind};

    fn event() -> OutboxEvent {
        OutboxEvent {
            id: "42".into(),
            aggregate_type: "order".into(),
            aggregate_id: "o-1".into(),
            event_type: "created".into(),
            payload: b"{}".to_vec(),
            payload_kind: PayloadKind::Json,
            headers: Vec::new(),
            created_at: None,
        }
    }

    #[test]
    fn renders_fields_and_literals() {
        let t = Template::parse("{aggregate_type}.{event_type}").expect("valid");
        assert_eq!(t.render(&event()).as_deref(), Ok("order.created"));
        let t = Template::parse("x-{{{event_id}}}-{aggregate_id}").expect("valid");
        assert_eq!(t.render(&event()).as_deref(), Ok("x-{42}-o-1"));
        assert_eq!(
            Template::parse("")
                .expect("valid")
                .render(&event())
                .as_deref(),
            Ok("")
        );
    }

    #[test]
    fn an_empty_field_cannot_render() {
        let mut e = event();
        e.event_type.clear();
        let t = Template::parse("{aggregate_type}.{event_type}").expect("valid");
        let err = t.render(&e).expect_err("empty field");
        assert!(err.contains("{event_type}"), "{err}");
    }

    #[test]
    fn names_unknown_placeholders() {
        let err = Template::parse("{aggregate}.x").expect_err("unknown");
        assert!(err.contains("{aggregate}"), "{err}");
        assert!(Template::parse("a}b").is_err());
    }
}
