//! Logging set-up and redaction.
