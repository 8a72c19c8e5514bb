//! Runner with the `system` allocator of the table as its global allocator.
comparisons::runner!("system");
