//! The tokio runtime layer.
