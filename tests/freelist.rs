//! The shared harness over every free-list strategy and index.

#[macro_use]
mod harness;

mod first_linear {
    use stratalloc::{FirstFit, Linear};
    strategy_suites!(FirstFit<Linear>);
}

mod next_linear {
    use stratalloc::{Linear, NextFit};
    strategy_suites!(NextFit<Linear>);
}

mod best_linear {
    use stratalloc::{BestFit, Linear};
    strategy_suites!(BestFit<Linear>);
}
