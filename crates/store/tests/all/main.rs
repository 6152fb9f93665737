//! Integration tests of flotilla-store through its public API, in one binary (one link).

mod crash;
mod props;
