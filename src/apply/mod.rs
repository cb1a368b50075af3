//! The use cases over the registry port: an event's writes ([`retag`]), the
//! PutImage step they all share ([`put`]), tags that move only to newer
//! versions ([`if_newer`]), pushed tags retired ([`removal`]), and the
//! reconcile sweep ([`sweep`]).

pub mod if_newer;
pub mod put;
pub mod removal;
pub mod retag;
pub mod sweep;
