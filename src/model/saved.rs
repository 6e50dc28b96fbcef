//! The saved state of a stage, for state checkpoints: a self-describing CBOR value, so maps
//! keyed by structs (series keys) and non-finite numbers round-trip, and each stage decides
//! what of itself is state (never its configuration, which comes from the files at start).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// One stage's state, opaque to whoever stores it.
pub type Saved = ciborium::value::Value;

/// Saves plain state. Our state types serialize with derived impls only, which cannot fail
/// for CBOR values.
pub fn save<T: Serialize>(state: &T) -> Saved {
    Saved::serialized(state).expect("derived Serialize into a CBOR value cannot fail")
}

/// Reads state back; an error says what did not fit (a snapshot of an older shape).
pub fn load<T: DeserializeOwned>(saved: Saved) -> Result<T, String> {
    saved.deserialized().map_err(|e| e.to_string())
}
