//! Test support, by concern: the emulator process and its clients ([`emulator`]), the fixture
//! kit ([`fixtures`]: manifests, digests, blobs, rule sets), seeding and reading the registry
//! ([`seed`]), events ([`events`]), the function and the command line as processes
//! ([`function`], with [`runtime_api`], the Runtime API stand-in), and one test's repository
//! ([`scenario`]).
#![allow(dead_code, unused_imports)] // each test binary uses its part of the kit

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use aws_sdk_ecr::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecr::types::ImageTagMutability;
use aws_sdk_ecr::Client;

mod emulator;
mod events;
mod fixtures;
mod function;
pub mod runtime_api;
mod scenario;
mod seed;

pub use emulator::*;
pub use events::*;
pub use fixtures::*;
pub use function::*;
pub use scenario::*;
pub use seed::*;

pub const REGION: &str = "eu-west-1";
pub const ACCOUNT: &str = "123456789012";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
