//! Redis: the headroom it needs above `maxmemory`.

use crate::base::units::{Bytes, MIB};

/// Redis needs room beyond `maxmemory` for buffers, fragmentation and
/// copy-on-write while persisting: a quarter of `maxmemory`, at least 32 MiB.
pub fn redis_overhead(maxmemory: Bytes) -> Bytes {
    Bytes((maxmemory.0 / 4).max(32 * MIB))
}
