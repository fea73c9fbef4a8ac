//! Profiles: the TOML language, its schema, loading, stacking and checking.
//!
//! Loading, in order: [`load()`] reads the top file and the files it stacks
//! (`read.rs`, `stack.rs`), parses and checks each as a layer against the
//! schema (`layer.rs`, `structure.rs`, `spans.rs`), converts each layer's
//! values (`convert.rs`, `devices.rs`), and merges the layers, the built-in
//! base (`builtin.rs`) first, into one [`Profile`] (`merge.rs`).

mod builtin;
mod convert;
mod devices;
mod layer;
pub mod load;
mod merge;
pub mod model;
pub mod raw;
mod read;
mod spans;
mod stack;
pub mod structure;
pub mod values;

pub use builtin::{BUILTIN_NAME, BUILTIN_TEXT, SCHEMA_TEXT};
pub use layer::{Layer, parse_layer};
pub use load::{MAX_PROBLEMS, Sources, load};
pub use model::{Origin, Profile};
pub use spans::{Spans, join};
