//! Per-connection counters: one peer can push any of them past `u32::MAX` (4 GB of bare `\n`
//! lines on one connection, say), so they stop there instead of wrapping (or panicking in
//! overflow-checked builds).

/// Adds one to `counter`, stopping at `u32::MAX`.
#[inline]
pub fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}
