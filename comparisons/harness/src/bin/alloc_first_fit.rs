//! Runner with the `first-fit` allocator of the table as its global allocator.
comparisons::runner!("first-fit");
