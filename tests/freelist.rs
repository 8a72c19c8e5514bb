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

mod first_tree {
    use stratalloc::FirstFit;
    strategy_suites!(FirstFit);
}

mod next_tree {
    use stratalloc::NextFit;
    strategy_suites!(NextFit);
}

mod best_tree {
    use stratalloc::BestFit;
    strategy_suites!(BestFit);
}

mod segregated {
    use stratalloc::SegregatedFit;
    strategy_suites!(SegregatedFit);
}
