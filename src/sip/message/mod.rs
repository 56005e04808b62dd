//! The SIP message layer (wire): parse leniently, print strictly. Sans-IO.
