//! The memory cap of one instance, as a wasmtime `ResourceLimiter`.
//!
//! The cap bounds the sum of the instance's linear memories (a component can have several core memories). A
//! growth past it is refused (`memory.grow` returns -1, as the spec allows) and *remembered*, so a guest that
//! then traps - having printed an out-of-memory message or not - is reported as having hit its memory limit,
//! not as a generic trap.

use wasmtime::ResourceLimiter;

/// Upper bound on one table's elements (a guard against a guest growing a table without end).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

pub struct MemoryCap {
    cap: usize,
    total: usize,
    last_growth: usize,
    /// A growth was refused since the last `reset_hit`.
    pub hit: bool,
    /// The total the last refused growth asked for.
    pub refused: usize,
}

impl MemoryCap {
    pub fn new(cap: usize) -> MemoryCap {
        MemoryCap {
            cap,
            total: 0,
            last_growth: 0,
            hit: false,
            refused: 0,
        }
    }

    pub fn reset_hit(&mut self) {
        self.hit = false;
    }

    /// Bytes of linear memory the instance holds now.
    pub fn total(&self) -> usize {
        self.total
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let after = self.total.saturating_add(growth);
        if after > self.cap {
            self.hit = true;
            self.refused = after;
            return Ok(false);
        }
        self.total = after;
        self.last_growth = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Allowed by us but refused by the engine (past the memory's own maximum): undo our accounting.
        self.total = self.total.saturating_sub(self.last_growth);
        self.last_growth = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_growth_past_the_cap_and_remembers_it() {
        let mut cap = MemoryCap::new(4 << 16);
        assert!(cap.memory_growing(0, 2 << 16, None).unwrap());
        assert!(cap.memory_growing(0, 1 << 16, None).unwrap()); // a second memory counts toward the total
        assert!(!cap.hit);
        assert!(!cap.memory_growing(1 << 16, 3 << 16, None).unwrap());
        assert!(cap.hit);
        assert_eq!(cap.refused, 5 << 16);
        assert_eq!(cap.total(), 3 << 16);
        cap.reset_hit();
        assert!(cap.memory_growing(2 << 16, 3 << 16, None).unwrap());
        assert_eq!(cap.total(), 4 << 16);
    }

    #[test]
    fn a_failed_growth_is_not_counted() {
        let mut cap = MemoryCap::new(8 << 16);
        assert!(cap.memory_growing(0, 1 << 16, None).unwrap());
        assert!(cap.memory_growing(1 << 16, 5 << 16, Some(2 << 16)).unwrap());
        cap.memory_grow_failed(wasmtime::Error::msg("past maximum"))
            .unwrap();
        assert_eq!(cap.total(), 1 << 16);
    }
}
