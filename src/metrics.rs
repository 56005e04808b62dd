//! Metric names and registration.
