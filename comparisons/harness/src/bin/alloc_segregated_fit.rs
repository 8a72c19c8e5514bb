//! Runner with the `segregated-fit` allocator of the table as its global allocator.
comparisons::runner!("segregated-fit");
