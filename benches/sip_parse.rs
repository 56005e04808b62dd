//! SIP parse benchmark (filled in by the message-layer work).
fn main() {}
