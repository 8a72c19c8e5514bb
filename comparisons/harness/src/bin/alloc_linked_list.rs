//! Runner with the `linked-list` allocator of the table as its global allocator.
comparisons::runner!("linked-list");
