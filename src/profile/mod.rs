//! Profiles: the TOML language, its schema, loading, stacking and checking.

pub mod load;
pub mod model;
pub mod raw;
pub mod structure;
pub mod values;

pub use load::{BUILTIN_NAME, BUILTIN_TEXT, Sources, load};
pub use model::{Origin, Profile};
