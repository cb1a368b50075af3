//! An SQS batch (`Records`): each message's id, which `batchItemFailures`
//! names, and its body, one event read later on its own.

use serde_json::Value;

use crate::input::fields::{expected, field_error, Fields};
use crate::input::InputError;

/// One SQS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub body: String,
}

pub(crate) fn parse(records: &Value) -> Result<Vec<Message>, InputError> {
    let records = records.as_array().ok_or_else(|| expected("Records", "an array", records))?;
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let prefix = format!("Records[{i}].");
            let record = Fields::object(record, prefix.trim_end_matches('.'), &prefix)?;
            let source = record.text("eventSource")?;
            if source != "aws:sqs" {
                return Err(field_error(&record.path("eventSource"), format!("expected \"aws:sqs\", got {source:?}")));
            }
            Ok(Message { id: record.text("messageId")?.to_owned(), body: record.text("body")?.to_owned() })
        })
        .collect()
}
