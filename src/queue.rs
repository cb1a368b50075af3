//! The port to the event queue, where a fanned-out sweep sends one message per repository
//! (and a sweep that stopped early, its continuation). [`sqs`] implements it with
//! aws-sdk-sqs; [`Memory`] keeps the messages, for tests.

pub mod sqs;

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use crate::fault::Fault;

/// SQS takes at most this many messages per SendMessageBatch.
pub const BATCH: usize = 10;

/// A future a [`Queue`] returns (boxed: the handler holds the queue as a trait object).
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), Fault>> + Send + 'a>>;

pub trait Queue: Send + Sync {
    /// Sends each body as one message: all of them, or a fault (some may have been sent).
    fn send<'a>(&'a self, bodies: &'a [String]) -> Sending<'a>;
}

/// A queue in memory: what was sent, in order.
#[derive(Debug, Default)]
pub struct Memory {
    sent: Mutex<Vec<String>>,
}

impl Memory {
    /// Takes the messages sent so far.
    pub fn take(&self) -> Vec<String> {
        self.sent.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default()
    }
}

impl Queue for Memory {
    fn send<'a>(&'a self, bodies: &'a [String]) -> Sending<'a> {
        Box::pin(async move {
            if let Ok(mut sent) = self.sent.lock() {
                sent.extend(bodies.iter().cloned());
            }
            Ok(())
        })
    }
}
